"""Chunked prefill: prompts prefilled in chunks mixed into decode steps give the naive scheduler's tokens.

In-process on the real model (fp32, CPU). A tiny per-step budget forces every prompt that arrives while a
batch runs into several chunks, each sharing a forward pass with the batch's decode tokens.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from servers.hf import chunked
from servers.hf.continuous import ContinuousScheduler
from servers.hf.metrics import ServerMetrics
from servers.hf.naive import NaiveScheduler
from servers.hf.runner import ModelRunner
from tests.integration.scheduling import REQUESTS, drive, make_seq

BUDGET = 8  # tokens per forward pass: 4 running sequences leave 4 prompt tokens a step


@pytest.fixture(scope="module")
def runner(model_dir: Path) -> ModelRunner:
    return ModelRunner(model_dir)


def scheduler(runner: ModelRunner, budget: int = BUDGET) -> ContinuousScheduler:
    return ContinuousScheduler(runner, ServerMetrics("m"), max_queue=64, max_num_seqs=4, kv_cache_tokens=4096,
                               max_num_batched_tokens=budget)


@pytest.fixture
def forwards(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[tuple[int, int]]]]:
    """(decode rows, [(chunk start, chunk length)]) of every mixed forward pass."""
    seen: list[tuple[int, list[tuple[int, int]]]] = []
    real = chunked.forward

    def spy(model: object, step: chunked.MixedStep, *args: object) -> torch.Tensor:
        seen.append((step.decode_rows, [(chunk.start, chunk.length) for chunk in step.chunks]))
        return real(model, step, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(chunked, "forward", spy)
    return seen


def test_chunked_prefill_gives_the_naive_schedulers_greedy_tokens(
        runner: ModelRunner, forwards: list[tuple[int, list[tuple[int, int]]]]) -> None:
    naive = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS)]
    asyncio.run(drive(NaiveScheduler(runner, ServerMetrics("m"), 64), naive, [0.0] * len(naive)))
    seqs = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS)]
    asyncio.run(drive(scheduler(runner), seqs, [d for _, _, d in REQUESTS]))
    assert [s.output_ids for s in seqs] == [s.output_ids for s in naive]
    # Prompts were really chunked (a chunk starting past 0) and mixed with decode rows, within the budget.
    assert any(start > 0 for _, chunks in forwards for start, _ in chunks)
    assert any(rows > 0 for rows, _ in forwards)
    assert all(rows + sum(length for _, length in chunks) <= BUDGET for rows, chunks in forwards)


def test_chunked_logits_match_a_whole_prefill(runner: ModelRunner) -> None:
    """The last chunk's logits for a 40-token prompt prefilled 7 tokens at a time beside a decoding sequence
    equal a whole-prompt prefill's to fp32 rounding."""
    prompt = runner.encode("The lighthouse keeper climbed the stairs every evening, lit the lamp, and "
                           "watched the ships pass by the rocks until the morning came again over the sea")
    whole, _ = runner.prefill(prompt)
    sched = scheduler(runner, budget=8)
    first, other = runner.prefill(runner.encode("Hello there"))
    sched.kv.add(other, len(runner.encode("Hello there")))
    cache = chunked.DynamicCache(config=runner.model.config)
    done, logits = 0, None
    while done < len(prompt):
        n = min(7, len(prompt) - done)
        mask = sched.kv.begin_step()
        step = chunked.MixedStep(sched.kv, 1, mask, [chunked.Chunk(cache, done, n)])
        logits = chunked.forward(runner.model, step, [int(first.argmax()), *prompt[done:done + n]],
                                 list(sched.kv.lengths) + list(range(done, done + n)), [0, n])
        sched.kv.end_step()
        done += n
    assert logits is not None
    assert torch.allclose(logits[1], whole, atol=1e-3, rtol=0), float((logits[1] - whole).abs().max())
    assert int(logits[1].argmax()) == int(whole.argmax())


def test_a_sequence_cancelled_while_prefilling_leaves_and_the_batch_goes_on(runner: ModelRunner) -> None:
    sched = scheduler(runner, budget=5)
    first = make_seq(runner, 0, "Count: 1, 2, 3,", 30)
    victim = make_seq(runner, 1, "A very long prompt " * 20, 5)

    async def scenario() -> None:
        await sched.start()
        sched.submit(first)
        while not first.output_ids:
            await asyncio.sleep(0.005)
        sched.submit(victim)
        while not sched._prefilling:
            await asyncio.sleep(0.001)
        sched.cancel(victim)
        while not (first.is_finished and victim.is_finished):
            await asyncio.sleep(0.01)
        await sched.stop()

    asyncio.run(scenario())
    assert victim.finish_reason == "abort" and not victim.output_ids
    assert first.finish_reason == "length" and len(first.output_ids) == 30
    assert sched.budget.used_blocks == 0


def test_several_prompts_share_one_step_within_the_budget(
        runner: ModelRunner, forwards: list[tuple[int, list[tuple[int, int]]]]) -> None:
    """Prompts that arrive together while a batch runs are prefilled together (vLLM's behaviour with a
    budget that holds them), and their tokens equal the naive scheduler's."""
    prompts = [("Count: 1, 2, 3,", 12, 0.0)] + [(p, n, 0.0) for p, n, _ in REQUESTS[:3]]
    naive = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(prompts)]
    asyncio.run(drive(NaiveScheduler(runner, ServerMetrics("m"), 64), naive, [0.0] * len(naive)))
    seqs = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(prompts)]
    asyncio.run(drive(scheduler(runner, budget=2048), seqs, [0.0] * len(seqs)))
    assert [s.output_ids for s in seqs] == [s.output_ids for s in naive]
    assert any(rows == 1 and len(chunks) == 3 for rows, chunks in forwards), forwards
