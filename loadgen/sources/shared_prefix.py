"""``shared-prefix``: the system-prompt pattern — ``groups`` prefixes shared by many requests.

Every prompt is its group's prefix of exactly ``prefix_tokens`` tokens followed by a suffix of
its own of exactly ``suffix_tokens`` tokens (counted by the tokenizer, as ``synthetic``), so an
engine with a prefix cache computes each prefix once and later requests of the group prefill
only their suffix. ``count`` prompts are dealt to the groups in turn (request i belongs to group
i mod groups), so concurrent requests mix the groups as traffic from several apps would.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from loadgen.clients.base import RequestSpec
from loadgen.registry import SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.sources.synthetic import exact_prompt
from loadgen.tokens import PromptError


@SOURCES.register("shared-prefix")
class SharedPrefix(PromptSource):
    source: Literal["shared-prefix"] = "shared-prefix"
    groups: int = Field(default=4, ge=1, description="distinct shared prefixes")
    prefix_tokens: int = Field(default=256, ge=1, description="tokens of each shared prefix")
    suffix_tokens: int = Field(default=32, ge=1, description="tokens of each request's own suffix")

    def build(self, context: PromptContext) -> list[RequestSpec]:
        counter, words = context.exact_counter()
        rng = random.Random(context.seed)
        prefixes = [exact_prompt(self.prefix_tokens, rng, counter, words) for _ in range(self.groups)]
        total = self.prefix_tokens + self.suffix_tokens
        specs = []
        for i in range(self.count):
            group = i % self.groups
            text = prefixes[group] + exact_prompt(self.suffix_tokens, rng, counter, words)
            if counter(text) != total:
                raise PromptError(f"a shared-prefix prompt counts {counter(text)} tokens, not {total} "
                                  "(the tokenizer merged words across the prefix's end)")
            specs.append(RequestSpec(prompt_id=f"sp-g{group}-{i}", prompt=text, max_tokens=self.output_tokens,
                                     prompt_tokens=total))
        return specs
