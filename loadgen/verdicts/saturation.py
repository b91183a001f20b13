"""When is a server saturated? One rule, applied live (``load.stop_on_saturation``) and afterwards
(``stages.<stage>.saturated`` in summary.json), to the same records.

Why this rule: past its capacity a server completes requests at a flat rate while the queue in
front of it grows. By Little's law (in flight = throughput × latency), a growing in-flight count
at flat throughput is the same thing as a growing latency, and the latency that carries the queue
is the time to first token from the *intended* send (``ttft_intended_ms``: it includes waiting
in the server's queue and behind the client's in-flight cap). The rule therefore needs only the
records that have ended, which both the runner (live) and the summary (afterwards) have.

The rule (parameters in ``RULE``; docs/metrics.md, "Saturation"): at time t (a request's end),
split [t − K·W, t) into K windows of W seconds. The stage is saturated when every window has at
least ``min_per_window`` successful completions, and

- throughput is flat: (max − min) / mean of the K completion counts ≤ ``flat_tolerance``, and
- latency keeps growing: the median ``ttft_intended_ms`` of the completions in each window rises
  window after window, and the last is ≥ ``growth`` × the first.

It is evaluated at the end of a request at most every W/4 seconds (the same points live and
afterwards). A closed loop keeps its in-flight count fixed and cannot build a queue within a
stage, so in practice the rule fires on open-loop stages.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from loadgen import metrics as m
from loadgen.record import RequestRecord


class SaturationRule(BaseModel):
    """The saturation rule's parameters (see the module docstring)."""

    model_config = ConfigDict(frozen=True)
    window_s: float = 2.0
    windows: int = 3
    flat_tolerance: float = 0.25
    growth: float = 1.5
    min_per_window: int = 5


RULE = SaturationRule()


class Detector:
    """Feed it records as they end (``add``); it answers whether the rule has held so far."""

    def __init__(self, rule: SaturationRule = RULE) -> None:
        self.rule = rule
        self.ends: list[int] = []  # end_ns of successful completions, sorted
        self.ttfts: list[float] = []  # their ttft_intended_ms, in the same order
        self.fired = False
        self._last_eval: int | None = None

    def add(self, r: RequestRecord) -> bool:
        if self.fired or r.warmup:
            return self.fired
        ttft = m.ttft_intended_ms(r)
        if r.ok and ttft is not None:
            i = bisect.bisect(self.ends, r.end_ns)
            self.ends.insert(i, r.end_ns)
            self.ttfts.insert(i, ttft)
        step = int(self.rule.window_s * 1e9 / 4)
        if self._last_eval is None or r.end_ns >= self._last_eval + step:
            self._last_eval = r.end_ns
            self.fired = self.holds_at(r.end_ns)
        return self.fired

    def holds_at(self, t: int) -> bool:
        rule = self.rule
        width = int(rule.window_s * 1e9)
        counts, medians = [], []
        for k in range(rule.windows, 0, -1):
            lo = bisect.bisect_left(self.ends, t - k * width)
            hi = bisect.bisect_left(self.ends, t - (k - 1) * width)
            if hi - lo < rule.min_per_window:
                return False
            counts.append(hi - lo)
            medians.append(statistics.median(self.ttfts[lo:hi]))
        mean = sum(counts) / len(counts)
        flat = (max(counts) - min(counts)) / mean <= rule.flat_tolerance
        rising = all(b > a for a, b in itertools.pairwise(medians))
        return flat and rising and medians[-1] >= rule.growth * medians[0]


def saturated(records: Sequence[RequestRecord], rule: SaturationRule = RULE) -> bool:
    """The rule replayed over a stage's records in the order they ended."""
    detector = Detector(rule)
    return any(detector.add(r) for r in sorted(records, key=lambda r: r.end_ns))


class SaturationWatch:
    """A record sink for one target's run: feeds each stage's detector and calls ``end_stage(index)``
    once the rule holds in a stage whose shape has ``stop_on_saturation``."""

    def __init__(self, watched: set[int], end_stage: Callable[[int], None], rule: SaturationRule = RULE) -> None:
        self.watched = watched
        self.end_stage = end_stage
        self.detectors = {stage: Detector(rule) for stage in watched}

    def __call__(self, r: RequestRecord) -> None:
        detector = self.detectors.get(r.stage)
        if detector is not None and not detector.fired and detector.add(r):
            self.end_stage(r.stage)
