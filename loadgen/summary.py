"""``summary.json`` as typed models, and how it is built from records.

Layout (unchanged since the first release; fields are added, never renamed)::

    {"manifest": {...},
     "targets": {NAME: {<metrics over all stages>, "stages": {STAGE: {<metrics>}},
                        "agreement": {...} | null (only on targets compared with a reference),
                        "ttft_ms_by_turn": {TURN: Stats} (only in multi-turn runs)}}}

<metrics> is ``requests`` ({ok, failed, by_error}) plus one field per registered metric
(``loadgen.metrics.DISTRIBUTIONS``: ``Stats`` or null; ``AGGREGATES``: a number or null), so
the model follows the registry. Every number comes from ``loadgen.metrics`` applied to the
records, so ``loadgen report DIR`` rebuilds exactly what the run printed.

The server's side (``loadgen.observe``; only on targets whose engine was observed, each block on
the target and on every stage): ``resources`` (the engine's CPU, RSS, GPU memory, utilization,
energy and tokens per CPU-second and per joule), ``server`` (the engine's own metrics under one set
of names) and ``ttft_breakdown`` (where the mean TTFT goes). They are computed from
``resources.jsonl`` and ``server_metrics.jsonl`` the same way on a rebuild.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from loadgen import metrics as m
from loadgen.cost import Cost, cost_block
from loadgen.observe.resources import Resources
from loadgen.observe.server_metrics import ServerBlock
from loadgen.observe.summary_blocks import Observed
from loadgen.observe.ttft_breakdown import TtftBreakdown
from loadgen.record import RequestRecord
from loadgen.verdicts import steady
from loadgen.verdicts.agreement import Agreement, Tokenize, agreement, reference_of
from loadgen.verdicts.saturation import saturated
from loadgen.verdicts.validity import Validity, verdict


class RequestCounts(BaseModel):
    ok: int
    failed: int
    by_error: dict[str, int]
    first_error: dict[str, str] | None = None  # error class → the first such request's detail (when any failed)


class Metrics(BaseModel):
    """Base of ``MetricsBlock``: the request counts, and access to metrics by registered name."""

    model_config = ConfigDict(extra="forbid")
    requests: RequestCounts
    # Stages only: the saturation rule (loadgen.verdicts.saturation) held on the stage's records; with
    # ``stop_on_saturation`` the stage ended there. Absent on the all-stages block and in older runs.
    saturated: bool | None = None
    # The engine's side (loadgen.observe): absent when the target's engine was not observed.
    resources: Resources | None = None
    server: ServerBlock | None = None
    ttft_breakdown: TtftBreakdown | None = None
    # With a price for the target (targets[].price_per_hour, --price-per-hour): loadgen.cost; absent otherwise.
    cost: Cost | None = None

    def stats(self, name: str) -> m.Stats | None:
        return getattr(self, name)  # type: ignore[no-any-return]

    def value(self, name: str) -> float | None:
        return getattr(self, name)  # type: ignore[no-any-return]


class SteadyState(BaseModel):
    """``steady`` of a stage (``loadgen.verdicts.steady``): its steady-state window, in seconds after the stage's
    first send, the share of the stage (first send to last end) it covers, whether the throughput plateau test
    held, and the stage's metrics over the window. ``reached`` is false when no window was found or the plateau
    test failed; the window and its metrics are still given when one was found."""

    model_config = ConfigDict(extra="forbid")
    rule: str
    reached: bool
    start_s: float | None = None
    end_s: float | None = None
    share: float | None = None
    plateau: bool | None = None
    metrics: MetricsBlock | None = None  # type: ignore[valid-type]


MetricsBlock: type[Metrics] = create_model(  # type: ignore[call-overload]
    "MetricsBlock", __base__=Metrics,
    **{d.name: (m.Stats | None, None) for d in m.DISTRIBUTIONS},
    **{a.name: (float | None, None) for a in m.AGGREGATES},
    steady=(SteadyState | None, None),  # stages only
)
SteadyState.model_rebuild()


class TargetSummary(MetricsBlock):  # type: ignore[valid-type,misc]
    stages: dict[str, MetricsBlock] = Field(default_factory=dict)  # type: ignore[valid-type]
    agreement: Agreement | None = None  # absent on the reference target; null when nothing could be paired
    # Multi-turn runs only (absent otherwise): ``ttft_ms`` of the successful requests of each turn
    # index ("1" = sessions' first turns), over all stages: what a prefix cache does to later turns.
    ttft_ms_by_turn: dict[str, m.Stats] | None = None
    # Whether the client kept its schedule (loadgen.verdicts.validity); absent in runs from before it.
    validity: Validity | None = None


class Host(BaseModel):
    hostname: str
    platform: str
    cpus: int | None


class Clock(BaseModel):
    """Records hold ``perf_counter_ns`` of the run's process; this pair maps them to wall time."""

    perf_counter_ns: int
    unix_ns: int


class Manifest(BaseModel):
    """``manifest.json``: everything needed to know what a run did and to repeat it."""

    model_config = ConfigDict(extra="allow")
    versions: dict[str, str]
    profile: dict[str, Any]
    targets: list[dict[str, Any]]
    seed: int
    dataset_hash: str
    prompts: int
    host: Host
    started_at: str
    command: list[str]
    clock: Clock
    engine_builds: list[dict[str, Any]] = Field(default_factory=list)
    # What the prompt source left out or changed (a trace: rows, used, clipped, skipped_*); absent when nothing.
    prompt_stats: dict[str, int] = Field(default_factory=dict)


class WorkerReport(BaseModel):
    """``summary.json → workers[]`` and ``workers.json``: one worker process of the run."""

    worker: int
    pid: int
    share: str  # "K/N" of the run's schedule
    requests: int  # records it sent back (including warm-up)
    lost: int = 0  # in flight when it died: recorded as ``worker_lost``
    exit_code: int | None = None
    died: bool = False
    cpu_share: float | None = None  # its CPU time ÷ wall time over the run (1.0 = one core)
    loop_lag_p99_ms: float | None = None
    loop_lag_max_ms: float | None = None
    host: str | None = None  # ``loadgen merge``: the host of the shard it came from
    shard: int | None = None  # ``loadgen merge``: the shard folder's position on the command line


class Summary(BaseModel):
    manifest: Manifest
    targets: dict[str, TargetSummary]
    workers: list[WorkerReport] | None = None  # each --workers process (loadgen.scaling); absent otherwise

    def to_json(self) -> str:
        # exclude_unset keeps "agreement" off the reference target, as the first release wrote it.
        return self.model_dump_json(indent=2, exclude_unset=True) + "\n"


def summarize(records: Sequence[RequestRecord], loop_lags_ms: Sequence[float],
              slo: dict[str, float | None]) -> Metrics:
    """The metrics block for one set of records (warm-up requests are dropped here)."""
    records = m.measured(records)
    ok = sum(1 for r in records if r.ok)
    counts = RequestCounts(ok=ok, failed=len(records) - ok, by_error=m.errors_by_class(records))
    if ok < len(records):
        counts.first_error = m.first_errors(records)
    values: dict[str, Any] = {"requests": counts}
    for d in m.DISTRIBUTIONS:
        if d.samples is None:
            s = m.stats(loop_lags_ms)
        else:
            s = m.stats(itertools.chain.from_iterable(map(d.samples, m.ok_or_all(records, d.ok_only))))
        values[d.name] = s.rounded() if s is not None else None
    for a in m.AGGREGATES:
        value = a.compute(records, slo)
        values[a.name] = round(value, 3) if value is not None else None
    return MetricsBlock(**values)


def build_summary(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]], manifest: Manifest,
                  slo: dict[str, float | None], agreement_reference: str | None = None,
                  agreement_references: Mapping[str, str] | None = None, tokenize: Tokenize | None = None,
                  cpu: Sequence[Sequence[tuple[int, int]]] = (),
                  observed: Observed | None = None, closed_loops: Mapping[int, int] | None = None,
                  prices: Mapping[str, float] | None = None, usd_per_kwh: float | None = None) -> Summary:
    """Per target, over all stages and per stage. ``loop_lag``: (perf_counter_ns, lag ns) samples,
    attributed to a target/stage by the window its records span. ``cpu``: each client process's CPU
    samples (``loadgen.cpu``; one series, or one per ``--workers`` process) for the validity verdict.
    ``observed``: the engines' samples (``loadgen.observe``). ``closed_loops``: stage index → concurrency of
    each closed-loop stage (the steady-state rule; other stages are open loops). ``prices``: target → price per
    hour in USD, for the ``cost`` blocks (``usd_per_kwh`` prices measured energy)."""
    observed = observed or Observed()
    targets: dict[str, TargetSummary] = {}
    for target in dict.fromkeys(r.target for r in records):
        mine = [r for r in records if r.target == target and not r.warmup]
        block = summarize(mine, lags_within(mine, loop_lag), slo)
        stages = {}
        for stage in sorted({r.stage for r in mine}):
            in_stage = [r for r in mine if r.stage == stage]
            stages[in_stage[0].stage_name] = summarize(in_stage, lags_within(in_stage, loop_lag), slo)
            stages[in_stage[0].stage_name].saturated = saturated(in_stage)
            stages[in_stage[0].stage_name].steady = steady_state(in_stage, (closed_loops or {}).get(stage), loop_lag,
                                                                 slo)
            observed.attach(stages[in_stage[0].stage_name], in_stage, target, in_stage[0].stage_name)
        observed.attach(block, mine, target, None)
        summary = TargetSummary(**{k: v for k, v in block if k in block.model_fields_set}, stages=stages)
        if prices and target in prices:
            price_blocks(summary, mine, prices[target], slo, usd_per_kwh)
        summary.validity = verdict(mine, lags_within(mine, loop_lag), cpu)
        summary.validity.warnings = steady_warnings(stages)
        by_turn = ttft_by_turn(mine)
        if by_turn:
            summary.ttft_ms_by_turn = by_turn
        reference = reference_of(target, agreement_reference, agreement_references or {})
        if reference is not None:
            summary.agreement = agreement(records, reference, target, tokenize)
        targets[target] = summary
    return Summary(manifest=manifest, targets=targets)


STEADY_SUFFIX = " steady"  # the row of a stage's steady state in summary.csv and the tables: "c4 steady"


def windows(target: Metrics, stages: bool = True) -> list[tuple[str, Metrics]]:
    """The windows a target's figures are given over, in table order: ``all``, then each stage (unless
    ``stages`` is false) followed by its steady state, ``"<stage> steady"``, when it has one."""
    found: list[tuple[str, Metrics]] = [("all", target)]
    for name, block in target.stages.items():  # type: ignore[attr-defined]
        if stages:
            found.append((name, block))
        if block.steady is not None and block.steady.metrics is not None:
            found.append((f"{name}{STEADY_SUFFIX}", block.steady.metrics))
    return found


def steady_state(records: Sequence[RequestRecord], concurrency: int | None, loop_lag: Sequence[tuple[int, int]],
                 slo: dict[str, float | None]) -> SteadyState:
    """The ``steady`` block of one stage's records (``loadgen.verdicts.steady``). The window is kept to the
    nanosecond (9 decimals): ``compare --steady`` and ``search --steady`` select the same requests from it."""
    window = steady.window_of(records, concurrency)
    if window is None:
        loop = f"closed loop of {concurrency}" if concurrency else "open loop"
        return SteadyState(rule=f"{loop}: no steady-state window (never at full load before the drain)",
                           reached=False)
    measured = m.measured(records)
    first, last = min(r.sent_ns for r in measured), max(r.end_ns for r in measured)
    inside = steady.sent_within(records, window)
    block = summarize(inside, [lag / 1e6 for t, lag in loop_lag if window.start_ns <= t <= window.end_ns], slo)
    for name, value in steady.throughput(records, window, slo).items():
        setattr(block, name, round(value, 3))
    flat = steady.plateau(records, window)
    return SteadyState(rule=window.rule, reached=flat, start_s=round((window.start_ns - first) / m.NS_PER_S, 9),
                       end_s=round((window.end_ns - first) / m.NS_PER_S, 9),
                       share=round((window.end_ns - window.start_ns) / (last - first), 4) if last > first else None,
                       plateau=flat, metrics=block)


def price_blocks(target: TargetSummary, records: Sequence[RequestRecord], price_per_hour: float,
                 slo: dict[str, float | None], usd_per_kwh: float | None) -> None:
    """A ``cost`` block (``loadgen.cost``) on the target, each stage and each stage's steady state, from each
    block's own rates."""
    limits = (slo.get("ttft_ms"), slo.get("tpot_ms"), slo.get("e2e_ms"))
    blocks: list[tuple[Metrics, list[RequestRecord]]] = [(target, list(records))]
    for name, stage in target.stages.items():
        mine = [r for r in records if r.stage_name == name]
        blocks.append((stage, mine))
        if stage.steady is not None and stage.steady.metrics is not None:
            blocks.append((stage.steady.metrics, steady.steady_records(mine, stage.steady.start_s,
                                                                        stage.steady.end_s)))
    for block, mine in blocks:
        out = block.value("output_tokens_per_s")
        share = m.good_token_share(mine, *limits) if any(v is not None for v in limits) else None
        block.cost = cost_block(price_per_hour, out, block.value("input_tokens_per_s"),
                                None if share is None or out is None else out * share, usd_per_kwh=usd_per_kwh,
                                energy_j=block.resources.energy_j if block.resources is not None else None,
                                output_tokens=sum(r.output_tokens or 0 for r in mine if r.ok))


def steady_warnings(stages: Mapping[str, Metrics]) -> list[str]:
    """The validity verdict's warnings about steady state: a stage that never reached it, or whose steady window
    covers less than half of it (its whole-stage figures are mostly ramp-up and drain)."""
    found = []
    for name, block in stages.items():
        s = block.steady  # type: ignore[attr-defined]
        if s is None:
            continue
        if not s.reached:
            why = "throughput did not plateau" if s.plateau is False else "no window at full load"
            found.append(f"stage {name} never reached steady state ({why}): read its figures as ramp-up and drain")
        elif s.share is not None and s.share < 0.5:
            found.append(f"stage {name}: steady state covered {s.share:.0%} of the stage (< 50%): its whole-stage "
                         "figures lean on ramp-up and drain; use its `steady` block")
    return found


def ttft_by_turn(records: Sequence[RequestRecord]) -> dict[str, m.Stats]:
    """``ttft_ms`` stats per turn index of the measured records that belong to a session."""
    turns = sorted({r.turn for r in records if r.turn is not None and not r.warmup})
    found = {}
    for turn in turns:
        s = m.stats(m.ttft_ms(r) for r in records if r.turn == turn and r.ok and not r.warmup)
        if s is not None:
            found[str(turn)] = s.rounded()
    return found


def lags_within(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]]) -> list[float]:
    """Loop-lag samples (ms) taken while these records were in flight."""
    if not records:
        return []
    start, end = min(r.sent_ns for r in records), max(r.end_ns for r in records)
    return [lag / 1e6 for t, lag in loop_lag if start <= t <= end]
