"""The load generator's OpenAI clients against the real baseline server on the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadgen.api import RunResult, run
from loadgen.cli import main
from loadgen.config import Profile
from loadgen.sinks.jsonl import read_records
from stack.process import free_port
from tests.integration.servers import Server


def run_against(out: Path, kind: str, url: str, model: str, tokenizer: Path, *, concurrency: int, requests: int,
                input_tokens: int, output_tokens: int, **fields: Any) -> RunResult:
    """A one-target run with synthetic prompts of exact length (counted with the model's tokenizer)."""
    profile = Profile.model_validate({
        "model": model, "targets": [{"name": "hf", "kind": kind, "url": url}],
        "prompts": {"input_tokens": input_tokens, "output_tokens": output_tokens, "tokenizer": str(tokenizer)},
        "load": {"type": "concurrency", "concurrency": concurrency, "requests": requests},
        "metrics": {"enabled": False}, **fields})
    result = run(profile, out)
    assert not result.interrupted
    return result


@pytest.mark.parametrize("kind", ["openai-chat", "openai-completions"])
def test_client_paths_complete_with_exact_token_counts(baseline: Server, model_dir: Path, tmp_path: Path,
                                                       kind: str) -> None:
    result = run_against(tmp_path, kind, baseline.url, baseline.model, model_dir, concurrency=2, requests=4,
                         input_tokens=24, output_tokens=6, warmup=1)
    records = list(read_records(tmp_path / "records.jsonl"))
    assert records == result.records
    assert len(records) == 5 and sum(r.warmup for r in records) == 1
    for r in records:
        assert r.ok, r.error_detail
        assert r.output_tokens == 6 and sum(r.chunk_tokens) == 6 and r.chunk_tokens_exact
        assert r.finish_reason == "length"
        assert r.client_output_tokens is not None
        assert r.intended_ns <= r.sent_ns < r.first_byte_ns <= r.first_token_ns < r.end_ns
        if kind == "openai-completions":
            assert r.prompt_tokens == 24  # the server counts exactly the synthetic length
        else:
            assert r.prompt_tokens > 24  # plus the chat template's tokens
            # the role-only first chunk is a chunk, not a token
            assert r.chunk_tokens[0] == 0 and r.first_token_ns == r.sent_ns + r.chunk_offsets_ns[1]
    # summary.json's layout (read as JSON: the file's keys are the contract), and the same on the typed summary
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(result.summary.to_json())
    block = summary["targets"]["hf"]
    assert block["requests"] == {"ok": 4, "failed": 0, "by_error": {
        "connect": 0, "timeout": 0, "http_4xx": 0, "http_5xx": 0, "stream_error": 0, "protocol": 0, "cancelled": 0,
        "worker_lost": 0}}
    for key in ("ttft_ms", "ttft_intended_ms", "ttfb_ms", "itl_ms", "tpot_ms", "e2e_ms", "send_lag_ms"):
        assert set(block[key]) >= {"mean", "p50", "p90", "p95", "p99", "p999", "max"}, key
    assert block["output_tokens_per_s"] > 0 and block["stages"]["c2"]["requests"]["ok"] == 4
    assert summary["manifest"]["dataset_hash"] and summary["manifest"]["seed"] == 0
    typed = result.summary.targets["hf"]
    assert typed.requests.ok == 4 and typed.stats("ttft_ms") is not None and typed.stats("ttft_ms").count == 4
    assert typed.stages["c2"].value("output_tokens_per_s") == block["stages"]["c2"]["output_tokens_per_s"]

    # `loadgen report` re-renders the same numbers from the saved records.
    before = summary["targets"]
    assert main(["report", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["targets"] == before


def test_bad_parameters_end_as_classified_4xx_records(baseline: Server, model_dir: Path, tmp_path: Path) -> None:
    run_against(tmp_path, "openai-chat", baseline.url, baseline.model, model_dir, concurrency=1, requests=2,
                input_tokens=8, output_tokens=4, request={"extra_body": {"top_p": 0}})
    records = list(read_records(tmp_path / "records.jsonl"))
    assert [(r.error, r.status) for r in records] == [("http_4xx", 400)] * 2
    assert "top_p" in records[0].error_detail


def test_unreachable_target_is_a_connect_error(model_dir: Path, tmp_path: Path) -> None:
    run_against(tmp_path, "openai-completions", f"http://127.0.0.1:{free_port()}", "m", model_dir, concurrency=1,
                requests=2, input_tokens=8, output_tokens=4)
    assert [r.error for r in read_records(tmp_path / "records.jsonl")] == ["connect", "connect"]
