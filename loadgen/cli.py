"""``loadgen run | report | selftest`` — the command line of the load generator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadgen import __version__, report
from loadgen.clients import ClientOptions, RequestSpec, make_client
from loadgen.config import CLIENT_KINDS, Profile, SLOConfig, TargetConfig, load_profile, parse_assignment
from loadgen.engine_manifest import EngineManifestError, describe, load_engine_manifests
from loadgen.exporter import LiveMetrics
from loadgen.prompts import COMMON_WORDS, LocalTokenizer, PromptError, dataset_hash, server_counter, sharegpt, synthetic
from loadgen.record import RequestRecord
from loadgen.runner import LoopLagMonitor, TargetRunner
from loadgen.sinks import summary as summary_sink
from loadgen.sinks.jsonl import LOOP_LAG_FILE, RECORDS_FILE, JsonlSink, read_records

MANIFEST_FILE = "manifest.json"
EXIT_INTERRUPTED = 130
console = Console(stderr=True)


REPORT_FILE = "report.html"


# -- arguments -------------------------------------------------------------------------------

def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a load profile against one or more targets")
    p.add_argument("profile", nargs="?", type=Path, help="YAML profile (see loadgen/profiles/)")
    p.add_argument("--target", action="append", default=[], metavar="NAME=KIND@URL",
                   help=f"a server to load; KIND is one of {', '.join(CLIENT_KINDS)} (repeatable)")
    p.add_argument("--model", help="served model name")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="closed loop: N requests always in flight")
    load.add_argument("--rate", type=float, help="open loop: R requests per second")
    p.add_argument("--arrival", choices=["poisson", "constant", "gamma"])
    p.add_argument("--burstiness", type=float, help="gamma shape (1 = Poisson, < 1 burstier)")
    p.add_argument("--requests", type=int, help="requests per stage")
    p.add_argument("--duration", type=float, help="seconds of issuing per stage")
    p.add_argument("--warmup", type=int, help="requests per target before measuring (excluded)")
    p.add_argument("--input-tokens", type=int)
    p.add_argument("--output-tokens", type=int)
    p.add_argument("--tokenizer", type=Path, help="model folder with tokenizer.json (exact prompt lengths)")
    p.add_argument("--dataset", type=Path, help="ShareGPT-format JSON file")
    p.add_argument("--slo", help="ttft_ms=X,tpot_ms=Y,e2e_ms=Z (goodput)")
    p.add_argument("--max-in-flight", type=int)
    p.add_argument("--out", type=Path, help="output folder (default results/<timestamp>)")
    p.add_argument("--set", action="append", default=[], metavar="dotted.key=value",
                   help="override any profile field, e.g. --set request.temperature=0.7")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--metrics-port", type=int, help="live Prometheus metrics port (default 9400; 0 = any free)")
    p.add_argument("--no-metrics", action="store_true", help="do not serve live Prometheus metrics")
    p.add_argument("--engine-manifest", action="append", default=[], type=Path, metavar="PATH",
                   help="an engine build's manifest.json (e.g. the TensorRT-LLM precision) to carry into the run's "
                        "manifest; also read from $LOADGEN_ENGINE_MANIFESTS (':'-separated)")


def overrides_from_args(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Translate the shorthand flags into dotted-key overrides (applied before --set)."""
    o: list[tuple[str, Any]] = []
    if args.target:
        o.append(("targets", [TargetConfig.parse(t).model_dump(exclude_none=True) for t in args.target]))
    if args.model:
        o.append(("model", args.model))
    if args.concurrency is not None or args.rate is not None:
        # An explicit load on the command line replaces the profile's stages or sweep.
        o += [("stages", []), ("sweep", None)]
        if args.concurrency is not None:
            o += [("load.type", "concurrency"), ("load.concurrency", args.concurrency)]
        else:
            o += [("load.type", "rate"), ("load.rate", args.rate)]
    for flag, key in (("arrival", "load.arrival"), ("burstiness", "load.burstiness"),
                      ("requests", "load.requests"), ("duration", "load.duration_s")):
        if getattr(args, flag) is not None:
            o.append((key, getattr(args, flag)))
    simple = {"warmup": "warmup", "input_tokens": "prompts.input_tokens", "output_tokens": "prompts.output_tokens",
              "tokenizer": "prompts.tokenizer", "max_in_flight": "max_in_flight", "out": "out"}
    for flag, key in simple.items():
        if getattr(args, flag) is not None:
            value = getattr(args, flag)
            o.append((key, str(value) if isinstance(value, Path) else value))
    if args.dataset is not None:
        o += [("prompts.source", "sharegpt"), ("prompts.dataset", str(args.dataset))]
    if args.slo:
        o += [(f"slo.{k}", v) for k, v in SLOConfig.parse(args.slo).items()]
    if getattr(args, "metrics_port", None) is not None:
        o.append(("metrics.port", args.metrics_port))
    if getattr(args, "no_metrics", False):
        o.append(("metrics.enabled", False))
    o += [parse_assignment(text) for text in args.set]
    return o


# -- run -------------------------------------------------------------------------------------

def build_prompts(profile: Profile) -> tuple[list[RequestSpec], Any]:
    """Prompt specs, and the client-side token counter (None without a local tokenizer)."""
    pc = profile.prompts
    tokenizer = LocalTokenizer(pc.tokenizer) if pc.tokenizer else None
    counter = tokenizer.count if tokenizer else None
    if pc.source == "sharegpt":
        assert pc.dataset is not None
        return sharegpt(pc.dataset, pc.count, pc.output_tokens, profile.seed, counter), counter
    if tokenizer is not None:
        words = tokenizer.single_token_words()
        return synthetic(pc.count, pc.input_tokens, pc.output_tokens, profile.seed, tokenizer.count, words), counter
    openai = [t for t in profile.targets if t.kind.startswith("openai")]
    if not openai:
        raise PromptError("exact prompt lengths need a tokenizer: give --tokenizer DIR (a folder with "
                          "tokenizer.json), or a target with /tokenize (vLLM, the baseline)")
    remote = server_counter(openai[0].url, profile.model_for(openai[0]))
    return synthetic(pc.count, pc.input_tokens, pc.output_tokens, profile.seed, remote, COMMON_WORDS), None


def _versions() -> dict[str, str]:
    versions = {"loadgen": __version__, "python": platform.python_version()}
    for dist in ("uvloop", "orjson", "pydantic", "tokenizers", "tritonclient"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def manifest(profile: Profile, specs: list[RequestSpec], argv: list[str],
             engine_builds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "versions": _versions(),
        "profile": profile.model_dump(mode="json"),
        "targets": [t.model_dump(mode="json") for t in profile.targets],
        "seed": profile.seed,
        "dataset_hash": dataset_hash(specs),
        "prompts": len(specs),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": argv,
        # Time bases: records hold perf_counter_ns of this process; these map them to wall time.
        "clock": {"perf_counter_ns": time.perf_counter_ns(), "unix_ns": time.time_ns()},
        "engine_builds": engine_builds or [],
    }


async def _run_targets(profile: Profile, specs: list[RequestSpec], counter: Any, sink: JsonlSink,
                       progress: Progress | None,
                       live: LiveMetrics | None = None) -> tuple[list[RequestRecord], LoopLagMonitor, bool]:
    records: list[RequestRecord] = []
    monitor = LoopLagMonitor(listener=live.loop_lag_sample if live else None)
    monitor.start()
    interrupted = False
    loop = asyncio.get_running_loop()
    stages = profile.resolved_stages()
    for target in profile.targets:
        options = ClientOptions(model=profile.model_for(target), timeout_s=profile.request.timeout_s,
                                stall_timeout_s=profile.request.stall_timeout_s,
                                temperature=profile.request.temperature, ignore_eos=profile.request.ignore_eos,
                                extra_body=profile.request.extra_body,
                                keep_text=counter is not None or profile.agreement is not None)
        client = make_client(target.kind, target.url, options)
        task_id = None
        if progress is not None:
            total = sum(s.requests or 0 for s in stages) if all(s.requests for s in stages) else None
            task_id = progress.add_task(target.name, total=total)

        def on_record(record: RequestRecord, task_id: Any = task_id) -> None:
            records.append(record)
            if progress is not None and not record.warmup:
                progress.advance(task_id)

        sinks: list[Any] = [sink, on_record] + ([live] if live else [])
        on_issue = (lambda stage, t=target.name, k=target.kind: live.issued(t, k, stage)) if live else None
        runner = TargetRunner(target.name, client, specs, sinks, seed=profile.seed, on_issue=on_issue,
                              max_in_flight=profile.max_in_flight, drain_timeout_s=profile.drain_timeout_s,
                              client_counter=counter, keep_output_text=profile.agreement is not None)
        loop.add_signal_handler(signal.SIGINT, runner.request_stop)
        loop.add_signal_handler(signal.SIGTERM, runner.request_stop)
        await client.start(profile.max_connections())
        try:
            await runner.run(stages, profile.warmup)
        finally:
            await client.close()
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
        if runner.stopped:
            interrupted = True
            break
    await monitor.stop()
    return records, monitor, interrupted


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def start_exporter(profile: Profile) -> LiveMetrics:
    """Serve live metrics; the default port, when taken, falls back to a free one (an explicit port does not)."""
    live = LiveMetrics(profile.name)
    cfg = profile.metrics
    try:
        port = live.serve(cfg.host, cfg.port)
    except OSError:
        if "port" in cfg.model_fields_set:
            raise
        port = live.serve(cfg.host, 0)
        console.print(f"[yellow]warning:[/yellow] port {cfg.port} is taken; live metrics on port {port} instead")
    console.print(f"live metrics: http://{cfg.host}:{port}/metrics")
    return live


def cmd_run(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.profile, overrides_from_args(args))
        specs, counter = build_prompts(profile)
        engine_builds = load_engine_manifests(args.engine_manifest)
    except (ValidationError, ValueError, PromptError, OSError, EngineManifestError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    out = profile.out or Path("results") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if (out / RECORDS_FILE).exists():
        console.print(f"[red]error:[/red] {out / RECORDS_FILE} exists; choose another --out")
        return 2
    live = None
    if profile.metrics.enabled:
        try:
            live = start_exporter(profile)
        except OSError as exc:
            console.print(f"[red]error:[/red] cannot serve live metrics on {profile.metrics.host}:"
                          f"{profile.metrics.port} ({exc}); use --metrics-port 0 for any free port, or --no-metrics")
            return 2
    info = manifest(profile, specs, sys.argv, engine_builds)
    for line in describe(engine_builds):
        console.print(f"engine build: {line}")
    (out / MANIFEST_FILE).write_text(json.dumps(info, indent=2) + "\n")
    sink = JsonlSink(out / RECORDS_FILE)
    progress = None if args.no_progress else Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, refresh_per_second=4, transient=False)
    loop = _new_event_loop()
    try:
        if progress is not None:
            progress.start()
        records, monitor, interrupted = loop.run_until_complete(
            _run_targets(profile, specs, counter, sink, progress, live))
        if live is not None and profile.metrics.linger_s:
            time.sleep(profile.metrics.linger_s)  # a last scrape sees the final counts
    finally:
        if progress is not None:
            progress.stop()
        sink.close()
        loop.close()
        if live is not None:
            live.close()
    with (out / LOOP_LAG_FILE).open("w") as f:
        for t, lag in monitor.samples:
            f.write(f"[{t},{lag}]\n")
    summary = summary_sink.build_summary(
        records, monitor.samples, info, profile.slo.model_dump(),
        agreement_reference=profile.agreement.reference if profile.agreement else None,
        tokenize=LocalTokenizer(profile.prompts.tokenizer).encode if profile.prompts.tokenizer else None)
    summary_sink.write_json(summary, out / "summary.json")
    summary_sink.write_csv(summary, out / "summary.csv")
    summary_sink.write_text(summary, out / "report.txt")
    report.write(records, summary, monitor.samples, out / REPORT_FILE)
    summary_sink.print_table(summary, Console())
    console.print(f"report: {out / REPORT_FILE}")
    console.print(f"records: {out / RECORDS_FILE} ({sink.written}); summary: {out / 'summary.json'}")
    if interrupted:
        console.print("[red]interrupted: issuing stopped early; the records and summary hold what finished "
                      "(in-flight requests past the grace period are recorded as cancelled)[/red]")
        return EXIT_INTERRUPTED
    return 0


# -- report ----------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    out: Path = args.dir
    if not (out / RECORDS_FILE).exists():
        console.print(f"[red]error:[/red] no {RECORDS_FILE} in {out}")
        return 2
    records = list(read_records(out / RECORDS_FILE))
    info = json.loads((out / MANIFEST_FILE).read_text()) if (out / MANIFEST_FILE).exists() else {}
    lags: list[tuple[int, int]] = []
    if (out / LOOP_LAG_FILE).exists():
        lags = [tuple(json.loads(line)) for line in (out / LOOP_LAG_FILE).read_text().splitlines() if line]
    saved = info.get("profile") or {}
    slo = saved.get("slo") or {}
    reference = (saved.get("agreement") or {}).get("reference")
    tokenizer_dir = (saved.get("prompts") or {}).get("tokenizer")
    tokenize = None
    if reference and tokenizer_dir:
        try:
            tokenize = LocalTokenizer(Path(tokenizer_dir)).encode
        except PromptError:
            console.print(f"[yellow]warning:[/yellow] tokenizer {tokenizer_dir} not found: agreement in characters")
    summary = summary_sink.build_summary(records, lags, info, slo, agreement_reference=reference, tokenize=tokenize)
    summary_sink.write_json(summary, out / "summary.json")
    summary_sink.write_csv(summary, out / "summary.csv")
    summary_sink.write_text(summary, out / "report.txt")
    report.write(records, summary, lags, out / REPORT_FILE)
    summary_sink.print_table(summary, Console())
    console.print(f"report: {out / REPORT_FILE}")
    return 0


# -- entry -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen", description="Load generator for LLM inference servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    report = sub.add_parser("report", help="re-render the summary of a run from its records")
    report.add_argument("dir", type=Path)
    selftest = sub.add_parser("selftest", help="measure this client against the synthetic server")
    selftest.add_argument("--quick", action="store_true", help="smaller figures, for tests")
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "report":
        return cmd_report(args)
    from loadgen.selftest import main as selftest_main

    return selftest_main(quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
