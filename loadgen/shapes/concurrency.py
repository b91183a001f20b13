"""``concurrency``: a closed loop keeping N requests in flight (a new one starts as one ends)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from loadgen.registry import SHAPES
from loadgen.shapes.base import LoadShape


@SHAPES.register("concurrency")
class Concurrency(LoadShape):
    type: Literal["concurrency"] = "concurrency"
    concurrency: int = Field(ge=1)

    sweep_field: ClassVar[str | None] = "concurrency"

    def closed_loop_width(self) -> int:
        return self.concurrency

    def default_label(self) -> str:
        return f"c{self.concurrency}"
