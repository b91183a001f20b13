"""The answers built on runs (loadgen/answers): validity verdict, saturation rule, comparison statistics.

Records are made by hand (or drawn from seeded generators), so every expected value is known."""

from __future__ import annotations

import random

import pytest

from loadgen.answers import compare as c
from loadgen.cpu import cpu_share
from loadgen.record import RequestRecord
from loadgen.verdicts.saturation import RULE, saturated
from loadgen.verdicts.validity import THRESHOLDS, achieved_ratio, verdict

MS = 1_000_000


def rec(i: int, intended_ms: float, sent_ms: float | None = None, ttft_ms: float = 10.0, e2e_ms: float = 50.0,
        stage: int = 0, tokens: int = 11, error: str | None = None) -> RequestRecord:
    sent = int((intended_ms if sent_ms is None else sent_ms) * MS)
    return RequestRecord(target="t", kind="k", stage=stage, stage_name=f"s{stage}", index=i, prompt_id=str(i),
                         intended_ns=int(intended_ms * MS), sent_ns=sent, first_token_ns=sent + int(ttft_ms * MS),
                         end_ns=sent + int(e2e_ms * MS), output_tokens=tokens, error=error)  # type: ignore[arg-type]


# -- validity --------------------------------------------------------------------------------

def test_a_client_on_schedule_is_valid() -> None:
    records = [rec(i, i * 100.0, i * 100.0 + 0.2) for i in range(50)]
    cpu = [(0, 0), (6_000 * MS, 600 * MS)]  # 10% of a core
    v = verdict(records, [0.1] * 100, [cpu])
    assert v.valid and v.reasons == []
    assert v.send_lag_p99_ms == pytest.approx(0.2)
    assert v.achieved_ratio == pytest.approx(1.0)
    assert v.cpu_share is None  # no two samples inside the records' window [0, 4950] ms


def test_each_rule_makes_a_run_invalid_with_its_reason() -> None:
    # sends drift later and later: the last one is 400 ms late over a 4.9 s schedule
    late = [rec(i, i * 100.0, i * 100.0 + i * 8.0) for i in range(50)]
    v = verdict(late, [6.0] * 100, [[(0, 0), (5_000 * MS, 4_750 * MS)]])
    assert not v.valid
    assert v.achieved_ratio == pytest.approx(4900 / 5292, abs=1e-4)
    assert v.send_lag_p99_ms == pytest.approx(0.99 * 49 * 8 + 0.01 * 48 * 8, rel=0.02)
    assert v.cpu_share == pytest.approx(0.95)
    text = " ".join(v.reasons)
    for word in ("send lag", "achieved", "event-loop lag", "CPU"):
        assert word in text
    assert len(v.reasons) == 4


def test_cpu_share_is_cpu_time_over_wall_time_inside_the_window() -> None:
    samples = [(0, 0), (1_000 * MS, 500 * MS), (2_000 * MS, 1_400 * MS), (3_000 * MS, 1_500 * MS)]
    assert cpu_share(samples, 0, 2_000 * MS) == pytest.approx(0.7)
    assert cpu_share(samples, 1_000 * MS, 3_000 * MS) == pytest.approx(0.5)
    assert cpu_share(samples, 500 * MS, 900 * MS) is None
    busy = [rec(i, i * 10.0, e2e_ms=5.0) for i in range(301)]  # window 0 … 3005 ms
    v = verdict(busy, [], [[(0, 0), (3_000 * MS, 2_850 * MS)]])
    assert v.cpu_share == pytest.approx(0.95) and not v.valid and "CPU" in v.reasons[0]
    assert THRESHOLDS.cpu_share_max == 0.90


def test_achieved_ratio_takes_the_worst_stage() -> None:
    on_time = [rec(i, i * 10.0) for i in range(10)]
    slow = [rec(i, i * 10.0, i * 20.0, stage=1) for i in range(10)]
    assert achieved_ratio(on_time + slow) == pytest.approx(0.5)
    assert achieved_ratio([rec(0, 0.0)]) is None


# -- saturation ------------------------------------------------------------------------------

def test_saturation_fires_when_throughput_is_flat_and_the_queue_grows() -> None:
    # 20 completions a second for 10 s; each waited 5 ms longer than the one before (a growing queue)
    overloaded = [rec(i, i * 25.0, ttft_ms=20.0 + 5.0 * i, e2e_ms=40.0 + 5.0 * i) for i in range(200)]
    assert saturated(overloaded)
    steady = [rec(i, i * 50.0, ttft_ms=20.0 + (i % 7), e2e_ms=40.0) for i in range(200)]
    assert not saturated(steady)
    # the queue grows but throughput doubles meanwhile (a ramp the server keeps up with): not flat
    ramp = [rec(i, 10_000 * (i / 300) ** 0.5, ttft_ms=20.0 + 0.5 * i) for i in range(300)]
    assert not saturated(ramp)


def test_saturation_needs_enough_completions_per_window() -> None:
    few = [rec(i, i * 1000.0, ttft_ms=20.0 + 50.0 * i) for i in range(10)]  # 1 a second < min_per_window / window
    assert RULE.min_per_window > RULE.window_s * 1
    assert not saturated(few)


# -- comparison ------------------------------------------------------------------------------

def sample(rng: random.Random, n: int, shift_ms: float = 0.0) -> list[RequestRecord]:
    """n requests with lognormal TTFT (median 50 ms) plus ``shift_ms``."""
    return [rec(i, i * 100.0, ttft_ms=rng.lognormvariate(3.9, 0.4) + shift_ms, e2e_ms=400.0) for i in range(n)]


@pytest.mark.slow  # seconds: left out of make test-fast
@pytest.mark.parametrize("statistic", ["ttft_ms.mean", "ttft_ms.p50"])
def test_identical_distributions_are_called_different_about_5_percent_of_the_time(statistic: str) -> None:
    """Both runs from the same distribution, 300 seeds: the 95% interval excludes 0 in about 5% of
    them. The count is Binomial(300, ~0.05): mean 15, sd 3.8; 3 and 30 lie 3.2 and 3.9 sd away, and
    leave room for the percentile bootstrap's known miscalibration at n = 80 (the median of 80 values
    is discrete, which makes its interval somewhat conservative: 8 of 300 here; the mean: 14 of 300)."""
    metric = c.MetricRef.parse(statistic)
    significant = 0
    for seed in range(300):
        rng = random.Random(seed)
        row = c.compare_records(sample(rng, 80), sample(rng, 80), metric, {}, rng, resamples=300)
        significant += row.verdict != "no significant change"
    assert 3 <= significant <= 30, significant


def test_a_known_shift_is_detected_with_the_right_direction() -> None:
    """+15 ms on a median of 50 ms (sd of the median ~3 ms per run of 80): detected in every seed."""
    ttft, throughput = c.MetricRef.parse("ttft_ms.p50"), c.MetricRef.parse("output_tokens_per_s")
    for seed in range(10):
        rng = random.Random(seed)
        a, b = sample(rng, 80), sample(rng, 80, shift_ms=15.0)
        assert c.compare_records(a, b, ttft, {}, rng, resamples=300).verdict == "worse"
        assert c.compare_records(b, a, ttft, {}, rng, resamples=300).verdict == "better"
    fast = [rec(i, i * 10.0, e2e_ms=50.0, tokens=20) for i in range(100)]
    slow = [rec(i, i * 10.0, e2e_ms=50.0, tokens=10) for i in range(100)]
    row = c.compare_records(slow, fast, throughput, {}, random.Random(0), resamples=300)
    assert row.verdict == "better" and row.better == "higher"


def test_fail_if_rules_need_the_whole_interval_beyond_the_threshold() -> None:
    rule = c.Rule.parse("ttft_ms.p99>+10%")
    row = c.Row(target="t", stage="s", metric="ttft_ms.p99", better="lower", a=100.0, b=125.0,
                ci_low_pct=12.0, ci_high_pct=38.0, ci_low=12.0, ci_high=38.0)
    assert rule.holds(row)
    assert not rule.holds(row.model_copy(update={"ci_low_pct": 8.0}))
    assert c.Rule.parse("output_tokens_per_s<-5%").holds(row.model_copy(update={"ci_high_pct": -6.0}))
    assert c.Rule.parse("ttft_ms.p99>+10").holds(row)  # without %: in the metric's unit (ms), 12 > 10
    assert not c.Rule.parse("ttft_ms.p99>+20").holds(row)


@pytest.mark.parametrize("text", ["ttft_ms", "ttft_ms.p42", "nope.p99", "output_tokens_per_s.p99"])
def test_a_bad_metric_is_a_clear_error(text: str) -> None:
    with pytest.raises(c.CompareError, match="--metric"):
        c.MetricRef.parse(text)


def test_a_bad_rule_is_a_clear_error() -> None:
    with pytest.raises(c.CompareError, match="--fail-if"):
        c.Rule.parse("ttft_ms.p99 rises")


# -- the verdict and the saturation mark in the summary, the console and report.html ----------

def test_the_summary_carries_the_verdict_and_the_report_shows_its_reasons() -> None:
    from loadgen.render import html as html_render
    from loadgen.render.table import notes
    from loadgen.summary import Summary, build_summary
    from tests.unit.records import manifest

    late = [rec(i, i * 100.0, i * 100.0 + i * 8.0) for i in range(50)]
    summary = build_summary(late, [], manifest(), {})
    v = summary.targets["t"].validity
    assert v is not None and not v.valid
    assert summary.targets["t"].stages["s0"].saturated is False
    dumped = Summary.model_validate_json(summary.to_json())
    assert dumped.targets["t"].validity == v and "saturated" not in summary.to_json().split('"stages"')[0]
    lines = [line for _, line in notes(summary)]
    assert lines[0].startswith("INVALID MEASUREMENT for t: send lag p99")
    page = html_render.render(late, summary)
    assert 'class="rig-invalid"' in page and "achieved ÷ offered send rate" in page
    on_time = build_summary([rec(i, i * 100.0) for i in range(50)], [], manifest(), {})
    assert 'class="rig-invalid"' not in html_render.render([], on_time)
