"""``loadgen search`` and ``loadgen compare`` on the REAL CPU engines (SmolLM2): the baseline with its naive
scheduler (one request at a time, from the session's stack), the baseline with continuous batching (started
here) and vLLM. Short on purpose (tiny prompts and outputs, few coarse steps): it runs in CI on 2 cores.

Expected: naive serves requests one after another, so its capacity is one service time's worth of
requests per second; batching engines serve several at once, so theirs is higher. And at the same
offered load the naive queue makes its TTFT significantly worse than continuous batching's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.baseline.launch import baseline_process
from loadgen.answers.compare import MetricRef, compare_runs
from loadgen.answers.search import SLO, TargetSearch, search
from loadgen.api import run
from loadgen.config import Profile
from stack.local import StackState
from stack.process import free_port

SLO_TEXT = "ttft_p99_ms=2000"
START_RATE = 1.0


@pytest.fixture(scope="module")
def continuous(model_dir: Path, log_dir: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    proc = baseline_process(model_dir, port, log_dir, served_model_name="continuous",
                            extra_args=["--scheduler", "continuous", "--max-num-seqs", "8", "--max-queue", "256"])
    with proc:
        yield {"kind": "openai-completions", "url": f"http://127.0.0.1:{port}", "model": "continuous"}


def engine_search(target: dict[str, Any], model_dir: Path, out: Path) -> TargetSearch:
    """Target named "server" in every search, so that the steps of two engines can be compared."""
    profile = Profile.model_validate({
        "name": "capacity-cpu", "seed": 1, "warmup": 2,
        "targets": [{**target, "name": "server"}],
        "prompts": {"input_tokens": 16, "output_tokens": 8, "count": 64, "tokenizer": str(model_dir)},
        "request": {"temperature": 0.0, "ignore_eos": True, "timeout_s": 120.0},
        "load": {"type": "rate", "rate": START_RATE, "duration_s": 6, "arrival": "constant"},
        "metrics": {"enabled": False}})
    found = search(profile, SLO.parse(SLO_TEXT), out, resolution=0.25, max_steps=5)
    return found.targets["server"]


def test_search_orders_the_engines_and_compare_sees_the_batching_gain(
        stack: StackState, continuous: dict[str, str], model_dir: Path, tmp_path: Path) -> None:
    naive_target = {k: v for k, v in stack.engines["baseline"].target("openai-completions").items() if k != "name"}
    vllm_target = {k: v for k, v in stack.engines["vllm"].target("openai-completions").items() if k != "name"}
    naive = engine_search(naive_target, model_dir, tmp_path / "naive")
    batched = engine_search(continuous, model_dir, tmp_path / "continuous")
    vllm = engine_search(vllm_target, model_dir, tmp_path / "vllm")
    lines = [f"{name}: {t.answer} req/s in {t.seconds} s over {len(t.steps)} steps"
             for name, t in (("naive", naive), ("continuous", batched), ("vllm", vllm))]
    print("\n".join(lines))
    assert naive.answer is None or batched.answer is not None
    assert (naive.answer or 0) < (batched.answer or 0), lines
    assert (naive.answer or 0) < (vllm.answer or 0), lines
    # At 4 requests in flight the naive server queues three of them behind the one it generates for;
    # continuous batching admits all four at once: its TTFT must come out lower, significantly.
    a = run(closed_loop(naive_target, model_dir), tmp_path / "compare-naive", report=False)
    b = run(closed_loop(continuous, model_dir), tmp_path / "compare-continuous", report=False)
    row = compare_runs(a, b, [MetricRef.parse("ttft_ms.p50")], allow_invalid=True, resamples=1000).rows[0]
    print(f"compare naive → continuous: {row}")
    assert row.verdict == "better", row


def closed_loop(target: dict[str, Any], model_dir: Path) -> Profile:
    return Profile.model_validate({
        "name": "compare-cpu", "seed": 1, "warmup": 2, "targets": [{**target, "name": "server"}],
        "prompts": {"input_tokens": 16, "output_tokens": 8, "count": 64, "tokenizer": str(model_dir)},
        "request": {"temperature": 0.0, "ignore_eos": True, "timeout_s": 120.0},
        "load": {"type": "concurrency", "concurrency": 4, "requests": 16}, "metrics": {"enabled": False}})
