"""``loadgen search``: the highest open-loop rate (or concurrency) at which an SLO holds.

Why bracketing then bisection: the latency of a server rises monotonically with its load (up to
noise), so the SLO holds below some capacity and fails above it. Bracketing doubles the load
from the start value while the SLO holds (or halves it while it fails) until one passing and one
failing load are known; bisection then halves the bracket [lo, hi] until (hi − lo) / lo ≤
``resolution`` (for concurrency, also when hi − lo ≤ 1), or ``max_steps`` stages have run. The
answer is ``lo``, the highest load that passed: the capacity lies in [lo, hi).

Every step is a real stage through ``loadgen.api.run`` (the profile's warm-up, prompts, request
settings and stage length; ``stop_on_saturation`` on, so an overloaded step ends early), written
into its own folder. A step passes when every given p99 limit holds (``ttft_ms``, ``tpot_ms``,
``e2e_ms`` p99 over its successful requests), the stage was not saturated, and either no request
failed or, with ``goodput``, at least that share of its requests met every limit per request
(``metrics.meets_slo``; a failed request meets none). Each step also carries the run's validity
verdict: an invalid step is kept and flagged, since its latencies include the client's own delay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from loadgen import api
from loadgen import metrics as m
from loadgen.config import Profile
from loadgen.cost import Cost
from loadgen.registry import SHAPES
from loadgen.verdicts.steady import steady_records

SEARCH_FILE = "search.json"
LIMITS = {"ttft_p99_ms": "ttft_ms", "tpot_p99_ms": "tpot_ms", "e2e_p99_ms": "e2e_ms"}
Over = Literal["rate", "concurrency"]


class SearchError(ValueError):
    """The search cannot start as asked (an SLO without limits, a profile whose load cannot be varied)."""


class SLO(BaseModel):
    """p99 limits in ms; ``None`` is not checked."""

    ttft_p99_ms: float | None = Field(default=None, gt=0)
    tpot_p99_ms: float | None = Field(default=None, gt=0)
    e2e_p99_ms: float | None = Field(default=None, gt=0)

    @classmethod
    def parse(cls, text: str) -> SLO:
        """``ttft_p99_ms=500,tpot_p99_ms=50[,e2e_p99_ms=...]`` (the CLI's ``--slo``)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in LIMITS:
                raise SearchError(f"--slo {text!r}: expected key=value pairs with keys {', '.join(LIMITS)}")
            try:
                values[key.strip()] = float(value)
            except ValueError:
                raise SearchError(f"--slo {text!r}: {value!r} is not a number") from None
        if not values:
            raise SearchError("--slo needs at least one limit, e.g. ttft_p99_ms=500")
        return cls.model_validate(values)

    def limits(self) -> dict[str, float]:
        """metric name → limit, for the limits that are set."""
        return {metric: v for key, metric in LIMITS.items() if (v := getattr(self, key)) is not None}


class Step(BaseModel):
    """One stage of the search: its load, its figures, and whether the SLO held."""

    index: int
    load: float
    out: str
    seconds: float
    requests_ok: int
    requests_failed: int
    p99_ms: dict[str, float | None]
    goodput: float | None  # share of its requests that met every limit
    saturated: bool
    passed: bool
    why: list[str]
    valid: bool | None
    validity_reasons: list[str] = Field(default_factory=list)
    # With a price for the target: what its tokens cost at this step's load (the stage's, or its steady state's,
    # ``cost`` block: loadgen/cost.py).
    cost: Cost | None = None
    # Most of its requests could not connect: the server stopped answering, so the step says nothing about
    # capacity and the search stops (issue 29).
    unreachable: bool = False


class TargetSearch(BaseModel):
    """The answer for one target: ``answer`` (None when even the lowest load tried failed) and the bracket."""

    target: str
    answer: float | None = None
    lo: float | None = None
    hi: float | None = None
    converged: bool = False
    seconds: float = 0.0
    steps: list[Step] = Field(default_factory=list)
    stopped: str | None = None  # why the search ended early (the server stopped answering); None otherwise

    def cost_at_answer(self) -> Cost | None:
        """The cost block of the step that ran at the load found (the capacity), when the target had a price."""
        return next((s.cost for s in self.steps if s.passed and s.load == self.answer), None)


class SearchResult(BaseModel):
    """``search.json``."""

    profile: str
    over: Over
    slo: SLO
    goodput: float | None
    resolution: float
    max_steps: int
    steady: bool = False  # each step judged on its steady-state window (loadgen.verdicts.steady)
    targets: dict[str, TargetSearch]


class Search:
    """One target's search: ``run()`` brackets, then bisects, running a stage per step."""

    def __init__(self, profile: Profile, target: str, slo: SLO, out: Path, *, over: Over = "rate",
                 goodput: float | None = None, resolution: float = 0.05, max_steps: int = 12,
                 start: float | None = None, notify: Callable[[str], None] = lambda _: None,
                 steady: bool = False) -> None:
        self.profile, self.slo, self.out, self.over, self.steady = profile, slo, out, over, steady
        self.goodput, self.resolution, self.max_steps, self.notify = goodput, resolution, max_steps, notify
        self.base = profile.resolved_stages()[0]
        self.start = start or float(getattr(self.base, over, None) or 1.0)
        self.result = TargetSearch(target=target)

    def run(self) -> TargetSearch:
        began = time.monotonic()
        lo, hi = self._bracket()
        while lo is not None and hi is not None and not self._resolved(lo, hi) and self._steps_left():
            mid = (lo + hi) / 2 if self.over == "rate" else float((int(lo) + int(hi)) // 2)
            if self._step(mid):
                lo = mid
            else:
                hi = mid
        r = self.result
        r.lo, r.hi, r.answer = lo, hi, lo if r.stopped is None else None  # a dead server measures no capacity
        r.converged = r.stopped is None and lo is not None and hi is not None and self._resolved(lo, hi)
        r.seconds = round(time.monotonic() - began, 1)
        return r

    def _bracket(self) -> tuple[float | None, float | None]:
        load = self.start if self.over == "rate" else float(max(1, round(self.start)))
        lo = hi = None
        while self._steps_left():
            if self._step(load):
                lo = load
                if hi is not None:
                    break
                load *= 2
            else:
                hi = load
                if lo is not None or (self.over == "concurrency" and load <= 1):
                    break
                load = load / 2 if self.over == "rate" else float(max(1, int(load) // 2))
        return lo, hi

    def _resolved(self, lo: float, hi: float) -> bool:
        return (hi - lo) / lo <= self.resolution or (self.over == "concurrency" and hi - lo <= 1)

    def _steps_left(self) -> bool:
        return len(self.result.steps) < self.max_steps and self.result.stopped is None

    def _stage(self, load: float) -> dict[str, object]:
        stage: dict[str, object] = {"type": self.over, self.over: load if self.over == "rate" else int(load),
                                    "stop_on_saturation": True}
        for key in ("requests", "duration_s", "arrival", "burstiness"):
            value = getattr(self.base, key, None)
            if value is not None and (key in ("requests", "duration_s") or self.over == "rate"):
                stage[key] = value
        return stage

    def _step(self, load: float) -> bool:
        index = len(self.result.steps)
        name = f"{self.result.target}/step-{index:02d}-{self.over}{load:g}"
        # A copy, not a YAML round trip: the profile's objects (a target's headers, a prompt source) stay as given.
        profile = self.profile.model_copy(update={
            "targets": [t for t in self.profile.targets if t.name == self.result.target],
            "load": SHAPES.get(self.over).model_validate(self._stage(load)), "stages": [], "sweep": None, "out": None,
            "metrics": self.profile.metrics.model_copy(update={"enabled": False})})
        began = time.monotonic()
        result = api.run(profile, out=self.out / name, report=False)
        step = judge(result, self.result.target, self.slo, self.goodput, index, load, time.monotonic() - began,
                     steady=self.steady)
        self.result.steps.append(step)
        if step.unreachable:
            self.result.stopped = (f"the server stopped answering at {self.over} {load:g} "
                                   f"({'; '.join(w for w in step.why if 'connect' in w)})")
        self.notify(f"{self.result.target} {self.over} {load:g}: {'pass' if step.passed else 'FAIL'} "
                    f"({', '.join(step.why) or 'SLO met'})")
        return step.passed


def judge(result: api.RunResult, target: str, slo: SLO, goodput: float | None, index: int, load: float,
          seconds: float, steady: bool = False) -> Step:
    """Did one step meet the SLO? (the rule in the module docstring). ``steady``: judged on the stage's
    steady-state window (its ``steady`` block and the requests sent inside it); no window fails the step."""
    stage = next(iter(result.summary.targets[target].stages.values()), None)
    block = stage if stage is not None else result.summary.targets[target]
    records = [r for r in result.records if r.target == target and not r.warmup]
    why = []
    window = stage.steady if steady and stage is not None else None
    if steady and (window is None or window.metrics is None):
        why.append("no steady-state window")
    elif window is not None and window.metrics is not None:
        block, records = window.metrics, steady_records(records, window.start_s, window.end_s)
    limits = slo.limits()
    p99 = {name: (s.p99 if (s := block.stats(name)) is not None else None) for name in limits}
    why += [f"{name} p99 {value:.1f} > {limits[name]:g}" for name, value in p99.items()
            if value is not None and value > limits[name]]
    why += [f"no {name} measured" for name, value in p99.items() if value is None and name != "tpot_ms"]
    share = None
    if records:
        met = sum(m.meets_slo(r, limits.get("ttft_ms"), limits.get("tpot_ms"), limits.get("e2e_ms"))
                  for r in records)
        share = met / len(records)
    if goodput is not None and (share is None or share < goodput):
        why.append(f"goodput {share or 0:.1%} < {goodput:.0%}")
    if goodput is None and block.requests.failed:
        why.append(f"{block.requests.failed} failed requests")
    total = block.requests.ok + block.requests.failed
    connect = block.requests.by_error.get("connect", 0)
    unreachable = total > 0 and connect > total / 2
    if unreachable:
        why.append(f"{connect} of {total} requests could not connect")
    saturated = bool(stage is not None and stage.saturated)
    if saturated:
        why.append("saturated")
    validity = result.summary.targets[target].validity
    return Step(index=index, load=load, out=str(result.out), seconds=round(seconds, 1), requests_ok=block.requests.ok,
                requests_failed=block.requests.failed, p99_ms={k: v for k, v in p99.items()},
                goodput=None if share is None else round(share, 4), saturated=saturated, passed=not why, why=why,
                valid=None if validity is None else validity.valid,
                validity_reasons=[] if validity is None else validity.reasons, cost=block.cost,
                unreachable=unreachable)


def search(profile: Profile, slo: SLO, out: Path, *, over: Over = "rate", goodput: float | None = None,
           resolution: float = 0.05, max_steps: int = 12, start: float | None = None,
           notify: Callable[[str], None] = lambda _: None, steady: bool = False) -> SearchResult:
    """Search every target of ``profile`` in turn; writes ``out/search.json`` and returns it."""
    if not slo.limits():
        raise SearchError("the SLO sets no limit")
    if not (0 < resolution < 1) or max_steps < 2 or (goodput is not None and not 0 < goodput <= 1):
        raise SearchError("--resolution must lie in (0, 1), --max-steps be at least 2, --goodput in (0, 1]")
    if start is not None and (start <= 0 or math.isinf(start)):
        raise SearchError("--start must be a positive number")
    out.mkdir(parents=True, exist_ok=True)
    found = SearchResult(profile=profile.name, over=over, slo=slo, goodput=goodput, resolution=resolution,
                         max_steps=max_steps, steady=steady, targets={})
    for target in profile.targets:
        found.targets[target.name] = Search(profile, target.name, slo, out, over=over, goodput=goodput,
                                            resolution=resolution, max_steps=max_steps, start=start,
                                            notify=notify, steady=steady).run()
        (out / SEARCH_FILE).write_text(found.model_dump_json(indent=2) + "\n")
    return found
