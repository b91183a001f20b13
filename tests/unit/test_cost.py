"""The cost arithmetic (``loadgen.cost``) against hand-computed figures, the ``cost`` blocks a price gives a
summary (and none without one), and ``--price-per-hour`` refusing what it cannot use."""

from __future__ import annotations

import pytest

from loadgen.config import Profile, with_prices
from loadgen.cost import cost_block, per_million
from loadgen.render.table import summary_table
from loadgen.summary import build_summary
from tests.unit.records import MS, manifest, record


def test_a_million_tokens_cost_the_hours_price_over_the_tokens_per_hour() -> None:
    # $2.50 an hour at 1,000 output tokens/s: 3.6 M tokens an hour, so $0.6944 per million.
    assert per_million(2.5, 1000) == pytest.approx(2.5 / 3.6, abs=1e-6)
    c = cost_block(2.5, 1000, 500, 250, usd_per_kwh=0.20, energy_j=3.6e6, output_tokens=1_000_000)
    assert c.usd_per_mtok_output == pytest.approx(0.694444, abs=1e-6)
    assert c.usd_per_mtok_total == pytest.approx(2.5 / 3600 / 1500 * 1e6, abs=1e-6)  # 0.462963
    assert c.usd_per_m_goodput_tokens == pytest.approx(2.777778, abs=1e-6)  # a quarter of the tokens were good
    assert c.energy_usd_per_mtok_output == pytest.approx(0.20)  # 1 kWh for a million tokens at $0.20/kWh
    assert c.price_per_hour == 2.5 and c.usd_per_kwh == 0.20


def test_nothing_produced_costs_nothing_defined() -> None:
    c = cost_block(3.0, 0.0, None, None)
    assert c.usd_per_mtok_output is None and c.usd_per_mtok_total is None and c.usd_per_m_goodput_tokens is None
    assert c.energy_usd_per_mtok_output is None


def requests(n: int) -> list:
    # One request every 100 ms, each 4 output tokens (records.record's shape), 50 ms long.
    return [record(index=i, intended_ns=i * 100 * MS, sent_ns=i * 100 * MS, first_byte_ns=i * 100 * MS + 3 * MS,
                   first_token_ns=i * 100 * MS + 18 * MS, first_content_ns=i * 100 * MS + 18 * MS,
                   end_ns=i * 100 * MS + 48 * MS) for i in range(n)]


def test_a_price_gives_every_block_a_cost_at_its_own_rates() -> None:
    records = requests(20)
    summary = build_summary(records, [], manifest(), {"ttft_ms": 10.0}, prices={"t": 7.2})
    target = summary.targets["t"]
    assert target.cost is not None and target.stages["c1"].cost is not None
    out = target.output_tokens_per_s
    assert target.cost.usd_per_mtok_output == pytest.approx(7.2 / 3600 / out * 1e6, rel=1e-4)
    assert target.cost.usd_per_m_goodput_tokens is None  # TTFT is 18 ms: no request met 10 ms
    steady = target.stages["c1"].steady
    assert steady is not None and steady.metrics is not None and steady.metrics.cost is not None
    assert "$/Mtok out" in summary_table(summary).columns


def test_no_price_no_cost() -> None:
    summary = build_summary(requests(5), [], manifest(), {})
    assert summary.targets["t"].cost is None and "$/Mtok out" not in summary_table(summary).columns
    assert "cost" not in summary.to_json()


def profile() -> Profile:
    return Profile.model_validate({"model": "m", "targets": [
        {"name": "vllm", "kind": "openai-chat", "url": "http://127.0.0.1:8000"},
        {"name": "hf", "kind": "openai-chat", "url": "http://127.0.0.1:8001"}],
        "load": {"type": "concurrency", "concurrency": 1, "requests": 1}})


def test_price_per_hour_names_a_target() -> None:
    priced = with_prices(profile(), ["vllm=2.5", "hf=0"])
    assert [t.price_per_hour for t in priced.targets] == [2.5, 0.0]
    with pytest.raises(ValueError, match="names 'trt', which is not one of the targets"):
        with_prices(profile(), ["trt=1"])
    for bad in ("vllm", "vllm=-1", "vllm=cheap", "vllm=nan"):
        with pytest.raises(ValueError, match="expected NAME=USD"):
            with_prices(profile(), [bad])
