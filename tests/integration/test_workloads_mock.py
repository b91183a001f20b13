"""Trace replay, multi-turn sessions, shared prefixes and unique prompts run for real against the
synthetic server (``servers.mock`` with its prefix cache), checked against what was sent and what
the server answered: the trace's clock, think times after the previous answer, the history carrying
the server's own answers, per-turn TTFT, and the cached share that a prefix cache reports."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from loadgen import metrics as m
from loadgen.api import RunResult, load_run, run
from loadgen.config import Profile
from loadgen.record import RequestRecord
from tests.integration.mock_runs import mock

BLOCK = 8  # words per block of the mock's prefix cache


def run_on(url: str, out: Path, prompts: dict[str, Any], load: dict[str, Any], model_dir: Path,
           kind: str = "openai-completions", seed: int = 0) -> RunResult:
    profile = Profile.model_validate({
        "model": "mock", "seed": seed, "targets": [{"name": "mock", "kind": kind, "url": url}],
        "prompts": {"tokenizer": str(model_dir), **prompts}, "load": load, "metrics": {"enabled": False}})
    result = run(profile, out, report=False)
    assert not result.interrupted
    assert all(r.ok for r in result.records), {r.error_detail for r in result.records if not r.ok}
    return result


def test_a_trace_is_replayed_on_its_own_clock(tmp_path: Path, model_dir: Path) -> None:
    rows = [{"timestamp": t, "input_length": 12, "output_length": 3, "hash_ids": [i % 2]}
            for i, t in enumerate([0, 400, 450, 1800, 2000, 2100, 3000, 5200, 9000])]
    rows[3]["input_length"] = 90  # over the context limit: clipped
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = {"source": "trace", "format": "mooncake", "path": str(trace), "speedup": 4.0, "start_s": 0.4,
               "max_requests": 6, "max_context_tokens": 40, "block_tokens": BLOCK}
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2", "--prefix-cache-block", str(BLOCK)) as url:
        result = run_on(url, tmp_path / "out", prompts, {"type": "replay"}, model_dir)
    records = sorted(result.records, key=lambda r: r.intended_ns)
    # window from 0.4 s: rows at 0.4 .. 3.0 s (6 of them), offsets / 4
    expected = [(t - 400) / 1000 / 4 for t in (400, 450, 1800, 2000, 2100, 3000)]
    got = [(r.intended_ns - records[0].intended_ns) / 1e9 for r in records]
    assert got == pytest.approx(expected, abs=1e-6)
    assert [r.prompt_id for r in records] == [f"trace-{line}" for line in (2, 3, 4, 5, 6, 7)]
    assert m.stats(m.send_lag_ms(r) for r in records).max < 20  # sent on time (loose: 2 shared cores)
    assert [r.prompt_tokens for r in records] == [12, 12, 37, 12, 12, 12]  # 90 + 3 > 40: input clipped to 37
    stats = result.summary.manifest.prompt_stats
    assert (stats["rows"], stats["used"], stats["clipped"], stats["outside_window"]) == (9, 6, 1, 3)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["manifest"]["prompt_stats"] == stats
    assert load_run(tmp_path / "out", rebuild=True).summary.to_json() == result.summary.to_json()
    # rows with equal hash ids share their first block: the mock's cache saw it
    assert [r.cached_tokens for r in records][:3] == [0, 0, BLOCK]


def test_sessions_wait_for_the_answer_and_think_time_and_carry_the_history(tmp_path: Path, model_dir: Path) -> None:
    think, user, answer = 0.08, 10, 5
    prompts = {"source": "conversations", "count": 3, "turns": 3, "user_tokens": user, "output_tokens": answer,
               "think_s": think, "think": "constant"}
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2", "--prefix-cache-block", str(BLOCK)) as url:
        result = run_on(url, tmp_path / "out", prompts, {"type": "concurrency", "concurrency": 3, "requests": 9},
                        model_dir, kind="openai-chat")
    sessions: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in result.records:
        sessions[r.session_id or ""].append(r)
    assert sorted(sessions) == ["conv-syn0", "conv-syn1", "conv-syn2"]
    for turns in sessions.values():
        turns.sort(key=lambda r: r.turn or 0)
        assert [r.turn for r in turns] == [1, 2, 3]
        for before, after in itertools.pairwise(turns):
            assert after.intended_ns == before.end_ns + int(think * 1e9)
            assert after.sent_ns >= after.intended_ns
        # the mock counts words: each turn's prompt is the history (questions and the mock's own answers,
        # " tok" x 5) plus the new question
        assert [r.prompt_tokens for r in turns] == [user, 2 * user + answer, 3 * user + 2 * answer]
        assert all(r.output_text == " tok" * answer for r in turns)
        assert turns[0].cached_tokens == 0 and turns[2].cached_tokens >= BLOCK  # history served from the cache
    by_turn = result.summary.targets["mock"].ttft_ms_by_turn
    assert by_turn is not None and sorted(by_turn) == ["1", "2", "3"] and {s.count for s in by_turn.values()} == {3}
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())["targets"]["mock"]
    assert saved["ttft_ms_by_turn"]["2"]["p50"] == by_turn["2"].p50
    # the saved run reads back, and the records alone give the same summary
    assert load_run(tmp_path / "out").summary == result.summary
    assert load_run(tmp_path / "out", rebuild=True).summary.to_json() == result.summary.to_json()


def test_sessions_arrive_at_a_rate_in_an_open_loop(tmp_path: Path, model_dir: Path) -> None:
    prompts = {"source": "conversations", "count": 4, "turns": 2, "user_tokens": 6, "output_tokens": 3}
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2") as url:
        result = run_on(url, tmp_path / "out", prompts,
                        {"type": "rate", "rate": 20, "arrival": "constant", "requests": 8}, model_dir)
    firsts = sorted(r.intended_ns for r in result.records if r.turn == 1)
    assert len(firsts) == 4 and len(result.records) == 8
    assert [(b - a) / 1e9 for a, b in itertools.pairwise(firsts)] == pytest.approx([0.05] * 3, abs=1e-6)
    assert result.summary.targets["mock"].ttft_ms_by_turn is not None


def test_single_request_runs_have_no_turn_block(tmp_path: Path, model_dir: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2") as url:
        result = run_on(url, tmp_path / "out", {"input_tokens": 16, "output_tokens": 2, "count": 2},
                        {"type": "concurrency", "concurrency": 1, "requests": 2}, model_dir)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())["targets"]["mock"]
    assert "ttft_ms_by_turn" not in saved and saved["cached_share"] is None  # this mock reports no cache
    assert all(r.cached_tokens is None and r.session_id is None for r in result.records)


def test_cached_share_separates_shared_prefixes_from_unique_prompts(tmp_path: Path, model_dir: Path) -> None:
    load = {"type": "concurrency", "concurrency": 1, "requests": 24}
    shared = {"source": "shared-prefix", "groups": 2, "prefix_tokens": 4 * BLOCK, "suffix_tokens": BLOCK // 2,
              "count": 24, "output_tokens": 2}
    synthetic = {"input_tokens": 3 * BLOCK, "output_tokens": 2, "count": 4}
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2", "--prefix-cache-block", str(BLOCK)) as url:
        # one seed each: sources draw words from the seed alike, and the mock's cache outlives a run
        prefix = run_on(url, tmp_path / "prefix", shared, load, model_dir, seed=1)
        unique = run_on(url, tmp_path / "unique", synthetic, load, model_dir, seed=2)
        repeated = run_on(url, tmp_path / "repeated", {**synthetic, "unique": False}, load, model_dir, seed=3)
    # every request but each group's first finds its 32-token prefix cached: 22 · 32 / (24 · 36)
    assert prefix.summary.targets["mock"].value("cached_share") == pytest.approx(22 * 32 / (24 * 36), abs=1e-3)
    assert unique.summary.targets["mock"].value("cached_share") == 0.0
    assert len({r.prompt_id for r in unique.records}) == 24 and {r.prompt_tokens for r in unique.records} == {24}
    # the same 4 prompts 6 times each: from the second pass on, all but the last block is cached
    assert repeated.summary.targets["mock"].value("cached_share") == pytest.approx(20 * 16 / (24 * 24), abs=1e-3)


def test_a_failed_turn_ends_its_session(tmp_path: Path, model_dir: Path) -> None:
    prompts = {"source": "conversations", "count": 2, "turns": 3, "user_tokens": 6, "output_tokens": 2}
    profile = Profile.model_validate({
        "model": "mock", "targets": [{"name": "mock", "kind": "openai-chat", "url": "http://set-below"}],
        "prompts": {"tokenizer": str(model_dir), **prompts}, "metrics": {"enabled": False},
        "load": {"type": "concurrency", "concurrency": 1, "requests": 4}})
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2", "--fail-500-rate", "1") as url:
        profile.targets[0].url = url
        result = run(profile, tmp_path / "out", report=False)
    # every first turn fails, so no second turn is ever sent; the next session starts instead
    assert [(r.session_id, r.turn, r.error) for r in result.records] == [
        ("conv-syn0", 1, "http_5xx"), ("conv-syn1", 1, "http_5xx"), ("conv-syn0~1", 1, "http_5xx"),
        ("conv-syn1~1", 1, "http_5xx")]
