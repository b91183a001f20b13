"""What every load shape is: a stage with an end, and either a closed-loop width or arrival times.

Why two questions and no type tests: the runner has exactly two ways to issue requests — keep
N in flight (closed loop: the next request starts when one ends), or send each at its due
time whatever the server does (open loop: latency from the intended time is immune to
coordinated omission). A new shape answers one of them and needs no runner change.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from loadgen.basemodel import StrictModel
from loadgen.clients.base import RequestSpec
from loadgen.registry import ARRIVALS


class LoadShape(StrictModel):
    """One stage of load; it ends after ``requests`` requests or ``duration_s`` seconds of issuing."""

    type: str
    name: str | None = None
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    stop_on_saturation: bool = Field(default=False, description=(
        "end the stage once the server is saturated (loadgen.verdicts.saturation; docs/metrics.md)"))

    preconnect: int | None = Field(default=None, ge=0, description=(
        "connections to open before the stage's first request; default: a closed loop's concurrency, "
        "0 for an open loop (docs/metrics.md, connect_ms)"))

    # The field a ``sweep`` varies (``sweep: {type: rate, values: [1, 2]}``); None: not sweepable.
    sweep_field: ClassVar[str | None] = None

    @model_validator(mode="after")
    def _ends(self) -> LoadShape:
        if self.requests is None and self.duration_s is None:
            raise ValueError("a stage needs `requests` or `duration_s`")
        return self

    def closed_loop_width(self) -> int | None:
        """Requests kept in flight (closed loop), or None for an open loop."""
        return None

    def connections_to_open(self) -> int:
        """``preconnect``, else the default. A closed loop opens its width: its first wave needs that many
        connections at once, and opening them one by one in front of the requests would make the first
        wave's writes queue behind hundreds of handshakes. An open loop opens none: how many it needs
        (rate × latency) is unknown beforehand, and its connection cost shows, apart from TTFT, in
        ``connect_ms`` and in ``ttft_intended_ms``."""
        if self.preconnect is not None:
            return self.preconnect
        return self.closed_loop_width() or 0

    def arrival_offsets(self, rng: random.Random) -> Iterator[float]:
        """Open loop: seconds from the stage's start at which each request is due (first at 0)."""
        raise NotImplementedError(f"{type(self).__name__} is a closed loop")

    def schedule(self, rng: random.Random,
                 specs: Sequence[RequestSpec]) -> Iterator[tuple[float, RequestSpec | None]]:
        """Open loop: (offset, spec) per request; spec None means the next prompt in rotation.
        A shape that replays the prompts' own clock (``replay``) names the spec itself."""
        return ((t, None) for t in self.arrival_offsets(rng))

    def check_prompts(self, specs: Sequence[RequestSpec]) -> None:
        """Raise ``PromptError`` (before the run) when this shape cannot send these prompts."""

    def default_label(self) -> str:
        return self.type

    @property
    def label(self) -> str:
        """The stage's name in records and the summary (``c16``, ``r2``, or the profile's ``name``)."""
        return self.name or self.default_label()


class OpenLoopShape(LoadShape):
    """Open-loop stages: spacings come from an arrival process (``loadgen.arrivals``)."""

    arrival: str = "poisson"
    burstiness: float = Field(default=1.0, gt=0, allow_inf_nan=False,
                              description="gamma shape k: 1 is Poisson, <1 burstier")

    @field_validator("arrival")
    @classmethod
    def _known_arrival(cls, name: str) -> str:
        return ARRIVALS.check(name)

    def spacings(self, rate: float, rng: random.Random) -> Iterator[float]:
        return ARRIVALS.get(self.arrival).spacings(rate, self.burstiness, rng)
