"""One short generation before the port opens, so the first measured request does not pay
for lazy initialisation (allocator growth, kernel selection, CUDA context)."""

from __future__ import annotations

from servers.hf.runner import ModelRunner
from servers.hf.sequence import SamplingParams


def warm_up(runner: ModelRunner, tokens: int = 4) -> None:
    params = SamplingParams(max_tokens=tokens, temperature=0.0)
    logits, cache = runner.prefill(runner.encode("Hello, warm-up."))
    for _ in range(tokens):
        token = runner.sample(logits, params, None)
        logits = runner.decode(token, cache)
