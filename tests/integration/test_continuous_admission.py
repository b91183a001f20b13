"""The continuous scheduler's queue bound and default KV-cache budget (no generation runs here).

Why separate from test_continuous.py: these check admission arithmetic only, on a scheduler that is
never started, so they take the model's load time and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servers.hf.continuous import ContinuousScheduler
from servers.hf.metrics import ServerMetrics
from servers.hf.naive import default_kv_cache_tokens, make_scheduler
from servers.hf.runner import ModelRunner
from servers.hf.scheduler_base import QueueFull
from servers.hf.sequence import SamplingParams, Sequence


@pytest.fixture(scope="module")
def runner(model_dir: Path) -> ModelRunner:
    return ModelRunner(model_dir)


def seq(runner: ModelRunner, i: int, max_tokens: int = 8) -> Sequence:
    return Sequence(request_id=f"q{i}", prompt_ids=runner.encode("Hello there"),
                    params=SamplingParams(max_tokens=max_tokens, temperature=0.0),
                    tokenizer=runner.tokenizer, eos_ids=runner.eos_ids)


def test_free_rows_do_not_count_against_max_queue(runner: ModelRunner) -> None:
    """4 free rows + max_queue 2: six requests are accepted before any runs, the seventh gets 429."""
    scheduler = ContinuousScheduler(runner, ServerMetrics("m"), max_queue=2, max_num_seqs=4, kv_cache_tokens=4096)
    for i in range(6):
        scheduler.submit(seq(runner, i))
    with pytest.raises(QueueFull):
        scheduler.submit(seq(runner, 6))
    assert scheduler.num_waiting == 6


def test_default_budget_holds_a_request_that_reserves_the_whole_context(runner: ModelRunner) -> None:
    scheduler = make_scheduler("continuous", runner, ServerMetrics("m"), max_queue=8, max_num_seqs=2)
    assert isinstance(scheduler, ContinuousScheduler)
    assert scheduler.budget.total_tokens == default_kv_cache_tokens(2, runner.max_model_len) == runner.max_model_len
    prompt = len(runner.encode("Hello there"))
    scheduler.submit(seq(runner, 0, max_tokens=runner.max_model_len - prompt))  # chat's default max_tokens
    assert default_kv_cache_tokens(32, 8192) == 32 * 1024
