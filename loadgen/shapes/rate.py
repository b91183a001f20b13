"""``rate``: an open loop, arrivals at ``rate`` requests per second (constant, Poisson or gamma spacing)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from loadgen.registry import SHAPES
from loadgen.shapes.base import OpenLoopShape


@SHAPES.register("rate")
class Rate(OpenLoopShape):
    type: Literal["rate"] = "rate"
    rate: float = Field(gt=0, allow_inf_nan=False,
                        description="requests per second (finite: an open loop sends on a schedule)")

    sweep_field: ClassVar[str | None] = "rate"

    def arrival_offsets(self, rng: random.Random) -> Iterator[float]:
        t = 0.0
        gaps = self.spacings(self.rate, rng)
        while True:
            yield t
            t += next(gaps)

    def default_label(self) -> str:
        return f"r{self.rate:g}"
