"""``ramp``: an open loop whose rate moves linearly from ``rate`` to ``end_rate`` over ``duration_s``.

Arrivals come from time-rescaling unit-rate arrivals s through the cumulative rate
Λ(t) = r0·t + (r1 − r0)·t²/(2D), so any arrival process keeps its character while the
rate changes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from loadgen.registry import SHAPES
from loadgen.shapes.base import OpenLoopShape


def ramp_time(s: float, r0: float, r1: float, duration: float) -> float:
    """Invert Λ(t) = r0 t + (r1 − r0) t² / (2D) for t ≥ 0."""
    a = (r1 - r0) / (2.0 * duration)
    if abs(a) < 1e-12:
        return s / r0
    disc = r0 * r0 + 4.0 * a * s
    if disc < 0:  # a falling rate that reaches 0 never accumulates s: past the stage end
        return math.inf
    return (-r0 + math.sqrt(disc)) / (2.0 * a)


@SHAPES.register("ramp")
class Ramp(OpenLoopShape):
    type: Literal["ramp"] = "ramp"
    rate: float = Field(gt=0, allow_inf_nan=False, description="requests per second at the start")
    end_rate: float = Field(gt=0, allow_inf_nan=False, description="requests per second at the end")

    @model_validator(mode="after")
    def _has_duration(self) -> Ramp:
        if self.duration_s is None:
            raise ValueError("a ramp stage needs `duration_s`")
        return self

    def arrival_offsets(self, rng: random.Random) -> Iterator[float]:
        assert self.duration_s is not None
        s = 0.0
        unit = self.spacings(1.0, rng)
        while True:
            yield ramp_time(s, self.rate, self.end_rate, self.duration_s)
            s += next(unit)

    def default_label(self) -> str:
        return f"ramp{self.rate:g}-{self.end_rate:g}"
