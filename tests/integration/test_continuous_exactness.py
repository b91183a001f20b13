"""How close the continuous scheduler's batched decode is to the naive batch-1 decode, in logits.

Why logits and not only tokens: greedy tokens agree whenever the logits do, so a bit-level check
says more than a handful of prompts. A lone sequence (a batch of one, no padding) must be
bit-identical to the naive scheduler. A real batch cannot be: MKL computes a matrix product with
one row (batch 1) and with several rows by different kernels, whose fp32 sums differ in the last
bits, and a batch attends through ``chunked.decode_attention`` (batched matmuls over the padded cache, not
SDPA's kernel); the test pins that difference to the fp32
noise level (~1e-5 on logits of magnitude ~10), far below a typical gap between the top two logits,
which is why greedy tokens agree in practice (tests/integration/test_continuous.py) though not by
construction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from servers.hf import chunked
from servers.hf.kv_cache import BatchKVCache
from servers.hf.runner import ModelRunner

PROMPTS = ["Once upon a time, in a land far away, there lived a", "def fibonacci(n):", "The capital of France is"]
STEPS = 6


@pytest.fixture(scope="module")
def runner(model_dir: Path) -> ModelRunner:
    return ModelRunner(model_dir)


def naive_logits(runner: ModelRunner, ids: list[int]) -> list[torch.Tensor]:
    """The naive scheduler's loop: prefill, then batch-1 decode of the greedy token."""
    logits, cache = runner.prefill(ids)
    out = []
    for _ in range(STEPS):
        logits = runner.decode(int(torch.argmax(logits)), cache)
        out.append(logits.clone())
    return out


@torch.inference_mode()
def batched_logits(runner: ModelRunner, prompts: list[list[int]]) -> list[list[torch.Tensor]]:
    """The continuous scheduler's decode: every prompt prefilled alone, then one batched step per token
    (``chunked.decode_step``, the scheduler's own)."""
    config = runner.model.config
    kv = BatchKVCache(config.num_hidden_layers, config.num_key_value_heads, config.head_dim, runner.model.dtype,
                      runner.device, runner.max_model_len)
    tokens = []
    for ids in prompts:
        logits, cache = runner.prefill(ids)
        kv.add(cache, len(ids))
        tokens.append(int(torch.argmax(logits)))
    out: list[list[torch.Tensor]] = [[] for _ in prompts]
    chunked.enable(runner.model)
    for _ in range(STEPS):
        step = chunked.decode_step(runner.model, kv, tokens)
        for row in range(len(prompts)):
            out[row].append(step[row].clone())
            tokens[row] = int(torch.argmax(step[row]))
    return out


def test_a_lone_sequence_is_bit_identical_to_the_naive_decode(runner: ModelRunner) -> None:
    ids = runner.encode(PROMPTS[0])
    for step, (naive, batched) in enumerate(zip(naive_logits(runner, ids), batched_logits(runner, [ids])[0],
                                                strict=True)):
        assert torch.equal(naive, batched), f"step {step}: max |diff| {float((naive - batched).abs().max()):.2e}"


def test_a_ragged_batch_differs_from_the_naive_decode_only_by_fp32_rounding(runner: ModelRunner) -> None:
    prompts = [runner.encode(p) for p in PROMPTS]
    assert len({len(p) for p in prompts}) == len(prompts), "the rows must have different lengths (padding, mask)"
    for ids, batched in zip(prompts, batched_logits(runner, prompts), strict=True):
        for naive, row in zip(naive_logits(runner, ids), batched, strict=True):
            assert torch.equal(torch.argmax(naive), torch.argmax(row))
            assert float((naive - row).abs().max()) < 1e-3  # measured ~2e-5 to 8e-5 here; a real bug is >> 1e-2
