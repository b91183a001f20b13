"""``synthetic``: prompts of exactly ``input_tokens`` tokens, from a seeded RNG.

Prompts are sequences of space-prefixed words that the tokenizer keeps as single tokens:
every prompt differs from its first word and the same seed gives the same prompts. Each
prompt's count is checked and corrected to exactly ``input_tokens`` (without special
tokens). For chat APIs the prompt is the user message; the chat template adds its own
tokens, which the server's ``usage.prompt_tokens`` includes.

``unique: true`` (the default): the ``count`` prompts are reused in order, so a long run
would send the same prompt again and a warm prefix cache would skip its prefill; with
``unique`` each request starts with a salt of ``SALT_TOKENS`` single-token words that no
other request of the run has (drawn by the runner as it sends; the rest of the prompt is
``SALT_TOKENS`` shorter, so the length stays exact). The salt numbers start at a random
point per run, so a rerun against a warm server does not meet its own earlier prompts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field, model_validator

from loadgen.clients.base import SALT_TOKENS, RequestSpec
from loadgen.registry import SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.tokens import PromptError, TokenCounter

# Salt words: this many verified single-token words at most (64**4 distinct salts at least).
SALT_VOCABULARY = 256
MIN_SALT_VOCABULARY = 64


@SOURCES.register("synthetic")
class Synthetic(PromptSource):
    source: Literal["synthetic"] = "synthetic"
    input_tokens: int = Field(default=128, ge=1)
    unique: bool = Field(default=True, description="a unique salt in front of every request (no prefix-cache hits)")

    @model_validator(mode="after")
    def _room_for_salt(self) -> Synthetic:
        if self.unique and self.input_tokens <= SALT_TOKENS:
            raise ValueError(f"unique prompts start with a {SALT_TOKENS}-token salt: input_tokens must be more "
                             f"than {SALT_TOKENS} (or set unique: false)")
        return self

    def build(self, context: PromptContext) -> list[RequestSpec]:
        counter, words = context.exact_counter()
        return self.prompts(context.seed, counter, words, context.built)

    def prompts(self, seed: int, counter: TokenCounter, words: Sequence[str],
                built: Callable[[int, int], None] | None = None) -> list[RequestSpec]:
        if not words:
            raise PromptError("no single-token words to build prompts from")
        rng = random.Random(seed)
        salt = salt_vocabulary(counter, words) if self.unique else None
        body = self.input_tokens - (SALT_TOKENS if self.unique else 0)
        specs = []
        for i in range(self.count):
            specs.append(RequestSpec(prompt_id=f"syn-{seed}-{i}", prompt=exact_prompt(body, rng, counter, words),
                                     max_tokens=self.output_tokens, prompt_tokens=self.input_tokens, salt_words=salt))
            if built is not None:
                built(i + 1, self.count)
        return specs


def salt_vocabulary(counter: TokenCounter, words: Sequence[str]) -> tuple[str, ...]:
    """Up to ``SALT_VOCABULARY`` words that count as exactly one token with a leading space."""
    found: list[str] = []
    for word in words:
        if counter(" " + word) == 1:
            found.append(word)
            if len(found) == SALT_VOCABULARY:
                break
    if len(found) < MIN_SALT_VOCABULARY:
        raise PromptError(f"only {len(found)} single-token words for unique salts (need {MIN_SALT_VOCABULARY}); "
                          "give a tokenizer, or set prompts.unique: false")
    return tuple(found)


def exact_prompt(tokens: int, rng: random.Random, counter: TokenCounter, words: Sequence[str]) -> str:
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
