"""Is a run's measurement trustworthy? A verdict on the client itself, for every target.

Why: a load generator that cannot keep its schedule measures itself, not the server. An
open loop that sends late offers less load than asked and hides queueing (coordinated
omission); a lagging event loop stamps every token late; a saturated core does both. The
verdict says so with the figures behind it, and ``compare`` refuses invalid runs.

The rules (thresholds defined once, in ``THRESHOLDS``; docs/metrics.md, "Validity"):

- send lag p99 > 1 ms: the client sent late (``send_lag_ms`` = sent − intended);
- achieved ÷ offered < 0.97: over each stage, the span of intended send times divided by
  the span of actual send times, (max intended − min intended) / (max sent − min sent); the
  worst stage counts. Comparing the client with its own schedule, not with the nominal rate,
  keeps the Poisson draw's own variation out of the verdict. In a closed loop the intended
  time is the moment a slot freed, so the same figures measure the client's own delay;
- event-loop lag p99 > 5 ms (``loop_lag_ms``): every timestamp is late by about that much;
- client CPU share of a core > 0.90 (``loadgen.cpu.cpu_share`` over the target's window).

A figure that cannot be computed (no CPU samples in a run from before the sampler, a
stage of one request) is null and gives no reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from loadgen import metrics as m
from loadgen.cpu import cpu_share
from loadgen.record import RequestRecord


class Thresholds(BaseModel):
    """Where a run stops being a valid measurement (see the module docstring)."""

    model_config = ConfigDict(frozen=True)
    send_lag_p99_ms: float = 1.0
    achieved_ratio_min: float = 0.97
    loop_lag_p99_ms: float = 5.0
    cpu_share_max: float = 0.90


THRESHOLDS = Thresholds()


class Validity(BaseModel):
    """``summary.json → targets.<name>.validity``."""

    valid: bool
    reasons: list[str]
    cpu_share: float | None = None
    loop_lag_p99_ms: float | None = None
    send_lag_p99_ms: float | None = None
    achieved_ratio: float | None = None
    # What does not make the measurement invalid but changes how to read it (a stage that never reached steady
    # state, or whose steady window is short: loadgen.verdicts.steady); set by the summary.
    warnings: list[str] = Field(default_factory=list)


def achieved_ratio(records: Sequence[RequestRecord]) -> float | None:
    """Achieved ÷ offered send rate: per stage, (max intended − min intended) / (max sent − min sent)
    over its measured requests; the lowest over the stages. None when no stage has two sends apart."""
    ratios = []
    for stage in sorted({r.stage for r in records}):
        mine = [r for r in records if r.stage == stage]
        sent_span = max(r.sent_ns for r in mine) - min(r.sent_ns for r in mine)
        if len(mine) >= 2 and sent_span > 0:
            ratios.append((max(r.intended_ns for r in mine) - min(r.intended_ns for r in mine)) / sent_span)
    return min(ratios) if ratios else None


def verdict(records: Sequence[RequestRecord], loop_lag_ms: Sequence[float],
            cpu: Sequence[Sequence[tuple[int, int]]], thresholds: Thresholds = THRESHOLDS) -> Validity:
    """The verdict for one target's records (warm-up dropped here), the loop-lag samples (ms) taken
    while they were in flight, and the CPU samples ((perf_counter_ns, process_time_ns)) of each client
    process (one, or one per ``--workers`` process: the busiest one's share counts)."""
    records = m.measured(records)
    send = m.stats(m.send_lag_ms(r) for r in records)
    loop = m.stats(loop_lag_ms)
    share = _busiest(cpu, min(r.sent_ns for r in records), max(r.end_ns for r in records)) if records else None
    ratio = achieved_ratio(records)
    t = thresholds
    send_p99 = send.p99 if send else None
    loop_p99 = loop.p99 if loop else None
    checks = [
        (send_p99, lambda v: v > t.send_lag_p99_ms,
         lambda v: f"send lag p99 {v:.2f} ms > {t.send_lag_p99_ms:g} ms: the client sent late"),
        (ratio, lambda v: v < t.achieved_ratio_min,
         lambda v: f"achieved ÷ offered send rate {v:.3f} < {t.achieved_ratio_min:g}: the client did not keep "
                   "its schedule"),
        (loop_p99, lambda v: v > t.loop_lag_p99_ms,
         lambda v: f"event-loop lag p99 {v:.2f} ms > {t.loop_lag_p99_ms:g} ms: the client's timestamps are late"),
        (share, lambda v: v > t.cpu_share_max,
         lambda v: f"client CPU {v:.0%} of a core > {t.cpu_share_max:.0%}: the load generator was saturated"),
    ]
    reasons = [say(value) for value, failed, say in checks if value is not None and failed(value)]
    return Validity(valid=not reasons, reasons=reasons, cpu_share=_round(share), loop_lag_p99_ms=_round(loop_p99),
                    send_lag_p99_ms=_round(send_p99), achieved_ratio=_round(ratio))


def _busiest(cpu: Sequence[Sequence[tuple[int, int]]], start_ns: int, end_ns: int) -> float | None:
    shares = [share for series in cpu if (share := cpu_share(series, start_ns, end_ns)) is not None]
    return max(shares) if shares else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
