"""Poisson arrivals: exponential spacings with rate λ (independent users, vLLM bench's default)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from loadgen.registry import ARRIVALS


@ARRIVALS.register("poisson")
class Poisson:
    @staticmethod
    def spacings(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
        while True:
            yield rng.expovariate(rate)
