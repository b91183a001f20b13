"""Constant spacing: exactly 1/rate between requests (a metronome; no randomness)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from loadgen.registry import ARRIVALS


@ARRIVALS.register("constant")
class Constant:
    @staticmethod
    def spacings(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
        while True:
            yield 1.0 / rate
