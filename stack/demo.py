"""``make demo``: the real engines on CPU, one load profile, one side-by-side table.

Starts every registered engine (the baseline, Triton and vLLM today; ``engines.registry``)
on the real model (``stack.local``), asks each the same greedy question through its main
API, runs ``loadgen/profiles/demo.yaml`` against all of them with the targets filled in from
the running stack (each engine's main API), snapshots each engine's own ``/metrics``, and
stops everything. Everything lands in ``results/<timestamp>/`` (``results/latest`` points
there): the resolved profile, ``records.jsonl``, ``summary.json``/``.csv``, ``report.html``,
``report.txt`` (the table), the engines' logs and ``/metrics`` snapshots, and the TSDB of the
Prometheus that scraped the engines and the load generator during the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from rich.console import Console

from engines import registry
from loadgen.api import Hooks, RunSetupError, run
from loadgen.cli.progress import ProgressBar
from loadgen.config import Profile, load_profile
from loadgen.render.table import print_summary, side_by_side, to_plain
from stack.local import EngineEndpoint, parse_engines, running
from stack.process import EngineStartError, ManagedProcess, free_port
from stack.prometheus import SCRAPE_INTERVAL_S, host_port, prometheus_process

PROFILE = Path("loadgen/profiles/demo.yaml")
PROMPT = "The capital of France is"


def _ask_openai(client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> str:
    r = client.post(f"{url}/v1/completions", json={
        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    r.raise_for_status()
    return str(r.json()["choices"][0]["text"])


def _ask_triton(client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> str:
    r = client.post(f"{url}/v2/models/{model}/generate", json={
        "text_input": prompt, "max_tokens": max_tokens, "temperature": 0.0, "exclude_input_in_output": True})
    r.raise_for_status()
    return str(r.json()["text_output"])


# One non-streaming greedy question per wire API (keyed by loadgen client kind), not per engine:
# an engine that speaks one of these needs no edit here.
ASKERS: dict[str, Callable[[httpx.Client, str, str, str, int], str]] = {
    "openai-completions": _ask_openai, "openai-chat": _ask_openai,  # both mean an OpenAI server
    "triton-generate": _ask_triton,
}


def ask(endpoint: EngineEndpoint, prompt: str = PROMPT, max_tokens: int = 8) -> str:
    """One greedy completion through the first of the engine's APIs that the demo knows how to ask."""
    kind = next((k for k in endpoint.urls if k in ASKERS), None)
    if kind is None:
        return f"(no quick question over {', '.join(endpoint.urls)})"
    with httpx.Client(timeout=120) as client:
        return ASKERS[kind](client, endpoint.urls[kind], endpoint.model, prompt, max_tokens)


def resolved_profile(profile: Path, endpoints: dict[str, EngineEndpoint], model_dir: Path, out: Path,
                     metrics_port: int) -> Profile:
    """The profile with its targets replaced by the running engines' main APIs (named after the engines),
    the model's tokenizer, the results folder and the port Prometheus scrapes."""
    return load_profile(profile, [
        ("targets", [e.target() for e in endpoints.values()]), ("prompts.tokenizer", str(model_dir)),
        ("out", str(out)), ("metrics.port", metrics_port), ("metrics.linger_s", 3 * SCRAPE_INTERVAL_S)])


def snapshot_metrics(endpoints: dict[str, EngineEndpoint], out: Path) -> None:
    (out / "metrics").mkdir(exist_ok=True)
    for e in endpoints.values():
        try:
            (out / "metrics" / f"{e.engine}.prom").write_text(httpx.get(e.metrics_url, timeout=10).text)
        except httpx.HTTPError as exc:
            print(f"warning: could not read {e.engine}'s metrics at {e.metrics_url}: {exc}", file=sys.stderr)


def start_prometheus(endpoints: dict[str, EngineEndpoint], loadgen_port: int, workdir: Path) -> ManagedProcess | None:
    """Prometheus scraping the engines and the load generator for the length of the run (None if missing)."""
    jobs = {"loadgen": [f"127.0.0.1:{loadgen_port}"],
            **{e.engine: [host_port(e.metrics_url)] for e in endpoints.values()}}
    try:
        proc = prometheus_process(jobs, workdir)
        proc.start().wait_ready()
    except EngineStartError as exc:
        print(f"warning: running without Prometheus: {exc}", file=sys.stderr)
        return None
    print(f"Prometheus: {proc.ready_url.removesuffix('/-/ready')} (scraping {', '.join(jobs)}; "
          f"data kept in {workdir / 'data'})")
    return proc


def link_latest(out: Path) -> None:
    latest = out.parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/smollm2-135m-instruct"))
    parser.add_argument("--profile", type=Path, default=PROFILE)
    parser.add_argument("--engines", default=",".join(registry.names()), help="default %(default)s")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    engines = parse_engines(args.engines)

    out = args.results / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    link_latest(out)
    started = time.perf_counter()
    print(f"starting {', '.join(engines)} on {args.model} (logs in {out / 'logs'}; vLLM takes ~3 min to warm up)")
    try:
        with running(engines, args.model, out / "logs") as stack:
            print(f"all ready in {time.perf_counter() - started:.0f} s")
            for e in stack.engines.values():
                print(f"  {e.engine:9s} {PROMPT!r} → {ask(e)!r}")
            loadgen_port = free_port()
            profile = resolved_profile(args.profile, stack.engines, args.model, out, loadgen_port)
            (out / "profile.yaml").write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True),
                                                             sort_keys=False))
            prometheus = start_prometheus(stack.engines, loadgen_port, out / "prometheus")
            try:
                hooks = Hooks(notify=print)
                with ProgressBar(hooks, Console(stderr=True), enabled=sys.stderr.isatty()):
                    result = run(profile, out, argv=sys.argv, hooks=hooks)
                snapshot_metrics(stack.engines, out)
            finally:
                if prometheus is not None:
                    prometheus.stop()
        print_summary(result.summary)
        table = to_plain(side_by_side(result.summary))
        (out / "comparison.txt").write_text(table)
        print(f"\nside by side (output tok/s; TTFT and ITL p50 in ms):\n{table}")
    except RunSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EngineStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\nreport: {out / 'report.html'} (open it in a browser; works offline)")
    print(f"metrics: {out / 'prometheus' / 'data'} (Prometheus TSDB of the run; reopen with `prometheus "
          f"--storage.tsdb.path={out / 'prometheus' / 'data'} --config.file={out / 'prometheus' / 'prometheus.yml'}`),"
          f" engine snapshots in {out / 'metrics'}")
    print(f"results: {out}  (also {args.results / 'latest'}); total {time.perf_counter() - started:.0f} s")
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
