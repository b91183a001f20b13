"""Where TTFT goes, per target and stage: the client's stamps and the engine's histograms, combined.

From the intended send to the first token, a successful request spends, on average:

    send lag  (client: actual − intended send, without connection setup)  ``loadgen.metrics.send_lag_ms``
  + connect   (client: new connections only; 0 for a reused one)           ``loadgen.metrics.connect_ms``
  + TTFT      (client: actual send → first token), split with the engine's means as
        queue     (engine: arrival in its scheduler → scheduled)            ``server.queue_time_ms``
      + prefill   (engine: scheduled → first token)                         ``server.prefill_time_ms``
      + delivery  (the rest: network, HTTP and API-server work, detokenizing, streaming the chunk)

Engines export aggregates, not per-request values, so every part is a mean over the window (the
client's over its successful requests, the engine's over the requests it finished in the window):
the parts add up to the mean TTFT, not to any one request's. When an engine does not export queue or
prefill time, ``delivery_ms`` is null and ``unsplit_ms`` holds everything the engine could not split
(``missing`` names the parts), so nothing is attributed to a part that was not measured.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from loadgen import metrics as m
from loadgen.observe.server_metrics import ServerBlock
from loadgen.record import RequestRecord

PARTS = ("send_lag_ms", "connect_ms", "queue_ms", "prefill_ms", "delivery_ms", "unsplit_ms")


class TtftBreakdown(BaseModel):
    """Means in ms over one window (module docstring); ``missing``: parts the engine does not export."""

    model_config = ConfigDict(extra="forbid")
    ttft_ms: float
    send_lag_ms: float
    connect_ms: float
    queue_ms: float | None = None
    prefill_ms: float | None = None
    delivery_ms: float | None = None
    unsplit_ms: float | None = None
    missing: list[str] = Field(default_factory=list)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def ttft_breakdown(records: Sequence[RequestRecord], server: ServerBlock | None) -> TtftBreakdown | None:
    """The breakdown of one window's measured records; None when none of them got a first token."""
    ok = [r for r in records if r.ok and not r.warmup and r.first_token_ns is not None]
    if not ok:
        return None
    ttft = _mean([m.ttft_ms(r) or 0.0 for r in ok])
    queue = server.queue_time_ms if server is not None else None
    prefill = server.prefill_time_ms if server is not None else None
    missing = [name for name, value in (("queue", queue), ("prefill", prefill)) if value is None]
    rest = round(ttft - (queue or 0.0) - (prefill or 0.0), 4)
    return TtftBreakdown(
        ttft_ms=round(ttft, 4), send_lag_ms=round(_mean([m.send_lag_ms(r) for r in ok]), 4),
        connect_ms=round(_mean([m.connect_ms(r) or 0.0 for r in ok]), 4), queue_ms=queue, prefill_ms=prefill,
        delivery_ms=None if missing else rest, unsplit_ms=rest if missing else None, missing=missing)
