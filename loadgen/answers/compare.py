"""Run A against run B: per target and stage, each metric's two values, the difference, a 95%
bootstrap confidence interval of the difference, and a verdict (better, worse, no significant change).

Why a bootstrap from the per-request records: a p99 has no closed-form standard error, and the
records are what both runs kept. The interval is the percentile bootstrap: ``RESAMPLES`` times,
draw each run's requests with replacement (as many as it had), compute the metric on both
resamples, take B − A; the interval is the 2.5th and 97.5th percentile of those differences
(``m.percentile``). Requests, not samples, are resampled: a request's ITL gaps stay together.
An aggregate (``output_tokens_per_s``) is recomputed by its registered function on the resampled
records. The random draws are seeded (``SEED``, and the target, stage and metric names), so the
same two runs always give the same answer.

Verdict: the change is significant when the interval excludes 0; it is *better* when it moves
the way the metric's descriptor says is better (``better="lower"`` for latencies, ``"higher"``
for throughputs), else *worse*.

``--fail-if 'ttft_ms.p99>+10%'`` holds *with significance* when the whole interval lies beyond
the threshold: for ``>``, the interval's lower end (relative to A's value with ``%``, else in
the metric's unit) exceeds the threshold; for ``<``, its upper end is below it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from loadgen import metrics as m
from loadgen.api import RunResult
from loadgen.record import RequestRecord
from loadgen.summary import lags_within
from loadgen.verdicts.steady import steady_records
from loadgen.verdicts.validity import Validity, verdict

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
STATS = ("mean", "p50", "p90", "p95", "p99", "p999", "min", "max")
DEFAULT_METRICS = ("ttft_ms.p50", "ttft_ms.p99", "tpot_ms.p50", "itl_ms.p50", "e2e_ms.p99", "output_tokens_per_s",
                   "requests_per_s")

Verdict = Literal["better", "worse", "no significant change", "n/a"]


class CompareError(ValueError):
    """The runs cannot be compared as asked (nothing in common, an invalid run, a bad --metric)."""


class MetricRef(BaseModel):
    """``ttft_ms.p99`` (a distribution and a statistic) or ``output_tokens_per_s`` (an aggregate)."""

    text: str
    name: str
    stat: str | None
    better: Literal["lower", "higher"]

    @classmethod
    def parse(cls, text: str) -> MetricRef:
        name, _, stat = text.strip().partition(".")
        for d in m.DISTRIBUTIONS:
            if d.name == name and d.samples is not None:
                if stat not in STATS:
                    raise CompareError(f"--metric {text!r}: give a statistic, one of {', '.join(STATS)} "
                                       f"(e.g. {name}.p99)")
                return cls(text=text.strip(), name=name, stat=stat, better=d.better)
        for a in m.AGGREGATES:
            if a.name == name and not stat:
                return cls(text=text.strip(), name=name, stat=None, better=a.better)
        known = [f"{d.name}.STAT" for d in m.DISTRIBUTIONS if d.samples is not None] + [a.name for a in m.AGGREGATES]
        raise CompareError(f"--metric {text!r}: unknown; known: {', '.join(known)}")

    def statistic(self, slo: dict[str, float | None]) -> Callable[[Sequence[RequestRecord]], float | None]:
        """The metric as a function of a list of records."""
        d = next((d for d in m.DISTRIBUTIONS if d.name == self.name and d.samples is not None), None)
        if d is None:
            aggregate = next(a for a in m.AGGREGATES if a.name == self.name)
            return lambda records: aggregate.compute(records, slo)
        return _distribution_statistic(d, self.stat or "p50")


def _distribution_statistic(d: m.Distribution, stat: str) -> Callable[[Sequence[RequestRecord]], float | None]:
    """One statistic of a distribution over records: the same formulas as ``m.stats``."""
    samples = d.samples
    assert samples is not None
    quantile = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9, "min": 0.0, "max": 100.0}.get(stat)

    def of(records: Sequence[RequestRecord]) -> float | None:
        values = sorted(v for r in m.ok_or_all(records, d.ok_only) for v in samples(r))
        if not values:
            return None
        return sum(values) / len(values) if quantile is None else m.percentile(values, quantile)

    return of


class Rule(BaseModel):
    """``--fail-if METRIC>+10%`` / ``METRIC<-5%`` / ``METRIC>+20`` (metric units)."""

    text: str
    metric: MetricRef
    op: Literal[">", "<"]
    amount: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Rule:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*([<>])\s*([+-]?[0-9.]+)\s*(%?)\s*", text)
        if not match:
            raise CompareError(f"--fail-if {text!r}: expected METRIC>+10% or METRIC<-5% (or an amount in the "
                               "metric's unit without %), e.g. 'ttft_ms.p99>+10%'")
        return cls(text=text.strip(), metric=MetricRef.parse(match[1]), op=match[2],  # type: ignore[arg-type]
                   amount=float(match[3]), relative=bool(match[4]))

    def holds(self, row: Row) -> bool:
        low, high = (row.ci_low_pct, row.ci_high_pct) if self.relative else (row.ci_low, row.ci_high)
        if low is None or high is None:
            return False
        return low > self.amount if self.op == ">" else high < self.amount


class Row(BaseModel):
    """One metric of one target and stage in both runs. ``diff`` = B − A; ``*_pct`` relative to A."""

    target: str
    stage: str
    metric: str
    better: Literal["lower", "higher"]
    a: float | None
    b: float | None
    diff: float | None = None
    diff_pct: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    verdict: Verdict = "n/a"


def bootstrap_ci(a: Sequence[RequestRecord], b: Sequence[RequestRecord],
                 statistic: Callable[[Sequence[RequestRecord]], float | None], rng: random.Random,
                 resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile bootstrap interval of statistic(B) − statistic(A), resampling requests."""
    diffs = []
    for _ in range(resamples):
        va, vb = statistic(rng.choices(a, k=len(a))), statistic(rng.choices(b, k=len(b)))
        if va is not None and vb is not None:
            diffs.append(vb - va)
    if len(diffs) < resamples // 2:
        return None
    diffs.sort()
    tail = (1 - level) / 2 * 100
    return m.percentile(diffs, tail), m.percentile(diffs, 100 - tail)


def compare_records(a: Sequence[RequestRecord], b: Sequence[RequestRecord], metric: MetricRef,
                    slo: dict[str, float | None], rng: random.Random, resamples: int = RESAMPLES,
                    where: tuple[str, str] = ("", "")) -> Row:
    """One row: both values, the difference, its interval and the verdict (measured records only)."""
    a, b = m.measured(a), m.measured(b)
    statistic = metric.statistic(slo)
    va, vb = statistic(a), statistic(b)
    row = Row(target=where[0], stage=where[1], metric=metric.text, better=metric.better, a=va, b=vb)
    if va is None or vb is None:
        return row
    row.diff = vb - va
    ci = bootstrap_ci(a, b, statistic, rng, resamples)
    if ci is None:
        return row
    row.ci_low, row.ci_high = ci
    if va:
        row.diff_pct, row.ci_low_pct, row.ci_high_pct = (100 * x / abs(va) for x in (row.diff, *ci))
    if ci[0] > 0 or ci[1] < 0:
        up = ci[0] > 0
        row.verdict = "better" if up == (metric.better == "higher") else "worse"
    else:
        row.verdict = "no significant change"
    return row


class Comparison(BaseModel):
    """``compare.json``: every row, the rules that held, and how the intervals were made."""

    run_a: str
    run_b: str
    resamples: int
    seed: int
    level: float = LEVEL
    rows: list[Row]
    rules: list[str]
    failed_rules: list[str]
    notes: list[str]


def run_validity(result: RunResult, target: str) -> Validity:
    """The saved verdict, or (a run from before verdicts) one computed from its records now."""
    saved = result.summary.targets[target].validity
    if saved is not None:
        return saved
    mine = [r for r in result.records if r.target == target and not r.warmup]
    return verdict(mine, lags_within(mine, result.loop_lag), result.cpu_series)


def compare_runs(a: RunResult, b: RunResult, metrics: Sequence[MetricRef], rules: Sequence[Rule] = (), *,
                 allow_invalid: bool = False, resamples: int = RESAMPLES, seed: int = SEED,
                 steady_state: bool = False) -> Comparison:
    """Every target and stage present in both runs, every metric (and every rule's metric). ``steady_state``:
    each stage's requests sent inside its steady-state window only (``loadgen.verdicts.steady``); a stage
    without one in either run is left out, with a note."""
    targets = [t for t in a.summary.targets if t in b.summary.targets]
    if not targets:
        raise CompareError(f"the runs share no target: A has {sorted(a.summary.targets)}, "
                           f"B has {sorted(b.summary.targets)}")
    notes = _check_validity(a, b, targets, allow_invalid)
    wanted = list({ref.text: ref for ref in [*metrics, *(rule.metric for rule in rules)]}.values())
    slo = a.manifest.profile.get("slo") or {}
    rows = []
    for target in targets:
        for stage in [s for s in a.summary.targets[target].stages if s in b.summary.targets[target].stages]:
            ra = [r for r in a.records if r.target == target and r.stage_name == stage]
            rb = [r for r in b.records if r.target == target and r.stage_name == stage]
            if steady_state:
                ra, rb = _steady(a, target, stage, ra), _steady(b, target, stage, rb)
                if not ra or not rb:
                    notes.append(f"{target} {stage}: no steady-state window in run {'A' if not ra else 'B'}; "
                                 "left out")
                    continue
            for ref in wanted:
                rng = random.Random(f"{seed}:{target}:{stage}:{ref.text}")
                rows.append(compare_records(ra, rb, ref, slo, rng, resamples, (target, stage)))
    if not rows:
        raise CompareError("the runs share no stage name for any target; compare runs of the same profile")
    failed = [f"{rule.text} ({row.target}, {row.stage})" for rule in rules for row in rows
              if row.metric == rule.metric.text and rule.holds(row)]
    return Comparison(run_a=str(a.out), run_b=str(b.out), resamples=resamples, seed=seed, rows=rows,
                      rules=[r.text for r in rules], failed_rules=failed, notes=notes)


def _steady(result: RunResult, target: str, stage: str, records: list[RequestRecord]) -> list[RequestRecord]:
    block = result.summary.targets[target].stages[stage].steady
    return [] if block is None else steady_records(records, block.start_s, block.end_s)


def _check_validity(a: RunResult, b: RunResult, targets: Sequence[str], allow_invalid: bool) -> list[str]:
    notes, refused = [], []
    for label, result in (("A", a), ("B", b)):
        for target in targets:
            v = run_validity(result, target)
            if not v.valid:
                line = f"run {label} ({result.out}) is invalid for {target}: {'; '.join(v.reasons)}"
                (notes if allow_invalid else refused).append(line)
    if refused:
        raise CompareError("; ".join(refused) + " — its figures measure the client; pass --allow-invalid to "
                           "compare anyway")
    return notes
