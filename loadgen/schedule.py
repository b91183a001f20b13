"""When requests are sent: arrival offsets for open-loop stages.

Why offsets from one origin: the runner turns each offset into an absolute
``perf_counter_ns`` deadline (origin + offset), so a late wake-up delays one request
(recorded as send lag) and never shifts the rest of the schedule. Latencies can then be
measured from the *intended* send time too, which is immune to coordinated omission.

Spacings (mean 1/rate in every case):
- constant: exactly 1/rate;
- poisson: exponential with rate λ;
- gamma: shape k = burstiness, scale 1/(λk) — k = 1 is Poisson, k < 1 burstier (the
  coefficient of variation is 1/√k), as vLLM's ``--burstiness``;
- ramp: a rate moving linearly from r0 to r1 over D seconds, by time-rescaling unit-rate
  arrivals s through the cumulative rate Λ(t) = r0·t + (r1 − r0)·t²/(2D).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from loadgen.config import LoadShape


def spacings(arrival: str, rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
    if arrival == "constant":
        while True:
            yield 1.0 / rate
    elif arrival == "poisson":
        while True:
            yield rng.expovariate(rate)
    elif arrival == "gamma":
        scale = 1.0 / (rate * burstiness)
        while True:
            yield rng.gammavariate(burstiness, scale)
    else:
        raise ValueError(f"unknown arrival process {arrival!r}")


def _ramp_time(s: float, r0: float, r1: float, duration: float) -> float:
    """Invert Λ(t) = r0 t + (r1 − r0) t² / (2D) for t ≥ 0."""
    a = (r1 - r0) / (2.0 * duration)
    if abs(a) < 1e-12:
        return s / r0
    disc = r0 * r0 + 4.0 * a * s
    if disc < 0:  # a falling rate that reaches 0 never accumulates s: past the stage end
        return math.inf
    return (-r0 + math.sqrt(disc)) / (2.0 * a)


def arrival_offsets(shape: LoadShape, rng: random.Random) -> Iterator[float]:
    """Seconds from the stage's start at which each request is due (first one at 0)."""
    assert shape.rate is not None
    if shape.type == "ramp":
        assert shape.end_rate is not None and shape.duration_s is not None
        s = 0.0
        unit = spacings(shape.arrival, 1.0, shape.burstiness, rng)
        while True:
            yield _ramp_time(s, shape.rate, shape.end_rate, shape.duration_s)
            s += next(unit)
    else:
        t = 0.0
        gaps = spacings(shape.arrival, shape.rate, shape.burstiness, rng)
        while True:
            yield t
            t += next(gaps)
