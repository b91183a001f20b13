"""The steady state of a stage: the part of it where the load was what the stage asked for, found in its records.

Why: a stage's whole-window figures mix three regimes — ramp-up (connections opening, the server's batch
filling), the load asked for, and drain (the last requests finishing with nothing behind them). Throughput over
the whole stage understates what the server sustains, and short stages are mostly ramp and drain. Peers either
report the whole window or cut a fixed warm-up; here the window is found from what the run itself did:

- **closed loop** (a ``concurrency`` stage of C): from the send that first brings the requests in flight to C,
  until the first response that ends after the stage's last send — the first request that could not be
  replaced, after which in-flight only falls;
- **open loop** (rate, ramp, replay): from the first response's end — before it the server only fills: in
  flight grows by the arrival rate times the latency (Little's law) — until the last arrival (the last send);
- then a **plateau test on throughput**: the window is cut in thirds and the output tokens arriving in each
  counted; it is a plateau when the first and last thirds differ by at most ``PLATEAU_TOLERANCE`` (20%) of the
  middle one — or, for a short stage, by what chance alone gives (``tolerance``: 3 σ of two Poisson counts).
  Why thirds and not a regression or a stationarity test: with one stage's few hundred requests a per-bin series
  is noisy (Poisson arrivals, batch boundaries), a trend shows as its ends disagreeing, and the rule reads in one
  sentence. A stage whose throughput still climbs (a ramp) or falls (a server degrading) fails it: the stage
  **never reached steady state** and says so.

The ``steady`` block of a stage holds the window (seconds after the stage's first send), the share of the
stage it covers and the stage's metrics over it: latencies of the requests sent inside the window; throughput
as what arrived inside it over its length (output tokens by their chunks' arrival, requests by their end,
input tokens by their send; docs/metrics.md, "Steady state").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen import metrics as m
from loadgen.record import RequestRecord

PLATEAU_TOLERANCE = 0.20


@dataclass(frozen=True)
class Window:
    """A stage's steady-state window in ``perf_counter_ns`` and how it was found."""

    rule: str
    start_ns: int
    end_ns: int


def closed_loop_window(records: Sequence[RequestRecord], concurrency: int) -> Window | None:
    """From full concurrency to the first end after the last send; None when the stage never had ``concurrency``
    requests in flight or never sent again once it had."""
    events = sorted([(r.sent_ns, 1) for r in records] + [(r.end_ns, -1) for r in records])
    level, start = 0, None
    for t, step in events:
        level += step
        if level >= concurrency:
            start = t
            break
    last_send = max(r.sent_ns for r in records)
    ends_after = [r.end_ns for r in records if r.end_ns > last_send]
    if start is None or not ends_after or min(ends_after) <= start:
        return None
    return Window(f"closed loop: from {concurrency} in flight to the first request that could not be replaced",
                  start, min(ends_after))


def open_loop_window(records: Sequence[RequestRecord]) -> Window | None:
    """From the first response's end to the last send; None when the first response ended after the last send."""
    start, end = min(r.end_ns for r in records), max(r.sent_ns for r in records)
    if end <= start:
        return None
    return Window("open loop: from the first response (the server filled) to the last arrival", start, end)


def output_tokens_between(records: Sequence[RequestRecord], start_ns: int, end_ns: int) -> int:
    """Output tokens of successful requests whose chunks arrived in [start_ns, end_ns)."""
    total = 0
    for r in records:
        if r.ok and r.sent_ns < end_ns and r.end_ns >= start_ns:
            low, high = start_ns - r.sent_ns, end_ns - r.sent_ns
            total += sum(itertools.compress(r.chunk_tokens, [low <= o < high for o in r.chunk_offsets_ns]))
    return total


def tolerance(requests: int) -> float:
    """How far the first and last thirds may differ, as a share of the middle one: ``PLATEAU_TOLERANCE``, or, when
    the middle third holds few requests, three standard deviations of the difference of two Poisson counts of
    that size (√2 · √n / n): a stage of a few dozen requests cannot show a 20% trend apart from chance."""
    return max(PLATEAU_TOLERANCE, 3 * math.sqrt(2 / max(requests, 1)))


def plateau(records: Sequence[RequestRecord], window: Window) -> bool:
    """The thirds test (module docstring): |first − last| ≤ ``tolerance`` × middle, in output tokens."""
    third = (window.end_ns - window.start_ns) // 3
    if third <= 0:
        return False
    bounds = [(window.start_ns + k * third, window.start_ns + (k + 1) * third) for k in range(3)]
    a, b, c = (output_tokens_between(records, lo, hi) for lo, hi in bounds)
    middle = sum(1 for r in records if r.ok and bounds[1][0] <= r.end_ns < bounds[1][1])
    return b > 0 and abs(a - c) <= tolerance(middle) * b


def window_of(records: Sequence[RequestRecord], concurrency: int | None) -> Window | None:
    """The stage's window by its loop (``concurrency``: a closed loop's C; None: an open loop)."""
    measured = m.measured(records)
    if len(measured) < 2:
        return None
    return closed_loop_window(measured, concurrency) if concurrency else open_loop_window(measured)


def sent_within(records: Sequence[RequestRecord], window: Window) -> list[RequestRecord]:
    """The requests sent inside the window: whose latencies are the steady state's."""
    return [r for r in m.measured(records) if window.start_ns <= r.sent_ns <= window.end_ns]


def throughput(records: Sequence[RequestRecord], window: Window, slo: dict[str, float | None]) -> dict[str, float]:
    """Per second of the window: output tokens arriving in it, requests ending in it (ok), input tokens of the
    requests sent in it (ok), and goodput (ok requests ending in it that met every SLO)."""
    seconds = (window.end_ns - window.start_ns) / m.NS_PER_S
    measured = m.measured(records)
    ended = [r for r in measured if r.ok and window.start_ns <= r.end_ns <= window.end_ns]
    sent = [r for r in measured if r.ok and window.start_ns <= r.sent_ns <= window.end_ns]
    limits = (slo.get("ttft_ms"), slo.get("tpot_ms"), slo.get("e2e_ms"))
    good = sum(1 for r in ended if m.meets_slo(r, *limits)) if any(v is not None for v in limits) else None
    out = {"output_tokens_per_s": output_tokens_between(measured, window.start_ns, window.end_ns) / seconds,
           "requests_per_s": len(ended) / seconds,
           "input_tokens_per_s": sum(r.prompt_tokens or 0 for r in sent) / seconds}
    if good is not None:
        out["goodput_rps"] = good / seconds
    return out


def steady_records(records: Sequence[RequestRecord], start_s: float | None, end_s: float | None) -> list[RequestRecord]:
    """A stage's measured records sent inside its saved steady window (``start_s``/``end_s``: seconds after the
    stage's first send, as the ``steady`` block gives them); none when the stage has no window."""
    measured = m.measured(records)
    if start_s is None or end_s is None or not measured:
        return []
    first = min(r.sent_ns for r in measured)
    window = Window("saved", first + round(start_s * m.NS_PER_S), first + round(end_s * m.NS_PER_S))
    return sent_within(measured, window)
