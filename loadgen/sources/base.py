"""What every prompt source is: a profile section that builds the run's request specs.

Why a context object: sources need different helpers (exact token counts, a seed, a server
that can tokenize), and the run decides which exist; a source takes what it needs from the
context and fails with a ``PromptError`` that says what to give when something is missing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from loadgen.basemodel import StrictModel
from loadgen.clients.base import RequestSpec
from loadgen.tokens import COMMON_WORDS, LocalTokenizer, PromptError, TokenCounter


class PromptProgress:
    """Notices while prompts are built: at most one every ``every_s`` seconds, the first after
    ``every_s`` (a build that takes less says nothing). Why: 100,000-token prompts took minutes
    to build, with no output, and looked like a hang."""

    def __init__(self, notify: Callable[[str], None], every_s: float = 2.0) -> None:
        self.notify = notify
        self.every_s = every_s
        self._next = time.monotonic() + every_s

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            self.notify(f"building prompts: {done}/{total}")


@dataclass(frozen=True)
class PromptContext:
    """What a source may use: the run's seed, the local tokenizer (when the profile names one),
    and a token counter over a target's ``/tokenize`` (when a target's API has one).

    ``stats``: counts a source reports about its input (a trace's rows clipped or skipped);
    they go into the manifest's ``prompt_stats``, so summary.json says what was left out."""

    seed: int
    tokenizer: LocalTokenizer | None
    server_counter: Callable[[], TokenCounter] | None = None
    stats: dict[str, int] = field(default_factory=dict)
    progress: PromptProgress | None = None  # told as prompts are built (a long build shows it is moving)

    def built(self, done: int, total: int) -> None:
        """A source reports ``done`` of ``total`` prompts built (cheap: the notice is throttled)."""
        if self.progress is not None:
            self.progress(done, total)

    def exact_counter(self) -> tuple[TokenCounter, Sequence[str]]:
        """A token counter and words that are one token each (with a leading space), for prompts of
        exact length: the local tokenizer's, else the server's ``/tokenize`` over common words."""
        if self.tokenizer is not None:
            words = self.tokenizer.single_token_words()
            if not words:
                raise PromptError("no single-token words to build prompts from")
            return self.tokenizer.count, words
        if self.server_counter is None:
            raise PromptError("exact prompt lengths need a tokenizer: give --tokenizer DIR (a folder with "
                              "tokenizer.json), or a target with /tokenize (vLLM, the baseline)")
        return self.server_counter(), COMMON_WORDS


class PromptSource(StrictModel):
    source: str
    output_tokens: int = Field(default=64, ge=1)
    count: int = Field(default=256, ge=1, description="distinct prompts, reused in order")
    tokenizer: Path | None = Field(default=None, description="model folder with tokenizer.json (exact counts)")

    def build(self, context: PromptContext) -> list[RequestSpec]:
        raise NotImplementedError


def dataset_hash(specs: Sequence[RequestSpec]) -> str:
    """A short fingerprint of the prompts and output lengths, kept in the manifest: two runs
    with the same hash sent the same requests."""
    digest = hashlib.sha256()
    for spec in specs:
        digest.update(spec.prompt.encode())
        digest.update(str(spec.max_tokens).encode())
    return digest.hexdigest()[:16]
