"""The rig as a library: ``run(profile) -> RunResult`` and ``load_run(dir) -> RunResult``.

Why one entry point: the CLI, the selftest, the demo, the benchmarks, the tests (and the
searches, comparisons and studies built on runs) must all run load the same way, with the
same records, files and exporter; none of them builds argv lists or reads summary.json
back. A run writes into its output folder as it goes::

    manifest.json   before the first request (what the run is)
    records.jsonl   one line per request as it ends (a killed run keeps what finished)
    loop_lag.jsonl  the client's event-loop lag samples
    cpu.jsonl       the client's own CPU time samples (loadgen.cpu; the validity verdict's CPU share)
    resources.jsonl, server_metrics.jsonl   the engines' resources and own metrics (loadgen.observe)
    summary.json, summary.csv, report.txt, report.html   at the end

Example::

    from loadgen.api import run
    from loadgen.config import Profile
    result = run(Profile.model_validate({...}), out=Path("results/x"))
    result.summary.targets["vllm"].stats("ttft_ms").p99
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loadgen.clients import RequestSpec, client_class, make_client
from loadgen.config import Profile, TargetConfig
from loadgen.cpu import CPU_FILE, CpuSampler, read_samples, write_samples
from loadgen.exporter import LiveMetrics
from loadgen.manifest import make_manifest
from loadgen.observe import sampler as observe
from loadgen.observe.summary_blocks import Observed, read_observed
from loadgen.record import RequestRecord
from loadgen.registry import OUTPUTS

# The output formats' files, re-exported: callers name them as api.REPORT_FILE and the like.
from loadgen.render.csv import CSV_FILE as CSV_FILE
from loadgen.render.html import REPORT_FILE as REPORT_FILE
from loadgen.render.output import formats
from loadgen.render.table import TEXT_FILE as TEXT_FILE
from loadgen.runner import SOLO, Coordination, FirstGate, LoopLagMonitor, TargetRunner
from loadgen.scaling.coordinator import Coordinator, WorkerReport, WorkerSamples, read_reports, write_reports
from loadgen.scaling.share import WHOLE, Share
from loadgen.sinks.jsonl import LOOP_LAG_FILE, RECORDS_FILE, JsonlSink, read_pairs, read_records, write_pairs
from loadgen.sources.base import PromptContext, PromptProgress
from loadgen.summary import Manifest, Summary, build_summary
from loadgen.targets import check_targets, client_options
from loadgen.tokens import LocalTokenizer, PromptError, TokenCounter, server_counter
from loadgen.verdicts.saturation import SaturationWatch

MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"


class RunSetupError(ValueError):
    """The run cannot start as asked (prompts, output folder, metrics port); nothing was sent."""


class RunFormatError(ValueError):
    """A saved run's files do not match the current format; the message names the file and field."""


class RunWriteError(OSError):
    """The run could not write its records (a full disk): it stopped at the first failed write, every complete
    record kept in records.jsonl; the message says what failed and how many were kept."""


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
    workers: list[WorkerReport] = field(default_factory=list)  # one per --workers process (loadgen.scaling)
    worker_samples: list[WorkerSamples] = field(default_factory=list)  # their loop-lag and CPU samples
    observed: Observed = field(default_factory=Observed)  # the engines' samples (loadgen.observe)

    @property
    def cpu_series(self) -> list[list[tuple[int, int]]]:
        """CPU samples per client process: the run's own, or each worker's."""
        return [self.cpu] if not self.worker_samples else [s.cpu for s in self.worker_samples]


@dataclass
class Hooks:
    """What a front end (the CLI's progress bar, a test, a capacity search) may observe while a run
    goes: a target starting (with its request total when known), each record, each measured stage
    starting, and notices (the metrics address, fallbacks)."""

    on_target: Callable[[str, int | None], None] | None = None
    on_record: Callable[[RequestRecord], None] | None = None
    on_stage: Callable[[str, str], None] | None = None
    notify: Callable[[str], None] = field(default=lambda _: None)
    on_workers: Callable[[list[int]], None] | None = None  # ``--workers N``: the worker processes' pids, at start


def run(profile: Profile, out: Path | None = None, *, argv: Sequence[str] = (),
        engine_builds: Sequence[dict[str, Any]] = (), hooks: Hooks | None = None, report: bool = True,
        share: Share = WHOLE, start_at: float | None = None) -> RunResult:
    """Run ``profile`` against its targets, write the run's files into ``out`` (default: the
    profile's ``out``, else ``results/<timestamp>``) and return the result. Raises
    ``RunSetupError`` before any request when the run cannot start. ``profile.workers`` > 1 runs it
    in that many processes (``loadgen.scaling.coordinator``); ``share`` runs only this host's share of it
    (``--shard K/N``, merged afterwards with ``loadgen merge``), its first stage at ``start_at``
    (unix seconds)."""
    hooks = hooks or Hooks()
    secrets = _checked_targets(profile)  # before anything is created: nothing is left behind by a bad target
    specs, counter, prompt_stats = build_prompts(profile, hooks.notify)
    # The live-metrics port before the folder: a port already taken is bad input, and bad input leaves nothing.
    live = start_exporter(profile, hooks) if profile.metrics.enabled else None
    try:
        out = _output_folder(out or profile.out or Path("results") / time.strftime("%Y%m%d-%H%M%S"))
        manifest = make_manifest(profile, specs, argv, engine_builds, prompt_stats, secrets=secrets,
                                 share=None if share.whole else f"{share.k}/{share.n}")
        (out / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2, exclude_unset=True) + "\n")
    except BaseException:
        if live is not None:
            live.close()
        raise
    sink = JsonlSink(out / RECORDS_FILE)
    observer = observe.for_profile(profile, out, hooks.notify)  # engine samples, off the event loop
    if observer is not None:
        hooks = observer.observing(hooks)
    try:
        with quiet_collector():
            if profile.workers > 1:
                result = _in_workers(profile, specs, sink, live, hooks, share, start_at)
            else:
                result = _in_process(profile, specs, counter, sink, live, hooks,
                                     Coordination(share, FirstGate(start_at)))
            if live is not None and profile.metrics.linger_s:
                time.sleep(profile.metrics.linger_s)  # a last scrape sees the final counts
    finally:
        sink.close()
        observed = observer.finish() if observer is not None else Observed()
        if live is not None:
            live.close()
    if sink.error is not None:
        raise RunWriteError(f"the run stopped: {sink.error}; {sink.written} complete records kept in "
                            f"{sink.path} (`loadgen report {out}` rebuilds the summary once there is space)")
    result.out, result.manifest, result.observed = out, manifest, observed
    write_pairs(result.loop_lag, out / LOOP_LAG_FILE)
    write_samples(result.cpu, out / CPU_FILE)
    if result.workers:
        write_reports(result.workers, result.worker_samples, out)
    result.summary = summarize_run(result.records, result.loop_lag, manifest, profile, result.cpu_series,
                                   result.workers, observed=result.observed)
    write_outputs(result, report=report)
    return result


def _in_process(profile: Profile, specs: list[RequestSpec], counter: TokenCounter | None, sink: JsonlSink,
                live: LiveMetrics | None, hooks: Hooks, coordination: Coordination) -> RunResult:
    """The run on this process's event loop (the summary and manifest are filled in by ``run``)."""
    loop = _new_event_loop()
    cpu = CpuSampler()
    try:
        records, lags, interrupted = loop.run_until_complete(
            _run_targets(profile, specs, counter, sink, live, hooks, cpu, coordination))
    finally:
        loop.close()
    return RunResult(records, None, None, lags, None, interrupted, cpu.samples)  # type: ignore[arg-type]


def _in_workers(profile: Profile, specs: list[RequestSpec], sink: JsonlSink, live: LiveMetrics | None, hooks: Hooks,
                share: Share, start_at: float | None) -> RunResult:
    """The run in ``profile.workers`` processes (``loadgen.scaling.coordinator``); records arrive here as they end."""
    total = _request_total(profile)

    def on_gate(target: int, stage: int) -> None:
        name = profile.targets[target].name
        if stage < 0 and hooks.on_target is not None:
            hooks.on_target(name, total)
        elif stage >= 0 and hooks.on_stage is not None:
            hooks.on_stage(name, profile.resolved_stages()[stage].label)

    def on_record(record: RequestRecord) -> None:
        for observer in (live, hooks.on_record):
            if observer is not None:
                observer(record)

    coordinator = Coordinator(
        profile, specs, profile.workers, share, random.SystemRandom().randrange(1 << 62), sink.write_line,
        on_record, on_issue=live.issued if live else None, on_lag=live.loop_lag_sample if live else None,
        on_gate=on_gate, on_notice=hooks.notify, on_spawn=hooks.on_workers,
        start_at_ns=int(start_at * 1e9) if start_at is not None else None)
    done = coordinator.run()
    return RunResult(done.records, None, None, done.loop_lag, None, done.interrupted,  # type: ignore[arg-type]
                     workers=done.reports, worker_samples=done.samples)


RUN_GC_THRESHOLD = 20_000  # young-generation allocations between collections while requests stream


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """The garbage collector while requests stream. Everything built before (prompts, a tokenizer's vocabulary,
    the registries) lives for the whole run: frozen out of the collector's reach, a full collection mid-run scans
    only what the run makes (it took ~25 ms with a tokenizer loaded: one late send in an open loop). And the
    young generation is collected every ``RUN_GC_THRESHOLD`` allocations instead of 700: each event's parsed
    JSON dies young anyway, and at 500 streams the default thresholds cost 3-4% of the client's CPU (issue 27,
    benchmarks/client_cost.py). Both restored after."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(RUN_GC_THRESHOLD, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def run_share(profile: Profile, specs: list[RequestSpec], share: Share, salt_base: int,
              channel: Any) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """A worker process's part of a run (``loadgen.scaling.coordinator``): its share of every stage on its own
    event loop, each record handed to ``channel.record`` as it ends; returns its loop-lag and CPU samples."""
    counter = LocalTokenizer(profile.prompts.tokenizer).count if profile.prompts.tokenizer else None
    loop = _new_event_loop()
    cpu = CpuSampler()
    try:
        with quiet_collector():
            _, lags, _ = loop.run_until_complete(_run_targets(
                profile, specs, counter, channel.record, None, Hooks(), cpu,
                Coordination(share, channel.gate, channel.started), salt_base=salt_base, lag_listener=channel.lag))
    finally:
        loop.close()
    return lags, cpu.samples


def _request_total(profile: Profile) -> int | None:
    stages = profile.resolved_stages()
    return sum(s.requests or 0 for s in stages) if all(s.requests for s in stages) else None


def _checked_targets(profile: Profile) -> set[str]:
    """Every target resolved and its client built (``loadgen.targets``); the secrets never to write."""
    try:
        return check_targets(profile)
    except ValueError as exc:
        raise RunSetupError(str(exc)) from exc


def build_prompts(profile: Profile, notify: Callable[[str], None] | None = None,
                  ) -> tuple[list[RequestSpec], TokenCounter | None, dict[str, int]]:
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


def _server_counter(profile: Profile) -> Callable[[], TokenCounter] | None:
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


def start_exporter(profile: Profile, hooks: Hooks) -> LiveMetrics:
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


async def _run_targets(profile: Profile, specs: list[RequestSpec], counter: TokenCounter | None,
                       sink: Callable[[RequestRecord], None], live: LiveMetrics | None,
                       hooks: Hooks, cpu: CpuSampler | None = None, coordination: Coordination = SOLO,
                       salt_base: int | None = None, lag_listener: Callable[[int], None] | None = None,
                       ) -> tuple[list[RequestRecord], list[tuple[int, int]], bool]:
    """Each target in turn, every stage; SIGINT/SIGTERM stop issuing and end the run after the drain."""
    records: list[RequestRecord] = []
    monitor = LoopLagMonitor(listener=lag_listener or (live.loop_lag_sample if live else None))
    monitor.start()
    if cpu is not None:
        cpu.start()
    interrupted = False
    stages = profile.resolved_stages()
    total = _request_total(profile)
    sinks: list[Callable[[RequestRecord], None]] = [sink, records.append]
    sinks += [s for s in (live, hooks.on_record) if s is not None]
    # One random start for unique salts, shared by the targets: request i gets the same prompt on
    # every target (``agreement`` pairs them), and no earlier run against a warm server had it.
    if salt_base is None:
        salt_base = random.SystemRandom().randrange(1 << 62)
    for position, target in enumerate(profile.targets):
        if hooks.on_target is not None:
            hooks.on_target(target.name, total)
        runner = _target_runner(profile, target, specs, counter, sinks, live, hooks, salt_base)
        if isinstance(sink, JsonlSink):
            sink.on_failure = runner.request_stop  # a full disk stops the run at its first failed write
        _coordinate(runner, coordination, position)
        watched = {i for i, stage in enumerate(stages) if stage.stop_on_saturation}
        if watched:  # loadgen.verdicts.saturation: ends a stage once the server is saturated
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


def _target_runner(profile: Profile, target: TargetConfig, specs: list[RequestSpec], counter: TokenCounter | None,
                   sinks: list[Callable[[RequestRecord], None]], live: LiveMetrics | None,
                   hooks: Hooks, salt_base: int) -> TargetRunner:
    options = client_options(profile, target)
    on_issue = (lambda stage, t=target.name, k=target.kind: live.issued(t, k, stage)) if live else None
    return TargetRunner(target.name, make_client(target.kind, target.url, options), specs, sinks,
                        seed=profile.seed, on_issue=on_issue, on_stage=hooks.on_stage, salt_base=salt_base,
                        max_in_flight=profile.max_in_flight, drain_timeout_s=profile.drain_timeout_s,
                        client_counter=counter, keep_output_text=profile.agreement is not None)


def _coordinate(runner: TargetRunner, coordination: Coordination, position: int) -> None:
    """This process's share of the target's stages and the gates that align them (``loadgen.scaling.coordinator``)."""
    gate, on_start = coordination.gate, coordination.on_start
    runner.share = coordination.share
    runner.gate = (lambda stage: gate(position, stage)) if gate is not None else None
    runner.on_start = (lambda *fields: on_start(position, *fields)) if on_start is not None else None
    runner.split_in_flight_cap(coordination.share)  # the in-flight cap is split too


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
                  profile: Profile | None = None, cpu: Sequence[Sequence[tuple[int, int]]] = (),
                  workers: Sequence[WorkerReport] = (), observed: Observed | None = None) -> Summary:
    """The typed summary, with the SLO, agreement reference and tokenizer of the run's profile.
    ``cpu``: CPU samples per client process (``RunResult.cpu_series``); ``observed``: the engines'
    samples (``loadgen.observe``)."""
    saved = profile.model_dump(mode="json") if profile is not None else manifest.profile
    reference = (saved.get("agreement") or {}).get("reference")
    references = (saved.get("agreement") or {}).get("references") or {}
    tokenizer_dir = (saved.get("prompts") or {}).get("tokenizer")
    tokenize = None
    if reference and tokenizer_dir:
        try:
            tokenize = LocalTokenizer(Path(tokenizer_dir)).encode
        except PromptError:
            tokenize = None  # agreement falls back to characters, and says so in its ``unit``
    summary = build_summary(records, lags, manifest, saved.get("slo") or {}, agreement_reference=reference,
                            agreement_references=references, tokenize=tokenize, cpu=cpu, observed=observed,
                            closed_loops=closed_loops(profile, saved),
                            prices={t["name"]: t["price_per_hour"] for t in saved.get("targets") or []
                                    if t.get("price_per_hour") is not None},
                            usd_per_kwh=saved.get("usd_per_kwh"))
    if workers:
        summary.workers = list(workers)
    return summary


def closed_loops(profile: Profile | None, saved: dict[str, Any]) -> dict[int, int]:
    """Stage index → concurrency of each closed-loop stage of the run's profile (the steady-state rule,
    ``loadgen.verdicts.steady``); from the manifest's copy of the profile when the run is loaded from its files.
    Empty when that copy no longer validates (a run from an older version): its stages are read as open loops."""
    if profile is None:
        try:
            profile = Profile.model_validate(saved)
        except ValidationError:
            return {}
    return {i: s.concurrency for i, s in enumerate(profile.resolved_stages()) if s.type == "concurrency"}


def write_outputs(result: RunResult, report: bool = True) -> None:
    """summary.json, then every registered output format (``OUTPUTS``: summary.csv, report.txt and, with
    ``report``, report.html) into ``result.out``."""
    assert result.out is not None
    (result.out / SUMMARY_FILE).write_text(result.summary.to_json())
    for output in formats(OUTPUTS.items(), report):
        output.write(result, result.out / output.file)


def load_run(path: Path, rebuild: bool = False, notify: Callable[[str], None] | None = None) -> RunResult:
    """A saved run. Every file is validated: a damaged or older one raises ``RunFormatError`` naming
    the file and the field. ``rebuild``: return the summary computed again from the records (after
    validating the saved summary.json, when there is one; a killed run has none). ``notify`` is told what was
    skipped (a last record cut short)."""
    path = Path(path)
    if not (path / RECORDS_FILE).exists():
        raise RunFormatError(f"no {RECORDS_FILE} in {path}")
    manifest = _validated(path / MANIFEST_FILE, Manifest)
    try:
        records = list(read_records(path / RECORDS_FILE, notify))
        lags = read_pairs(path / LOOP_LAG_FILE, "[perf_counter_ns, lag_ns]")
        cpu = read_samples(path / CPU_FILE)  # absent in runs from before the sampler: no CPU share
        workers, samples = read_reports(path)  # a run with --workers
        observed = read_observed(path)  # resources.jsonl, server_metrics.jsonl (loadgen.observe)
    except ValueError as exc:
        raise RunFormatError(str(exc)) from exc
    result = RunResult(records, None, manifest, lags, path, cpu=cpu, workers=workers,  # type: ignore[arg-type]
                       worker_samples=samples, observed=observed)
    saved = _validated(path / SUMMARY_FILE, Summary) if (path / SUMMARY_FILE).exists() else None
    result.summary = saved if saved is not None and not rebuild else summarize_run(
        records, lags, manifest, cpu=result.cpu_series, workers=workers, observed=observed)
    return result


def _validated(path: Path, model: Any) -> Any:
    try:
        return model.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise RunFormatError(f"{path} is missing") from exc
    except ValidationError as exc:
        problems = "; ".join(f"field {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise RunFormatError(f"{path}: {problems}") from exc
