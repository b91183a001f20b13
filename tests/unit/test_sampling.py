"""Sampling: greedy, temperature, nucleus filtering, seeds, suppressed tokens."""

from __future__ import annotations

import torch

from servers.hf.runner import sample_token
from servers.hf.sequence import SamplingParams

LOGITS = torch.tensor([1.0, 3.0, 2.0, -1.0])


def test_greedy_is_argmax() -> None:
    assert sample_token(LOGITS, SamplingParams(max_tokens=1, temperature=0.0), None) == 1


def test_suppressed_token_is_never_chosen() -> None:
    params = SamplingParams(max_tokens=1, temperature=0.0)
    assert sample_token(LOGITS, params, None, frozenset({1})) == 2


def test_top_p_keeps_only_the_nucleus() -> None:
    # softmax([1,3,2,-1]) ≈ [0.086, 0.63, 0.23, 0.011]: top_p=0.5 keeps only token 1,
    # top_p=0.8 keeps tokens 1 and 2.
    gen = torch.Generator().manual_seed(0)
    seen = {sample_token(LOGITS, SamplingParams(max_tokens=1, top_p=0.5), gen) for _ in range(200)}
    assert seen == {1}
    seen = {sample_token(LOGITS, SamplingParams(max_tokens=1, top_p=0.8), gen) for _ in range(400)}
    assert seen == {1, 2}


def test_seed_makes_sampling_reproducible() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.5)
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(1))

    def draw(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return [sample_token(logits, params, gen) for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_tiny_temperature_is_greedy_not_nan() -> None:
    params = SamplingParams(max_tokens=1, temperature=1e-300)
    assert sample_token(LOGITS, params, None) == 1


def test_top_p_below_float32_resolution_keeps_the_top_token() -> None:
    # Found by the schemathesis run: 5e-324 rounds to 0.0 in float32 and dropped every token.
    gen = torch.Generator().manual_seed(0)
    assert sample_token(LOGITS, SamplingParams(max_tokens=1, top_p=5e-324), gen) == 1


def test_batched_greedy_equals_sample_token_row_by_row() -> None:
    from servers.hf.runner import greedy_tokens

    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(3))
    logits[4, 7] = logits[4, 9] = logits[4].max() + 1.0  # a tie: the first maximum wins, as argmax's
    greedy, sampled = SamplingParams(max_tokens=1, temperature=0.0), SamplingParams(max_tokens=1, temperature=0.8)
    params = [greedy, greedy, sampled, greedy, greedy, sampled]
    suppressed = [frozenset(), frozenset({int(logits[1].argmax())}), frozenset(), frozenset({1, 2, 3}),
                  frozenset(), frozenset({5})]
    before = logits.clone()
    chosen = greedy_tokens(logits, params, suppressed)
    assert torch.equal(logits, before)  # suppression never touches the batch's logits
    assert chosen[2] is None and chosen[5] is None  # sampling rows are left to sample_token
    for row in (0, 1, 3, 4):
        assert chosen[row] == sample_token(logits[row], params[row], None, suppressed[row])
    assert chosen[1] != int(logits[1].argmax()) and chosen[4] == 7
