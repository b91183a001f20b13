"""The live exporter against hand-computed records: the same numbers as summary.json, in seconds."""

from __future__ import annotations

import httpx
import pytest

from loadgen.exporter import LiveMetrics
from loadgen.record import RequestRecord
from tests.unit.records import record as metrics_record


def record(**overrides) -> RequestRecord:
    """The hand-computed record of test_loadgen_metrics (TTFT 18 ms, E2E 48 ms, gaps 10 and 15 ms, 4 tokens),
    as a vllm openai-chat request of stage c4."""
    return metrics_record(**{"target": "vllm", "kind": "openai-chat", "stage_name": "c4", **overrides})


def value(live: LiveMetrics, name: str, **labels: str) -> float | None:
    return live.registry.get_sample_value(name, {"target": "vllm", "kind": "openai-chat", "profile": "p",
                                                 "stage": "c4", **labels})


def test_records_become_counters_and_histograms() -> None:
    live = LiveMetrics("p")
    live.issued("vllm", "openai-chat", "c4")
    live.issued("vllm", "openai-chat", "c4")
    assert value(live, "loadgen_requests_in_flight") == 2
    live(record())
    live(record(error="http_5xx", status=500, first_token_ns=None, output_tokens=None, chunk_offsets_ns=[],
                chunk_tokens=[]))
    assert value(live, "loadgen_requests_in_flight") == 0
    assert value(live, "loadgen_requests_total", outcome="ok", error_class="") == 1
    assert value(live, "loadgen_requests_total", outcome="error", error_class="http_5xx") == 1
    assert value(live, "loadgen_ttft_seconds_sum") == pytest.approx(0.018)  # 1020 − 1002 ms
    assert value(live, "loadgen_ttft_seconds_count") == 1  # failures are not latencies
    assert value(live, "loadgen_e2e_seconds_sum") == pytest.approx(0.048)
    assert value(live, "loadgen_tpot_seconds_sum") == pytest.approx(0.010)  # (48 − 18) / (4 − 1)
    assert value(live, "loadgen_itl_seconds_count") == 2  # gaps 10 and 15 ms between token chunks
    assert value(live, "loadgen_itl_seconds_sum") == pytest.approx(0.025)
    assert value(live, "loadgen_itl_seconds_bucket", le="0.01") == 1
    assert value(live, "loadgen_send_lag_seconds_count") == 2  # every request
    assert value(live, "loadgen_output_tokens_total") == 4 and value(live, "loadgen_input_tokens_total") == 10


def test_serves_prometheus_text_on_a_free_port() -> None:
    live = LiveMetrics("p")
    port = live.serve("127.0.0.1", 0)
    try:
        live.issued("vllm", "openai-chat", "c4")
        live.loop_lag_sample(250_000)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'loadgen_requests_in_flight{kind="openai-chat",profile="p",stage="c4",target="vllm"} 1.0' in text
        assert 'loadgen_loop_lag_seconds_count{profile="p"} 1.0' in text
    finally:
        live.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
