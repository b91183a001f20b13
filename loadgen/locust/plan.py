"""A rig profile's stages as Locust runs them: users per stage, request quotas, open-loop pacing.

Pure (no Locust, no gevent), so the mapping is tested without a run. What maps to what:

- ``concurrency: N`` → N users, each sending its next request when its previous one ends (the
  rig's closed loop); ``requests`` is handed out to the workers as they need them (exact total),
  ``duration_s`` is timed by each worker from the moment the stage reaches it;
- ``rate`` and ``ramp`` → U users (``--rig-users``, default the profile's ``max_in_flight``, else
  ``DEFAULT_OPEN_USERS``), each pacing its requests on the rig's own arrival process at 1/U of the
  rate. U independent Poisson processes at rate r/U add up to one Poisson process at rate r (and a
  ramp's likewise, by time-rescaling), so the offered load is the rig's as long as no user is still
  busy when its next request is due. A busy user sends late, keeping the intended time: the lateness
  shows in ``send_lag_ms``, ``ttft_intended_ms`` and the validity verdict, as in the asyncio loadgen.
  Approximate: constant and gamma arrivals (a sum of U such processes is not one), and the load is
  capped at U requests in flight where the asyncio open loop has no cap;
- ``warmup: N`` → a first step of N requests, recorded as ``warmup``;
- ``replay`` and multi-turn sessions are refused (use ``loadgen run``): a trace's per-request clock
  and a session's history do not fit users that each send independent requests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from loadgen.clients.base import RequestSpec
from loadgen.config import Profile
from loadgen.shapes.base import LoadShape, OpenLoopShape

DEFAULT_OPEN_USERS = 32
RATE_FIELDS = ("rate", "end_rate")  # the fields of an open-loop shape that are rates (scaled by 1/U)


class PlanError(ValueError):
    """The profile asks for something the Locust front end cannot do; the message says what to use instead."""


@dataclass(frozen=True)
class Step:
    """One stage as Locust runs it. ``index`` is the record's ``stage`` (-1: the warm-up)."""

    index: int
    name: str
    users: int
    requests: int | None
    duration_s: float | None
    warmup: bool = False
    open_loop: dict[str, object] | None = None  # the stage's shape (JSON) when it paces arrivals


def plan(profile: Profile, open_users: int | None = None, specs: list[RequestSpec] | None = None) -> list[Step]:
    """The steps of ``profile`` (warm-up first); ``PlanError`` for what does not map."""
    if specs is not None and any(s.session_id is not None for s in specs):
        raise PlanError("multi-turn sessions (prompts with session ids) need the asyncio loadgen: use loadgen run")
    users = open_users or profile.max_in_flight or DEFAULT_OPEN_USERS
    steps = []
    for index, shape in enumerate(profile.resolved_stages()):
        steps.append(_step(index, shape, users))
    if profile.warmup:
        width = steps[0].users if steps else 8
        steps.insert(0, Step(-1, "warmup", max(1, min(profile.warmup, width)), profile.warmup, None, warmup=True))
    return steps


def _step(index: int, shape: LoadShape, open_users: int) -> Step:
    width = shape.closed_loop_width()
    if width is not None:
        return Step(index, shape.label, width, shape.requests, shape.duration_s)
    if not isinstance(shape, OpenLoopShape):
        raise PlanError(f"load type {shape.type!r} has no Locust form (it replays its own clock): use loadgen run")
    return Step(index, shape.label, open_users, shape.requests, shape.duration_s,
                open_loop=shape.model_dump(mode="json"))


def user_offsets(shape: OpenLoopShape, users: int, rng: random.Random) -> Iterator[float]:
    """One user's due times (seconds from the stage start): the shape's own arrival process at 1/``users``
    of its rate. The process's arrival at 0 is dropped (a Poisson process started at the stage start);
    constant spacing gets a random phase instead, so that the users do not all send at once."""
    scaled = shape.model_copy(update={f: getattr(shape, f) / users for f in RATE_FIELDS if hasattr(shape, f)})
    offsets = scaled.arrival_offsets(rng)
    next(offsets)
    phase = rng.uniform(0, users / getattr(shape, "rate", 1.0)) if shape.arrival == "constant" else 0.0
    for offset in offsets:
        yield max(0.0, offset - phase)
