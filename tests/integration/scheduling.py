"""In-process scheduling shared by the continuous-scheduler tests: staggered requests on the real model, and a
driver that submits them to a scheduler at their arrival offsets and waits for every one to finish."""

from __future__ import annotations

import asyncio

from servers.hf.runner import ModelRunner
from servers.hf.sequence import SamplingParams, Sequence

# Mixed prompt lengths and output lengths; arrival offsets (s) stagger them so that sequences
# join a batch that is already decoding and leave it at different steps.
REQUESTS = [
    ("The capital of France is", 14, 0.0),
    ("Write a haiku about the sea:", 6, 0.0),
    ("1, 2, 3, 4,", 20, 0.15),
    ("Once upon a time, in a land far away, there lived a", 9, 0.0),
    ("def fibonacci(n):", 17, 0.3),
    ("Q: What is the boiling point of water?\nA:", 4, 0.05),
]


def make_seq(runner: ModelRunner, i: int, prompt: str, n: int, **params: object) -> Sequence:
    defaults: dict[str, object] = {"temperature": 0.0, "ignore_eos": True, "min_tokens": n}
    return Sequence(request_id=f"r{i}", prompt_ids=runner.encode(prompt),
                    params=SamplingParams(max_tokens=n, **{**defaults, **params}),  # type: ignore[arg-type]
                    tokenizer=runner.tokenizer, eos_ids=runner.eos_ids)


async def drive(scheduler: object, seqs: list[Sequence], delays: list[float]) -> None:
    await scheduler.start()  # type: ignore[attr-defined]
    for seq, delay in zip(seqs, delays, strict=True):
        await asyncio.sleep(delay)
        scheduler.submit(seq)  # type: ignore[attr-defined]
    while not all(s.is_finished for s in seqs):
        await asyncio.sleep(0.01)
    await scheduler.stop()  # type: ignore[attr-defined]
