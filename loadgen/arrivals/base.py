"""What an arrival process gives: an endless iterator of spacings (seconds) between requests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Protocol


class Arrival(Protocol):
    """``spacings(rate, burstiness, rng)``: gaps with mean 1/rate; ``burstiness`` is the
    shape parameter of processes that have one (others ignore it)."""

    @staticmethod
    def spacings(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]: ...
