"""Every metric against a hand-computed record."""

from __future__ import annotations

import math

import pytest

from loadgen import metrics as m
from tests.unit.records import MS, record


def test_per_request_metrics() -> None:
    r = record()
    assert m.ttft_ms(r) == 18.0  # 1020 − 1002
    assert m.ttft_intended_ms(r) == 20.0  # 1020 − 1000
    assert m.ttfb_ms(r) == 3.0
    assert m.e2e_ms(r) == 48.0
    assert m.tpot_ms(r) == pytest.approx((48.0 - 18.0) / 3)  # (E2E − TTFT)/(4 − 1) = 10
    assert m.itl_gaps_ms(r) == [10.0, 15.0]  # the role-only and usage-only chunks are not tokens
    assert m.send_lag_ms(r) == 2.0


def test_undefined_metrics_are_none() -> None:
    failed = record(first_token_ns=None, error="http_5xx", output_tokens=None, chunk_offsets_ns=[], chunk_tokens=[])
    assert m.ttft_ms(failed) is None and m.tpot_ms(failed) is None and m.itl_gaps_ms(failed) == []
    assert m.tpot_ms(record(output_tokens=1)) is None


def test_percentiles_interpolate_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert m.percentile(values, 50) == 3.0
    assert m.percentile(values, 90) == pytest.approx(4.0 + 0.6 * 6.0)  # rank 3.6
    assert m.percentile(values, 100) == 10.0
    s = m.stats(values)
    assert s is not None and s.mean == 4.0 and s.min == 1.0 and s.max == 10.0
    assert s.std == pytest.approx(math.sqrt(((3**2) + 2**2 + 1 + 0 + 36) / 5))
    assert m.stats([None, None]) is None


def test_throughputs_use_the_window_of_measured_requests() -> None:
    a = record()  # sent 1002 ms, ended 1050 ms
    b = record(index=1, sent_ns=1_010 * MS, end_ns=1_102 * MS, output_tokens=6, prompt_tokens=20)
    c = record(index=2, error="http_5xx", sent_ns=1_020 * MS, end_ns=1_030 * MS)
    warm = record(index=3, warmup=True, sent_ns=0, end_ns=5_000 * MS)
    measured = m.measured([a, b, c, warm])
    assert m.window_s(measured) == pytest.approx(0.100)  # 1102 − 1002 ms
    assert m.output_tokens_per_s(measured) == pytest.approx(10 / 0.1)  # the failed request's tokens do not count
    assert m.input_tokens_per_s(measured) == pytest.approx(30 / 0.1)
    assert m.requests_per_s(measured) == pytest.approx(2 / 0.1)
    assert m.errors_by_class(measured)["http_5xx"] == 1


def test_goodput_counts_requests_meeting_every_slo() -> None:
    fast = record()  # TTFT 18, TPOT 10, E2E 48
    slow = record(index=1, first_token_ns=1_040 * MS)  # TTFT 38
    assert m.meets_slo(fast, ttft=20, tpot=10, e2e=50)
    assert not m.meets_slo(slow, ttft=20, tpot=None, e2e=None)
    assert not m.meets_slo(fast, ttft=None, tpot=9.9, e2e=None)
    assert m.goodput_rps([fast, slow], 20, None, None) == pytest.approx(1 / m.window_s([fast, slow]))
