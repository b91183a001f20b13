"""The steady-state window (``loadgen.verdicts.steady``) on synthetic runs whose ramp, plateau and drain are known
by construction: the window is found where the schedule put it, its figures are the plateau's, and a stage that
never plateaus or never reaches full load says so in the validity warnings."""

from __future__ import annotations

import heapq

import pytest

from loadgen.record import RequestRecord
from loadgen.summary import build_summary
from loadgen.verdicts import steady
from tests.unit.records import MS, manifest, record

TOKENS = 10


def request(i: int, sent_ms: float, duration_ms: float, stage_name: str = "s") -> RequestRecord:
    """A request sent at ``sent_ms`` lasting ``duration_ms``, its ``TOKENS`` tokens evenly spread after a TTFT of
    a fifth of it."""
    sent, length = int(sent_ms * MS), int(duration_ms * MS)
    offsets = [length // 5 + k * (length - length // 5) // (TOKENS - 1) for k in range(TOKENS)]
    return record(index=i, stage_name=stage_name, intended_ns=sent, sent_ns=sent, first_byte_ns=sent + offsets[0],
                  first_token_ns=sent + offsets[0], first_content_ns=sent + offsets[0], end_ns=sent + length,
                  chunk_offsets_ns=offsets, chunk_tokens=[1] * TOKENS, output_tokens=TOKENS)


def closed_loop(concurrency: int, requests: int, duration_ms: float, ramp_ms: float) -> list[RequestRecord]:
    """A closed loop whose connections open one every ``ramp_ms`` (the ramp), each ended request replaced at once."""
    records, slots = [], []
    for i in range(requests):
        sent = i * ramp_ms if i < concurrency else heapq.heappop(slots)
        records.append(request(i, sent, duration_ms))
        heapq.heappush(slots, sent + duration_ms)
    return records


def test_a_closed_loop_window_runs_from_full_concurrency_to_the_first_unreplaced_end() -> None:
    records = closed_loop(concurrency=4, requests=40, duration_ms=100, ramp_ms=10)
    window = steady.window_of(records, 4)
    last_send = max(r.sent_ns for r in records)
    assert window is not None
    assert window.start_ns == 30 * MS  # the fourth connection's first send
    assert window.end_ns == min(r.end_ns for r in records if r.end_ns > last_send)
    assert steady.plateau(records, window)


def test_an_open_loop_window_runs_from_the_first_end_to_the_last_arrival() -> None:
    records = [request(i, i * 50, 200) for i in range(60)]
    window = steady.window_of(records, None)
    assert window is not None and window.start_ns == 200 * MS and window.end_ns == 59 * 50 * MS
    figures = steady.throughput(records, window, {})
    assert figures["requests_per_s"] == pytest.approx(20, rel=0.05)  # one every 50 ms
    assert figures["output_tokens_per_s"] == pytest.approx(20 * TOKENS, rel=0.05)


def test_the_summary_reports_the_plateau_beside_the_whole_stage() -> None:
    # Four connections opened 100 ms apart (the ramp), each request 200 ms: the plateau serves 20 requests a
    # second; the ramp and the drain pull the whole stage's figure below it.
    records = closed_loop(concurrency=4, requests=60, duration_ms=200, ramp_ms=100)
    summary = build_summary(records, [], manifest(), {}, closed_loops={0: 4})
    stage = summary.targets["t"].stages["s"]
    s = stage.steady
    assert s is not None and s.reached and s.plateau and s.metrics is not None
    assert s.start_s == pytest.approx(0.3)  # the fourth connection
    assert 0.5 < s.share < 1
    assert s.metrics.requests_per_s == pytest.approx(20, rel=0.02)
    assert stage.requests_per_s < 0.95 * s.metrics.requests_per_s
    assert s.metrics.ttft_ms is not None and s.metrics.ttft_ms.mean == pytest.approx(40)  # a fifth of 200 ms
    assert summary.targets["t"].validity.warnings == []


def test_a_rising_rate_never_plateaus_and_the_verdict_warns() -> None:
    times, t, gap = [], 0.0, 100.0
    while gap > 5:  # the spacing shrinks from 100 ms to 5 ms: throughput climbs the whole stage
        times.append(t)
        t += gap
        gap *= 0.97
    records = [request(i, t, 200) for i, t in enumerate(times)]
    summary = build_summary(records, [], manifest(), {})
    s = summary.targets["t"].stages["s"].steady
    assert s is not None and s.plateau is False and not s.reached
    assert summary.targets["t"].validity.valid  # a warning, not an invalid measurement
    assert summary.targets["t"].validity.warnings == [
        "stage s never reached steady state (throughput did not plateau): read its figures as ramp-up and drain"]


def test_a_closed_loop_that_never_fills_has_no_window() -> None:
    records = [request(i, i * 10, 100) for i in range(3)]
    summary = build_summary(records, [], manifest(), {}, closed_loops={0: 8})
    s = summary.targets["t"].stages["s"].steady
    assert s is not None and not s.reached and s.start_s is None
    assert "no window at full load" in summary.targets["t"].validity.warnings[0]


def test_a_short_steady_window_is_a_warning() -> None:
    # A closed loop of 8 with only 12 requests: most of the stage is ramp and drain.
    records = closed_loop(concurrency=8, requests=12, duration_ms=400, ramp_ms=40)
    summary = build_summary(records, [], manifest(), {}, closed_loops={0: 8})
    s = summary.targets["t"].stages["s"].steady
    assert s is not None and s.share is not None and s.share < 0.5
    assert any("covered" in w for w in summary.targets["t"].validity.warnings)


def test_the_saved_window_selects_the_same_requests() -> None:
    """``compare --steady`` and ``search --steady`` rebuild the window from the saved seconds: to the nanosecond,
    the requests at its edges (a closed loop's window starts exactly at a send) stay in."""
    records = closed_loop(concurrency=3, requests=50, duration_ms=77.7777, ramp_ms=13.33335)  # 3rd send: .7 µs
    s = build_summary(records, [], manifest(), {}, closed_loops={0: 3}).targets["t"].stages["s"].steady
    assert s is not None and s.metrics is not None
    again = steady.steady_records(records, s.start_s, s.end_s)
    assert len(again) == s.metrics.requests.ok + s.metrics.requests.failed
    assert min(r.sent_ns for r in again) == steady.window_of(records, 3).start_ns  # type: ignore[union-attr]
