"""Gamma spacings: shape k = burstiness, scale 1/(λk), as vLLM bench's ``--burstiness``.

k = 1 is Poisson; k < 1 is burstier (coefficient of variation 1/√k); the mean stays 1/λ.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from loadgen.registry import ARRIVALS


@ARRIVALS.register("gamma")
class Gamma:
    @staticmethod
    def spacings(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
        scale = 1.0 / (rate * burstiness)
        while True:
            yield rng.gammavariate(burstiness, scale)
