"""The rig as a library: ``run(profile) -> RunResult`` and ``load_run(dir) -> RunResult``.

Why one entry point: the CLI, the selftest, the demo, the benchmarks, the tests (and the
searches, comparisons and studies built on runs) must all run load the same way, with the
same records, files and exporter; none of them builds argv lists or reads summary.json
back. A run writes into its output folder as it goes::

    manifest.json   before the first request (what the run is)
    records.jsonl   one line per request as it ends (a killed run keeps what finished)
    loop_lag.jsonl  the client's event-loop lag samples
    cpu.jsonl       the client's own CPU time samples (loadgen.cpu; the validity verdict's CPU share)
    summary.json, summary.csv, report.txt, report.html   at the end

Example::

    from loadgen.api import run
    from loadgen.config import Profile
    result = run(Profile.model_validate({...}), out=Path("results/x"))
    result.summary.targets["vllm"].stats("ttft_ms").p99
"""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loadgen.answers.saturation import SaturationWatch
from loadgen.clients import RequestSpec, client_class, make_client
from loadgen.config import Profile, TargetConfig
from loadgen.cpu import CPU_FILE, CpuSampler, read_samples, write_samples
from loadgen.exporter import LiveMetrics
from loadgen.manifest import make_manifest
from loadgen.record import RequestRecord
from loadgen.render import csv as csv_render
from loadgen.render import html as html_render
from loadgen.render import table as table_render
from loadgen.runner import LoopLagMonitor, TargetRunner
from loadgen.sinks.jsonl import LOOP_LAG_FILE, RECORDS_FILE, JsonlSink, read_pairs, read_records, write_pairs
from loadgen.sources.base import PromptContext, PromptProgress
from loadgen.summary import Manifest, Summary, build_summary
from loadgen.targets import check_targets, client_options
from loadgen.tokens import Counter, LocalTokenizer, PromptError, server_counter

MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
CSV_FILE = "summary.csv"
TEXT_FILE = "report.txt"
REPORT_FILE = "report.html"


class RunSetupError(ValueError):
    """The run cannot start as asked (prompts, output folder, metrics port); nothing was sent."""


class RunFormatError(ValueError):
    """A saved run's files do not match the current format; the message names the file and field."""


@dataclass
class RunResult:
    """One run: every record, the typed summary and manifest, the client's loop-lag samples
    ((perf_counter_ns, lag ns) pairs), where it was written, and whether SIGINT cut it short."""

    records: list[RequestRecord]
    summary: Summary
    manifest: Manifest
    loop_lag: list[tuple[int, int]]
    out: Path | None = None
    interrupted: bool = False
    cpu: list[tuple[int, int]] = field(default_factory=list)  # (perf_counter_ns, process_time_ns), loadgen.cpu


@dataclass
class Hooks:
    """What a front end (the CLI's progress bar, a test, a capacity search) may observe while a run
    goes: a target starting (with its request total when known), each record, each measured stage
    starting, and notices (the metrics address, fallbacks)."""

    on_target: Callable[[str, int | None], None] | None = None
    on_record: Callable[[RequestRecord], None] | None = None
    on_stage: Callable[[str, str], None] | None = None
    notify: Callable[[str], None] = field(default=lambda _: None)


def run(profile: Profile, out: Path | None = None, *, argv: Sequence[str] = (),
        engine_builds: Sequence[dict[str, Any]] = (), hooks: Hooks | None = None, report: bool = True) -> RunResult:
    """Run ``profile`` against its targets, write the run's files into ``out`` (default: the
    profile's ``out``, else ``results/<timestamp>``) and return the result. Raises
    ``RunSetupError`` before any request when the run cannot start."""
    hooks = hooks or Hooks()
    secrets = _checked_targets(profile)  # before anything is created: nothing is left behind by a bad target
    specs, counter, prompt_stats = build_prompts(profile, hooks.notify)
    out = _output_folder(out or profile.out or Path("results") / time.strftime("%Y%m%d-%H%M%S"))
    manifest = make_manifest(profile, specs, argv, engine_builds, prompt_stats, secrets=secrets)
    (out / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2, exclude_unset=True) + "\n")  # fields only grow
    live = _start_exporter(profile, hooks) if profile.metrics.enabled else None
    sink = JsonlSink(out / RECORDS_FILE)
    loop = _new_event_loop()
    cpu = CpuSampler()
    # Everything built so far (prompts, a tokenizer's vocabulary, the registries) lives for the whole
    # run: moved out of the collector's reach, a full collection mid-run scans only what the run makes
    # (here it took ~25 ms with a tokenizer loaded: one late send in an open loop).
    gc.collect()
    gc.freeze()
    try:
        records, lags, interrupted = loop.run_until_complete(_run_targets(profile, specs, counter, sink, live, hooks,
                                                                              cpu))
        if live is not None and profile.metrics.linger_s:
            time.sleep(profile.metrics.linger_s)  # a last scrape sees the final counts
    finally:
        gc.unfreeze()
        sink.close()
        loop.close()
        if live is not None:
            live.close()
    write_pairs(lags, out / LOOP_LAG_FILE)
    write_samples(cpu.samples, out / CPU_FILE)
    summary = summarize_run(records, lags, manifest, profile, cpu=cpu.samples)
    result = RunResult(records, summary, manifest, lags, out, interrupted, cpu.samples)
    write_outputs(result, report=report)
    return result


def _checked_targets(profile: Profile) -> set[str]:
    """Every target resolved and its client built (``loadgen.targets``); the secrets never to write."""
    try:
        return check_targets(profile)
    except ValueError as exc:
        raise RunSetupError(str(exc)) from exc


def build_prompts(profile: Profile, notify: Callable[[str], None] | None = None,
                  ) -> tuple[list[RequestSpec], Counter | None, dict[str, int]]:
    """The run's request specs, the client-side token counter (None without a local tokenizer), and
    what the source reported about its input (``prompt_stats``: a trace's clipped and skipped rows).
    Every stage checks it can send these prompts (``replay`` needs arrival times) before the run."""
    try:
        tokenizer = LocalTokenizer(profile.prompts.tokenizer) if profile.prompts.tokenizer else None
        context = PromptContext(seed=profile.seed, tokenizer=tokenizer, server_counter=_server_counter(profile),
                                progress=PromptProgress(notify) if notify is not None else None)
        specs = profile.prompts.build(context)
        if not specs:
            raise PromptError("the prompt source gave no requests")
        for stage in profile.resolved_stages():
            stage.check_prompts(specs)
        return specs, tokenizer.count if tokenizer else None, dict(context.stats)
    except (PromptError, OSError) as exc:
        raise RunSetupError(str(exc)) from exc


def _server_counter(profile: Profile) -> Callable[[], Counter] | None:
    """Token counting at the first target whose API has ``/tokenize``."""
    for target in profile.targets:
        if client_class(target.kind).has_tokenize:
            return lambda t=target: server_counter(t.url, profile.model_for(t), client_options(profile, t))
    return None


def _output_folder(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(f"cannot create the output folder {out}: {exc}") from exc
    if (out / RECORDS_FILE).exists() and (out / RECORDS_FILE).stat().st_size > 0:  # an empty one loses nothing
        raise RunSetupError(f"{out / RECORDS_FILE} exists; choose another output folder (--out)")
    return out


def _start_exporter(profile: Profile, hooks: Hooks) -> LiveMetrics:
    """Serve live metrics; the default port, when taken, falls back to a free one (an explicit port does not)."""
    live = LiveMetrics(profile.name)
    cfg = profile.metrics
    try:
        try:
            port = live.serve(cfg.host, cfg.port)
        except OSError:
            if "port" in cfg.model_fields_set:
                raise
            port = live.serve(cfg.host, 0)
            hooks.notify(f"warning: port {cfg.port} is taken; live metrics on port {port} instead")
    except OSError as exc:
        raise RunSetupError(f"cannot serve live metrics on {cfg.host}:{cfg.port} ({exc}); use --metrics-port 0 "
                            "for any free port, or --no-metrics") from exc
    hooks.notify(f"live metrics: http://{cfg.host}:{port}/metrics")
    return live


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def _run_targets(profile: Profile, specs: list[RequestSpec], counter: Counter | None, sink: JsonlSink,
                       live: LiveMetrics | None,
                       hooks: Hooks, cpu: CpuSampler | None = None,
                       ) -> tuple[list[RequestRecord], list[tuple[int, int]], bool]:
    """Each target in turn, every stage; SIGINT/SIGTERM stop issuing and end the run after the drain."""
    records: list[RequestRecord] = []
    monitor = LoopLagMonitor(listener=live.loop_lag_sample if live else None)
    monitor.start()
    if cpu is not None:
        cpu.start()
    interrupted = False
    stages = profile.resolved_stages()
    total = sum(s.requests or 0 for s in stages) if all(s.requests for s in stages) else None
    sinks: list[Callable[[RequestRecord], None]] = [sink, records.append]
    sinks += [s for s in (live, hooks.on_record) if s is not None]
    # One random start for unique salts, shared by the targets: request i gets the same prompt on
    # every target (``agreement`` pairs them), and no earlier run against a warm server had it.
    salt_base = random.SystemRandom().randrange(1 << 62)
    for target in profile.targets:
        if hooks.on_target is not None:
            hooks.on_target(target.name, total)
        runner = _target_runner(profile, target, specs, counter, sinks, live, hooks, salt_base)
        watched = {i for i, stage in enumerate(stages) if stage.stop_on_saturation}
        if watched:  # loadgen.answers.saturation: ends a stage once the server is saturated
            runner.sinks = [*runner.sinks, SaturationWatch(watched, runner.end_stage)]
        with _stop_on_signals(runner):
            await runner.client.start()
            try:
                await runner.run(stages, profile.warmup)
            finally:
                await runner.client.close()
        if runner.stopped:
            interrupted = True
            break
    await monitor.stop()
    if cpu is not None:
        await cpu.stop()
    return records, monitor.samples, interrupted


def _target_runner(profile: Profile, target: TargetConfig, specs: list[RequestSpec], counter: Counter | None,
                   sinks: list[Callable[[RequestRecord], None]], live: LiveMetrics | None,
                   hooks: Hooks, salt_base: int) -> TargetRunner:
    options = client_options(profile, target)
    on_issue = (lambda stage, t=target.name, k=target.kind: live.issued(t, k, stage)) if live else None
    return TargetRunner(target.name, make_client(target.kind, target.url, options), specs, sinks,
                        seed=profile.seed, on_issue=on_issue, on_stage=hooks.on_stage, salt_base=salt_base,
                        max_in_flight=profile.max_in_flight, drain_timeout_s=profile.drain_timeout_s,
                        client_counter=counter, keep_output_text=profile.agreement is not None)


class _stop_on_signals:
    """SIGINT/SIGTERM ask the runner to stop (only possible on the main thread)."""

    def __init__(self, runner: TargetRunner) -> None:
        self.runner = runner
        self.installed = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.installed:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.runner.request_stop)

    def __exit__(self, *_: object) -> None:
        if self.installed:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def summarize_run(records: Sequence[RequestRecord], lags: Sequence[tuple[int, int]], manifest: Manifest,
                  profile: Profile | None = None, cpu: Sequence[tuple[int, int]] = ()) -> Summary:
    """The typed summary, with the SLO, agreement reference and tokenizer of the run's profile."""
    saved = profile.model_dump(mode="json") if profile is not None else manifest.profile
    reference = (saved.get("agreement") or {}).get("reference")
    tokenizer_dir = (saved.get("prompts") or {}).get("tokenizer")
    tokenize = None
    if reference and tokenizer_dir:
        try:
            tokenize = LocalTokenizer(Path(tokenizer_dir)).encode
        except PromptError:
            tokenize = None  # agreement falls back to characters, and says so in its ``unit``
    return build_summary(records, lags, manifest, saved.get("slo") or {}, agreement_reference=reference,
                         tokenize=tokenize, cpu=cpu)


def write_outputs(result: RunResult, report: bool = True) -> None:
    """summary.json, summary.csv, report.txt and (with ``report``) report.html into ``result.out``."""
    assert result.out is not None
    (result.out / SUMMARY_FILE).write_text(result.summary.to_json())
    csv_render.write_csv(result.summary, result.out / CSV_FILE)
    (result.out / TEXT_FILE).write_text(table_render.to_text(result.summary))
    if report:
        html_render.write(result.records, result.summary, result.loop_lag, result.out / REPORT_FILE)


def load_run(path: Path, rebuild: bool = False) -> RunResult:
    """A saved run. Every file is validated: a damaged or older one raises ``RunFormatError`` naming
    the file and the field. ``rebuild``: return the summary computed again from the records (after
    validating the saved summary.json, when there is one; a killed run has none)."""
    path = Path(path)
    if not (path / RECORDS_FILE).exists():
        raise RunFormatError(f"no {RECORDS_FILE} in {path}")
    manifest = _validated(path / MANIFEST_FILE, Manifest)
    try:
        records = list(read_records(path / RECORDS_FILE))
        lags = read_pairs(path / LOOP_LAG_FILE, "[perf_counter_ns, lag_ns]")
        cpu = read_samples(path / CPU_FILE)  # absent in runs from before the sampler: no CPU share
    except ValueError as exc:
        raise RunFormatError(str(exc)) from exc
    saved = _validated(path / SUMMARY_FILE, Summary) if (path / SUMMARY_FILE).exists() else None
    summary = saved if saved is not None and not rebuild else summarize_run(records, lags, manifest, cpu=cpu)  # type: ignore[arg-type]
    return RunResult(records, summary, manifest, lags, path, cpu=cpu)  # type: ignore[arg-type]


def _validated(path: Path, model: Any) -> Any:
    try:
        return model.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise RunFormatError(f"{path} is missing") from exc
    except ValidationError as exc:
        problems = "; ".join(f"field {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise RunFormatError(f"{path}: {problems}") from exc
