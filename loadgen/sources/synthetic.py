"""``synthetic``: prompts of exactly ``input_tokens`` tokens, from a seeded RNG.

Prompts are sequences of space-prefixed words that the tokenizer keeps as single tokens:
every prompt differs from its first word (so no engine's prefix cache shortens prefill) and
the same seed gives the same prompts. Each prompt's count is checked and corrected to
exactly ``input_tokens`` (without special tokens). For chat APIs the prompt is the user
message; the chat template adds its own tokens, which the server's ``usage.prompt_tokens``
includes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from loadgen.clients.base import RequestSpec
from loadgen.registry import SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.tokens import COMMON_WORDS, Counter, PromptError


@SOURCES.register("synthetic")
class Synthetic(PromptSource):
    source: Literal["synthetic"] = "synthetic"
    input_tokens: int = Field(default=128, ge=1)

    def build(self, context: PromptContext) -> list[RequestSpec]:
        if context.tokenizer is not None:
            return self.prompts(context.seed, context.tokenizer.count, context.tokenizer.single_token_words())
        if context.server_counter is None:
            raise PromptError("exact prompt lengths need a tokenizer: give --tokenizer DIR (a folder with "
                              "tokenizer.json), or a target with /tokenize (vLLM, the baseline)")
        return self.prompts(context.seed, context.server_counter(), COMMON_WORDS)

    def prompts(self, seed: int, counter: Counter, words: Sequence[str]) -> list[RequestSpec]:
        if not words:
            raise PromptError("no single-token words to build prompts from")
        rng = random.Random(seed)
        return [RequestSpec(prompt_id=f"syn-{seed}-{i}", prompt=exact_prompt(self.input_tokens, rng, counter, words),
                            max_tokens=self.output_tokens, prompt_tokens=self.input_tokens)
                for i in range(self.count)]


def exact_prompt(tokens: int, rng: random.Random, counter: Counter, words: Sequence[str]) -> str:
    """Random words, trimmed or padded one word at a time until the text counts exactly ``tokens``
    (rarely needed: a word pair merged or split)."""
    chosen = [rng.choice(words) for _ in range(tokens)]
    text = " " + " ".join(chosen)
    n = counter(text)
    while n != tokens:
        if n > tokens:
            chosen.pop()
        else:
            chosen.append(rng.choice(words))
        text = " " + " ".join(chosen)
        n = counter(text)
        if not chosen:
            raise PromptError(f"cannot build a prompt of exactly {tokens} tokens")
    return text
