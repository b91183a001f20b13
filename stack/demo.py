"""``make demo``: the three real engines on CPU, one load profile, one side-by-side table.

Starts the baseline, vLLM and Triton on the real model (``engines.local``), asks each the
same greedy question, runs ``loadgen/profiles/demo.yaml`` against all three with the
targets filled in from the running stack, snapshots each engine's own ``/metrics``, and
stops everything. Everything lands in ``results/<timestamp>/`` (``results/latest`` points
there): the resolved profile, ``records.jsonl``, ``summary.json``/``.csv``, ``report.html``,
``report.txt`` (the table), the engines' logs and ``/metrics`` snapshots, and the TSDB of the
Prometheus that scraped the engines and the load generator during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from engines.local import ENGINES, EngineEndpoint, EngineName, running
from engines.process import EngineStartError, ManagedProcess, free_port
from engines.prometheus import SCRAPE_INTERVAL_S, host_port, prometheus_process

PROFILE = Path("loadgen/profiles/demo.yaml")
PROMPT = "The capital of France is"


def ask(endpoint: EngineEndpoint, prompt: str = PROMPT, max_tokens: int = 8) -> str:
    """One greedy completion through the engine's own API (OpenAI completions or Triton generate)."""
    with httpx.Client(timeout=120) as client:
        if endpoint.openai_url:
            r = client.post(f"{endpoint.openai_url}/v1/completions", json={
                "model": endpoint.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
            r.raise_for_status()
            return str(r.json()["choices"][0]["text"])
        r = client.post(f"{endpoint.triton_http_url}/v2/models/{endpoint.model}/generate", json={
            "text_input": prompt, "max_tokens": max_tokens, "temperature": 0.0, "exclude_input_in_output": True})
        r.raise_for_status()
        return str(r.json()["text_output"])


def resolved_profile(profile: Path, endpoints: dict[str, EngineEndpoint], model_dir: Path) -> dict[str, Any]:
    """The profile with its targets replaced by the running engines' (names kept)."""
    data = yaml.safe_load(profile.read_text())
    data["targets"] = [t for e in endpoints.values() for t in e.targets() if t["kind"] != "triton-grpc"]
    data.setdefault("prompts", {})["tokenizer"] = str(model_dir)
    return data


def snapshot_metrics(endpoints: dict[str, EngineEndpoint], out: Path) -> None:
    (out / "metrics").mkdir(exist_ok=True)
    for e in endpoints.values():
        try:
            (out / "metrics" / f"{e.engine}.prom").write_text(httpx.get(e.metrics_url, timeout=10).text)
        except httpx.HTTPError as exc:
            print(f"warning: could not read {e.engine}'s metrics at {e.metrics_url}: {exc}", file=sys.stderr)


def comparison(summary: dict[str, Any]) -> str:
    """Engines side by side per concurrency: output tok/s, TTFT p50 and ITL p50 (ms), from summary.json."""
    stages = list(next(iter(summary["targets"].values()))["stages"])
    lines = [f"{'':10s}" + "".join(f"{s:>28s}" for s in stages),
             f"{'engine':10s}" + "".join(f"{'tok/s':>10s}{'TTFT p50':>10s}{'ITL p50':>8s}" for _ in stages)]
    for target, block in summary["targets"].items():
        cells = []
        for stage in stages:
            data = block["stages"].get(stage)
            if not data or not data["ttft_ms"]:
                cells.append(f"{'-':>28s}")
                continue
            cells.append(f"{data['output_tokens_per_s']:>10.1f}{data['ttft_ms']['p50']:>10.0f}"
                         f"{(data['itl_ms'] or {}).get('p50', float('nan')):>8.0f}")
        agree = block.get("agreement")
        note = (f"   {agree['exact']}/{agree['compared']} answers = {agree['reference']}'s"
                if agree else "   (reference)" if "agreement" not in block else "")
        lines.append(f"{target:10s}" + "".join(cells) + note)
    return "\n".join(lines)


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
    parser = argparse.ArgumentParser(prog="python -m engines.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/smollm2-135m-instruct"))
    parser.add_argument("--profile", type=Path, default=PROFILE)
    parser.add_argument("--engines", default=",".join(ENGINES), help="default %(default)s")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    engines: list[EngineName] = [e for e in ENGINES if e in args.engines.split(",")]

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
            profile_path = out / "profile.yaml"
            profile_path.write_text(yaml.safe_dump(resolved_profile(args.profile, stack.engines, args.model),
                                                   sort_keys=False))
            loadgen_port = free_port()
            prometheus = start_prometheus(stack.engines, loadgen_port, out / "prometheus")
            from loadgen.cli import main as loadgen_main

            try:
                code = loadgen_main(["run", str(profile_path), "--out", str(out), "--metrics-port", str(loadgen_port),
                                     "--set", f"metrics.linger_s={3 * SCRAPE_INTERVAL_S}",
                                     *(["--no-progress"] if not sys.stdout.isatty() else [])])
                snapshot_metrics(stack.engines, out)
            finally:
                if prometheus is not None:
                    prometheus.stop()
        summary_path = out / "summary.json"
        if summary_path.exists():
            table = comparison(json.loads(summary_path.read_text()))
            (out / "comparison.txt").write_text(table + "\n")
            print(f"\nside by side (output tok/s; TTFT and ITL p50 in ms):\n{table}")
    except EngineStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\nreport: {out / 'report.html'} (open it in a browser; works offline)")
    print(f"metrics: {out / 'prometheus' / 'data'} (Prometheus TSDB of the run; reopen with `prometheus "
          f"--storage.tsdb.path={out / 'prometheus' / 'data'} --config.file={out / 'prometheus' / 'prometheus.yml'}`),"
          f" engine snapshots in {out / 'metrics'}")
    print(f"results: {out}  (also {args.results / 'latest'}); total {time.perf_counter() - started:.0f} s")
    return code


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
