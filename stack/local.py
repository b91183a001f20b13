"""The local CPU stack: the baseline, vLLM and Triton as plain processes on 127.0.0.1.

Why one module: ``make demo``, the tests and a user at a shell all need the same three
engines, started the same way on free ports, waited for with timeouts that name the log
to read, and stopped by the PIDs we recorded (never by name: other vLLMs or tritonservers
on the machine are not ours). ``up`` writes a state file with every URL and PID; ``down``
and ``status`` read it.

    python -m engines.local up [--engines baseline,vllm,triton] [--model DIR]
    python -m engines.local status
    python -m engines.local down
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel

from engines.process import EngineStartError, ManagedProcess, baseline_process, free_port, is_running, stop_group

EngineName = Literal["baseline", "vllm", "triton"]
ENGINES: tuple[EngineName, ...] = ("baseline", "vllm", "triton")
DEFAULT_MODEL = Path("models/smollm2-135m-instruct")
DEFAULT_DIR = Path("results/engines")
SERVED_MODEL_NAME = "smollm2"


class EngineEndpoint(BaseModel):
    """One running engine: where to reach it, what it serves, and how to stop it."""

    engine: EngineName
    pid: int
    argv0: str
    log: str
    ready_url: str
    metrics_url: str
    model: str  # the name clients put in requests (OpenAI `model`, Triton's model name)
    openai_url: str | None = None
    triton_http_url: str | None = None
    triton_grpc_url: str | None = None

    def targets(self) -> list[dict[str, str]]:
        """Load-generator targets (``--target`` entries of a profile) for every API this engine speaks."""
        if self.openai_url:
            return [{"name": self.engine, "kind": "openai-completions", "url": self.openai_url, "model": self.model}]
        out = []
        if self.triton_http_url:
            out.append({"name": self.engine, "kind": "triton-generate", "url": self.triton_http_url,
                        "model": self.model})
        if self.triton_grpc_url:
            out.append({"name": f"{self.engine}-grpc", "kind": "triton-grpc", "url": self.triton_grpc_url,
                        "model": self.model})
        return out


class StackState(BaseModel):
    model_dir: str
    started_at: float
    engines: dict[str, EngineEndpoint]


def _process(engine: EngineName, model_dir: Path, log_dir: Path) -> tuple[ManagedProcess, EngineEndpoint]:
    if engine in ("baseline", "vllm"):  # the two OpenAI-compatible servers
        port = free_port()
        if engine == "vllm":
            from engines.vllm.launch import vllm_process

            proc = vllm_process(model_dir, port, log_dir, served_model_name=SERVED_MODEL_NAME)
        else:
            proc = baseline_process(model_dir, port, log_dir, served_model_name=SERVED_MODEL_NAME)
        url = f"http://127.0.0.1:{port}"
        return proc, EngineEndpoint(engine=engine, pid=0, argv0="", log=str(proc.log_path), ready_url=proc.ready_url,
                                    metrics_url=f"{url}/metrics", model=SERVED_MODEL_NAME, openai_url=url)
    if engine == "triton":
        from engines.triton.launch import MODEL_NAME, TritonPorts, triton_process

        ports = TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())
        proc = triton_process(model_dir, ports, log_dir)
        return proc, EngineEndpoint(engine=engine, pid=0, argv0="", log=str(proc.log_path), ready_url=proc.ready_url,
                                    metrics_url=f"http://127.0.0.1:{ports.metrics}/metrics", model=MODEL_NAME,
                                    triton_http_url=f"http://127.0.0.1:{ports.http}",
                                    triton_grpc_url=f"grpc://127.0.0.1:{ports.grpc}")
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def start(engines: Sequence[EngineName], model_dir: Path = DEFAULT_MODEL,
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
def running(engines: Sequence[EngineName], model_dir: Path = DEFAULT_MODEL,
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


def _parse_engines(text: str) -> list[EngineName]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise SystemExit(f"error: --engines takes a comma-separated subset of {','.join(ENGINES)}; got {text!r}")
    return names  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.local", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state file and logs (default %(default)s)")
        if name == "up":
            p.add_argument("--engines", default=",".join(ENGINES), help="default %(default)s")
            p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    state_path: Path = args.dir / "state.json"

    if args.command == "up":
        if state_path.exists():
            old = StackState.model_validate_json(state_path.read_text())
            alive = [e.engine for e in old.engines.values() if is_running(e.pid, e.argv0)]
            if alive:
                print(f"error: {', '.join(alive)} already up (see {state_path}); run `python -m engines.local down`",
                      file=sys.stderr)
                return 1
        try:
            _, state = start(_parse_engines(args.engines), args.model, args.dir / "logs")
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
