"""``replay``: an open loop that sends each request at its own offset (``at_s``, a trace's clock).

Why a shape and not a branch in the runner: only the prompt source knows when a trace's
requests arrived (already scaled by its ``speedup`` and cut to its window), so the shape
takes the offsets from the specs and the runner sends on that absolute schedule like any
other open loop (send lag recorded, a late wake-up never shifts later requests). The stage
ends after the last request of the trace, or earlier with ``requests`` / ``duration_s``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Literal

from pydantic import model_validator

from loadgen.clients.base import RequestSpec
from loadgen.registry import SHAPES
from loadgen.shapes.base import LoadShape
from loadgen.tokens import PromptError


@SHAPES.register("replay")
class Replay(LoadShape):
    type: Literal["replay"] = "replay"

    @model_validator(mode="after")
    def _ends(self) -> Replay:
        return self  # the trace has an end of its own

    def check_prompts(self, specs: Sequence[RequestSpec]) -> None:
        if not specs or any(s.at_s is None for s in specs):
            raise PromptError("load type `replay` sends each request at its own time: it needs a prompt source "
                              "with arrival times (prompts.source: trace)")
        if any(s.session_id is not None for s in specs):
            raise PromptError("load type `replay` replays single requests, not sessions")

    def schedule(self, rng: random.Random,
                 specs: Sequence[RequestSpec]) -> Iterator[tuple[float, RequestSpec | None]]:
        return ((spec.at_s or 0.0, spec) for spec in specs)

    def default_label(self) -> str:
        return "replay"
