"""The synthetic server itself: its wire shapes, its bookkeeping, keep-alive and bad input;
and open-loop Poisson arrivals measured on a real run against it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import httpx
import pytest
from scipy import stats

from loadgen.sinks.jsonl import read_records
from tests.integration.helpers import metric, stream
from tests.integration.mock_runs import mock, run_mock


def test_shapes_bookkeeping_and_keep_alive(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "1", "--tokens-per-chunk", "2") as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        body = {"model": "mock", "messages": [{"role": "user", "content": "a b"}], "max_tokens": 5,
                "stream_options": {"include_usage": True}}
        chat = stream(client, "/v1/chat/completions", body)
        assert chat.done and chat.chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        texts = [c["choices"][0]["delta"]["content"] for c in chat.content_chunks[1:]]
        assert texts == [" tok tok", " tok tok", " tok"]
        assert chat.usage == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
        whole = client.post("/v1/completions", json={"model": "mock", "prompt": "x", "max_tokens": 3}).json()
        assert whole["choices"][0]["text"] == " tok tok tok" and whole["usage"]["completion_tokens"] == 3
        with client.stream("POST", "/v2/models/ensemble/generate_stream",
                           json={"text_input": "x", "max_tokens": 4}) as response:
            lines = [line for line in response.iter_lines() if line]
        assert [json.loads(line[6:])["text_output"] for line in lines] == [" tok tok", " tok tok"]  # no [DONE]
        bad = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["message"]
        # All of that went over one keep-alive connection, and the books agree with it.
        assert metric(client, "mock_requests_total", outcome="ok") == 3
        assert metric(client, "mock_tokens_total") == 5 + 3 + 4 - 3  # non-streamed tokens are not written one by one
        assert metric(client, "mock_ttft_seconds_count") == 2
        assert metric(client, "mock_itl_seconds_count") == (3 - 1) + (2 - 1)


def test_open_loop_poisson_arrivals_on_a_real_run(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "2", "--itl-ms", "1") as url:
        # ~4,000 arrivals: the rate estimate's standard error is ~1.6%, well inside the 5% asked.
        run_mock(tmp_path / "out", url, {"type": "rate", "rate": 500, "arrival": "poisson", "duration_s": 8},
                 output_tokens=2)
    records = sorted(read_records(tmp_path / "out" / "records.jsonl"), key=lambda r: r.intended_ns)
    assert all(r.ok for r in records)
    gaps = [(b.intended_ns - a.intended_ns) / 1e9 for a, b in itertools.pairwise(records)]
    span = (records[-1].intended_ns - records[0].intended_ns) / 1e9
    assert len(gaps) / span == pytest.approx(500, rel=0.05)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 500)).pvalue > 0.01
    # The requests really left at that rate, never before their time. (How late they left is
    # timing, reported by `loadgen selftest` as send lag, not asserted on a shared CI core.)
    sends = sorted(r.sent_ns for r in records)
    assert (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9) == pytest.approx(500, rel=0.05)
    assert all(r.sent_ns >= r.intended_ns for r in records)


def test_events_per_write_sends_every_event_in_fewer_writes(tmp_path: Path) -> None:
    """``--events-per-write 4`` (the selftest's capacity mode): every token is still its own SSE event
    with exact usage, written 4 at a time every 4 × ITL; the client sees each group at one kernel time."""
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "10", "--events-per-write", "4") as url:
        result = run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 2, "requests": 4},
                          output_tokens=10, kind="openai-chat")
        with httpx.Client(base_url=url, timeout=10) as client:
            assert metric(client, "mock_tokens_total") == 40
            assert metric(client, "mock_itl_seconds_count") == 4 * 2  # 3 writes a request (4+4+2 events): 2 gaps
    for r in result.records:
        assert r.ok and r.output_tokens == 10 and sum(r.chunk_tokens) == 10 and r.chunk_tokens_exact
        token_times = [t for t, n in zip(r.chunk_offsets_ns, r.chunk_tokens, strict=True) if n]
        assert len(token_times) == 10 and len(set(token_times)) <= 3  # a write's events share their arrival
        assert token_times[-1] - token_times[0] >= 2 * 4 * 10e6 * 0.9  # still paced: 2 gaps of 4 × ITL
