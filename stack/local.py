"""The local CPU stack: every registered engine as a plain process on 127.0.0.1.

Why one module: ``make demo``, the tests and a user at a shell all need the same
engines, started the same way on free ports, waited for with timeouts that name the log
to read, and stopped by the PIDs we recorded (never by name: other vLLMs or tritonservers
on the machine are not ours). ``up`` writes a state file with every URL and PID; ``down``
and ``status`` read it. The engines are whatever ``engines.registry`` finds: a new engine
folder shows up here without an edit.

    python -m stack.local up [--engines baseline,triton,vllm] [--model DIR]
    python -m stack.local status
    python -m stack.local down
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from engines import registry
from stack.process import EngineStartError, ManagedProcess, free_port, is_running, stop_group

DEFAULT_MODEL = Path("models/smollm2-135m-instruct")
DEFAULT_DIR = Path("results/engines")


class EngineEndpoint(BaseModel):
    """One running engine: where to reach it, what it serves, and how to stop it."""

    engine: str
    pid: int
    argv0: str
    log: str
    ready_url: str
    metrics_url: str
    model: str  # the name clients put in requests (OpenAI `model`, Triton's model name)
    urls: dict[str, str] = {}  # loadgen client kind → base URL, the engine's main API first

    def target(self, kind: str | None = None) -> dict[str, Any]:
        """The load-generator target (a profile's ``targets`` entry) for ``kind``, by default the main API.

        The main API's target is named after the engine; another API's after both
        (``triton-grpc``, ``vllm-chat``), so that every target of a stack has its own name. It carries
        the engine's ``pid`` and ``metrics_url`` so that the run samples the engine's process tree and
        its own metrics (``loadgen.observe``; Triton's metrics have a port of their own).
        """
        main = next(iter(self.urls))
        kind = kind or main
        if kind not in self.urls:
            raise KeyError(f"{self.engine} serves {', '.join(self.urls)}, not {kind}")
        name = self.engine if kind == main else f"{self.engine}-{kind.split('-', 1)[-1]}"
        return {"name": name, "kind": kind, "url": self.urls[kind], "model": self.model, "pid": self.pid,
                "metrics_url": self.metrics_url}

    def targets(self, kinds: Collection[str] | None = None) -> list[dict[str, Any]]:
        """One target per API this engine serves (or per API in ``kinds`` that it serves)."""
        return [self.target(k) for k in self.urls if kinds is None or k in kinds]


class StackState(BaseModel):
    model_dir: str
    started_at: float
    engines: dict[str, EngineEndpoint]


def _process(engine: str, model_dir: Path, log_dir: Path) -> tuple[ManagedProcess, EngineEndpoint]:
    spec = registry.get(engine)
    launch = spec.start(model_dir, log_dir, free_port)
    proc = launch.process
    missing = [kind for kind in spec.apis if kind not in launch.urls]
    if missing:
        raise ValueError(f"engine {engine!r} serves {', '.join(missing)} but its start() gave no URL for it")
    urls = {kind: launch.urls[kind] for kind in spec.apis}  # the spec's order: main API first
    return proc, EngineEndpoint(engine=engine, pid=0, argv0="", log=str(proc.log_path), ready_url=proc.ready_url,
                                metrics_url=launch.metrics_url, model=spec.model, urls=urls)


def start(engines: Sequence[str], model_dir: Path = DEFAULT_MODEL,
          log_dir: Path = DEFAULT_DIR / "logs") -> tuple[list[ManagedProcess], StackState]:
    """Start every engine at once (their start-ups overlap), then wait for each to be ready.

    On any failure every engine already started is stopped and ``EngineStartError`` names the
    engine and its log.
    """
    if not (model_dir / "config.json").exists():
        raise EngineStartError(f"{model_dir} is not a model folder: run `make model` first")
    procs: list[ManagedProcess] = []
    endpoints: dict[str, EngineEndpoint] = {}
    try:
        for engine in engines:
            try:
                proc, endpoint = _process(engine, model_dir, log_dir)
            except FileNotFoundError as exc:
                raise EngineStartError(str(exc)) from exc
            proc.start()
            assert proc.pid is not None
            procs.append(proc)
            endpoints[engine] = endpoint.model_copy(update={"pid": proc.pid, "argv0": proc.argv[0]})
        for proc in procs:
            proc.wait_ready()
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs, StackState(model_dir=str(model_dir), started_at=time.time(), engines=endpoints)


@contextmanager
def running(engines: Sequence[str], model_dir: Path = DEFAULT_MODEL,
            log_dir: Path = DEFAULT_DIR / "logs") -> Iterator[StackState]:
    """The stack for the length of a ``with`` block (the demo, the tests)."""
    procs, state = start(engines, model_dir, log_dir)
    try:
        yield state
    finally:
        for proc in reversed(procs):
            proc.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def parse_engines(text: str) -> list[str]:
    """``--engines a,b``: registered engine names, in the order given; exits naming the known ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = registry.names()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"error: --engines takes a comma-separated subset of {','.join(known)}; got {text!r}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.local", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state file and logs (default %(default)s)")
        if name == "up":
            p.add_argument("--engines", default=",".join(registry.names()), help="default %(default)s")
            p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    state_path: Path = args.dir / "state.json"

    if args.command == "up":
        if state_path.exists():
            old = StackState.model_validate_json(state_path.read_text())
            alive = [e.engine for e in old.engines.values() if is_running(e.pid, e.argv0)]
            if alive:
                print(f"error: {', '.join(alive)} already up (see {state_path}); run `python -m stack.local down`",
                      file=sys.stderr)
                return 1
        try:
            _, state = start(parse_engines(args.engines), args.model, args.dir / "logs")
        except EngineStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(state.model_dump_json(indent=2))
        for e in state.engines.values():
            urls = ", ".join(f"{t['kind']} {t['url']} (model {t['model']})" for t in e.targets())
            print(f"{e.engine:9s} pid {e.pid:<7d} {urls}; metrics {e.metrics_url}; log {e.log}")
        print(f"state: {state_path}")
        return 0

    if not state_path.exists():
        print(f"nothing is up here (no {state_path})", file=sys.stderr)
        return 0 if args.command == "down" else 1
    state = StackState.model_validate_json(state_path.read_text())
    if args.command == "status":
        down = 0
        for e in state.engines.values():
            alive = is_running(e.pid, e.argv0)
            ready = alive and _healthy(e.ready_url)
            down += not ready
            print(f"{e.engine:9s} pid {e.pid:<7d} {'ready' if ready else 'running, not ready' if alive else 'gone'}"
                  f"  {e.ready_url}")
        return 1 if down else 0
    for e in reversed(list(state.engines.values())):
        stopped = stop_group(e.pid, e.argv0)
        print(f"{e.engine:9s} pid {e.pid:<7d} {'stopped' if stopped else 'was not running'}")
    state_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
