"""``conversations``: multi-turn sessions, from a ShareGPT-format file (every user turn) or synthetic.

Each conversation becomes one session: its user turns in order, each a ``RequestSpec`` with
``session_id``, ``turn`` (1 first) and ``think_s`` (the pause before it, after the previous
answer ended). The runner sends the turns one after another carrying the whole history with
the server's own answers (the file's answers are not sent: a later turn must see what this
engine said, as a user would). Every answer asks for ``output_tokens``.

ShareGPT: a JSON array (or JSON Lines) of ``{"id", "conversations": [{"from", "value"}, ...]}``;
``human``/``user`` turns are sent, ``gpt``/``assistant``/``chatgpt``/``bard``/``bing`` turns are
replaced by the server's answers, ``system`` turns are skipped. A malformed item stops the run
before it starts, naming the file, the line and the field. Synthetic: ``count`` conversations of
``turns`` user turns of exactly ``user_tokens`` tokens each (needs a tokenizer, as ``synthetic``).

Think time: ``think_s`` seconds on average, spaced by a registered arrival process (``think``:
``constant``, ``poisson`` for exponential pauses, ``gamma``), drawn from the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from loadgen.clients.base import RequestSpec
from loadgen.registry import ARRIVALS, SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.sources.rows import json_items, row_error
from loadgen.sources.synthetic import exact_prompt
from loadgen.tokens import PromptError

USER_ROLES = ("human", "user")
ANSWER_ROLES = ("gpt", "assistant", "chatgpt", "bard", "bing", "model")


@SOURCES.register("conversations")
class Conversations(PromptSource):
    source: Literal["conversations"] = "conversations"
    dataset: Path | None = Field(default=None, description="ShareGPT-format file; none: synthetic conversations")
    count: int = Field(default=64, ge=1, description="conversations (sessions), reused in order")
    turns: int = Field(default=3, ge=1, description="synthetic: user turns per conversation")
    max_turns: int | None = Field(default=None, ge=1, description="ShareGPT: keep at most this many user turns")
    user_tokens: int = Field(default=64, ge=1, description="synthetic: tokens of each user turn")
    think_s: float = Field(default=0.0, ge=0, description="mean pause between an answer and the next turn")
    think: str = Field(default="constant", description="think-time distribution: a registered arrival process")

    @field_validator("think")
    @classmethod
    def _known_process(cls, name: str) -> str:
        return ARRIVALS.check(name)

    def build(self, context: PromptContext) -> list[RequestSpec]:
        rng = random.Random(context.seed)
        if self.dataset is not None:
            dialogues = [(cid, turns[: self.max_turns]) for cid, turns in read_sharegpt(self.dataset)]
            rng.shuffle(dialogues)
            count = context.tokenizer.count if context.tokenizer else None
        else:
            counter, words = context.exact_counter()
            dialogues = [(f"syn{i}", [exact_prompt(self.user_tokens, rng, counter, words) for _ in range(self.turns)])
                         for i in range(self.count)]
            count = counter
        pauses = self._pauses(random.Random(f"{context.seed}:think"))
        specs = []
        for cid, texts in dialogues[: self.count]:
            for turn, text in enumerate(texts, 1):
                specs.append(RequestSpec(
                    prompt_id=f"conv-{cid}-{turn}", prompt=text, max_tokens=self.output_tokens,
                    prompt_tokens=count(text) if count and turn == 1 else None, session_id=f"conv-{cid}",
                    turn=turn, think_s=next(pauses) if turn > 1 else 0.0))
        return specs

    def _pauses(self, rng: random.Random) -> Iterator[float]:
        if self.think_s == 0:
            while True:
                yield 0.0
        yield from ARRIVALS.get(self.think).spacings(1.0 / self.think_s, 1.0, rng)


def read_sharegpt(path: Path) -> list[tuple[str, list[str]]]:
    """(conversation id, its user turns) of every conversation with at least one user turn."""
    found = []
    for line, item in json_items(path):
        if not isinstance(item, dict):
            raise row_error(path, line, "(item)", f"expected an object, found {type(item).__name__}")
        turns = item.get("conversations")
        if not isinstance(turns, list):
            raise row_error(path, line, "conversations", "missing, or not a list")
        users = [_user_text(path, line, i, turn) for i, turn in enumerate(turns)]
        texts = [t for t in users if t is not None]
        if texts:
            found.append((str(item.get("id", len(found))), texts))
    if not found:
        raise PromptError(f"{path}: no conversation with a user turn (ShareGPT format expected)")
    return found


def _user_text(path: Path, line: int, index: int, turn: Any) -> str | None:
    """The text of a user turn, None for other roles; a malformed turn names its field."""
    where = f"conversations[{index}]"
    if not isinstance(turn, dict):
        raise row_error(path, line, where, "expected an object with `from` and `value`")
    role, value = turn.get("from"), turn.get("value")
    if role not in (*USER_ROLES, *ANSWER_ROLES, "system"):
        raise row_error(path, line, f"{where}.from", f"unknown role {role!r} (human, gpt, system, ...)")
    if not isinstance(value, str):
        raise row_error(path, line, f"{where}.value", f"expected text, found {value!r}")
    return value if role in USER_ROLES and value.strip() else None
