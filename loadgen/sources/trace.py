"""``trace``: a production trace replayed on its own clock (Mooncake, Azure LLM inference, BurstGPT).

Why one source with a ``format`` field and not three sources: the formats differ only in how a
row is read (three small parsers below, ``PARSERS``); the window, speedup, context rule and the
prompts built for each row are one concept, kept once. Each kept row becomes one request whose
``at_s`` is its offset on the trace clock (from the window's start, divided by ``speedup``); the
``replay`` load shape sends it then.

Prompts have the row's input length exactly (counted by the tokenizer) and ask for its output
length. Mooncake rows carry ``hash_ids``, one id per ``block_tokens`` (512) tokens of the prompt:
equal ids get equal blocks of text, so the trace's prefix reuse reaches the engine's prefix cache
as it did in production; rows without ids (Azure, BurstGPT) get blocks of their own.

Rows longer than ``max_context_tokens`` (input + output) are clipped (input first, then output)
or skipped (``over_context``); rows with no input or output tokens are skipped. The counts go
to the manifest's ``prompt_stats`` (``rows``, ``used``, ``clipped``, ``skipped_over_context``,
``skipped_empty``, ``outside_window``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from loadgen.clients.base import RequestSpec
from loadgen.registry import SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.sources.rows import csv_rows, integer, jsonl_objects, real, row_error
from loadgen.tokens import PromptError, TokenCounter


@dataclass(frozen=True)
class TraceRow:
    """One request of a trace: where it is in the file, when it arrived, its token lengths."""

    line: int
    t_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


def mooncake(path: Path) -> Iterator[TraceRow]:
    """Mooncake JSONL: ``timestamp`` (ms), ``input_length``, ``output_length``, ``hash_ids``."""
    for line, obj in jsonl_objects(path):
        for name in ("timestamp", "input_length", "output_length"):
            if name not in obj:
                raise row_error(path, line, name, "missing")
        ids = obj.get("hash_ids", [])
        if not isinstance(ids, list):
            raise row_error(path, line, "hash_ids", f"expected a list of integers, found {ids!r}")
        yield TraceRow(line, real(path, line, "timestamp", obj["timestamp"]) / 1000.0,
                       integer(path, line, "input_length", obj["input_length"]),
                       integer(path, line, "output_length", obj["output_length"]),
                       tuple(integer(path, line, "hash_ids", i) for i in ids))


def _azure_time(path: Path, line: int, text: str) -> float:
    """Azure's ``2023-11-16 18:15:46.6805900`` (7 fraction digits) in seconds, or plain seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    head, dot, fraction = text.strip().partition(".")
    try:
        moment = datetime.fromisoformat(head + (dot + fraction[:6] if dot else ""))
    except ValueError as exc:
        raise row_error(path, line, "TIMESTAMP", f"not a time: {text!r}") from exc
    return moment.timestamp()


def azure(path: Path) -> Iterator[TraceRow]:
    """Azure LLM inference trace CSV: ``TIMESTAMP``, ``ContextTokens``, ``GeneratedTokens``."""
    for line, row in csv_rows(path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        yield TraceRow(line, _azure_time(path, line, row["TIMESTAMP"]),
                       integer(path, line, "ContextTokens", row["ContextTokens"]),
                       integer(path, line, "GeneratedTokens", row["GeneratedTokens"]))


def burstgpt(path: Path) -> Iterator[TraceRow]:
    """BurstGPT CSV: ``Timestamp`` (s), ``Request tokens``, ``Response tokens`` (``Model``,
    ``Total tokens`` and ``Log Type`` are read past)."""
    for line, row in csv_rows(path, ("Timestamp", "Request tokens", "Response tokens")):
        yield TraceRow(line, real(path, line, "Timestamp", row["Timestamp"]),
                       integer(path, line, "Request tokens", row["Request tokens"]),
                       integer(path, line, "Response tokens", row["Response tokens"]))


CHECKED_ROWS = 32  # whole prompts counted, to confirm that block counts add up (see BlockText)

PARSERS: dict[str, Callable[[Path], Iterator[TraceRow]]] = {"mooncake": mooncake, "azure": azure,
                                                            "burstgpt": burstgpt}


@SOURCES.register("trace")
class Trace(PromptSource):
    source: Literal["trace"] = "trace"
    format: Literal["mooncake", "azure", "burstgpt"]
    path: Path
    speedup: float = Field(default=1.0, gt=0, description="trace time / replay time: 2 sends twice as fast")
    start_s: float = Field(default=0.0, ge=0, description="window start, seconds after the trace's first request")
    duration_s: float | None = Field(default=None, gt=0, description="window length on the trace clock")
    max_requests: int | None = Field(default=None, ge=1, description="keep the window's first N requests")
    max_context_tokens: int | None = Field(default=None, ge=2, description="input + output limit (the model's)")
    over_context: Literal["clip", "skip"] = "clip"
    block_tokens: int = Field(default=512, ge=1, description="tokens per hash id (Mooncake: 512)")

    def build(self, context: PromptContext) -> list[RequestSpec]:
        rows = sorted(PARSERS[self.format](self.path), key=lambda r: r.t_s)
        if not rows:
            raise PromptError(f"{self.path}: the trace has no rows")
        origin = rows[0].t_s + self.start_s  # the window's start on the trace clock
        kept = self.window(rows, origin, context.stats)
        if not kept:
            raise PromptError(f"{self.path}: no request left in the window (start_s={self.start_s:g}, "
                              f"duration_s={self.duration_s}) after the context rule")
        counter, words = context.exact_counter()
        blocks = BlockText(context.seed, self.block_tokens, words, counter)
        return [self.spec(row, (row.t_s - origin) / self.speedup, blocks, counter if i < CHECKED_ROWS else None)
                for i, row in enumerate(kept)]

    def window(self, rows: Sequence[TraceRow], origin: float, stats: dict[str, int]) -> list[TraceRow]:
        """The rows kept after the window, ``max_requests`` and the context rule; counts into ``stats``."""
        end = origin + self.duration_s if self.duration_s is not None else float("inf")
        counts = dict.fromkeys(("used", "clipped", "skipped_over_context", "skipped_empty", "outside_window"), 0)
        kept: list[TraceRow] = []
        for row in rows:
            if not origin <= row.t_s < end or (self.max_requests is not None and len(kept) >= self.max_requests):
                counts["outside_window"] += 1
                continue
            fitted = self.fit(row, counts)
            if fitted is not None:
                kept.append(fitted)
        stats.update(rows=len(rows), **{**counts, "used": len(kept)})
        return kept

    def fit(self, row: TraceRow, counts: dict[str, int]) -> TraceRow | None:
        """The row within the context limit (clipped), or None (skipped)."""
        if row.input_tokens < 1 or row.output_tokens < 1:
            counts["skipped_empty"] += 1
            return None
        limit = self.max_context_tokens
        if limit is None or row.input_tokens + row.output_tokens <= limit:
            return row
        if self.over_context == "skip":
            counts["skipped_over_context"] += 1
            return None
        counts["clipped"] += 1
        new_input = max(1, min(row.input_tokens, limit - row.output_tokens))
        return TraceRow(row.line, row.t_s, new_input, limit - new_input, row.hash_ids)

    def spec(self, row: TraceRow, at_s: float, blocks: BlockText, counter: TokenCounter | None) -> RequestSpec:
        text = blocks.prompt(row)
        count = counter(text) if counter is not None else row.input_tokens
        if count != row.input_tokens:
            raise PromptError(f"{self.path}:{row.line}: built a prompt of {count} tokens for "
                              f"{row.input_tokens} (the tokenizer merged words; try another tokenizer)")
        return RequestSpec(prompt_id=f"trace-{row.line}", prompt=text, max_tokens=row.output_tokens,
                           prompt_tokens=row.input_tokens, at_s=at_s)


class BlockText:
    """The text of each hash id: ``block_tokens`` single-token words drawn from the seed and the id,
    so equal ids give equal blocks; a row without ids gets ids no other row has. Each block is
    counted once when made; words that are one space-prefixed token each add up across blocks, which
    the first ``CHECKED_ROWS`` whole prompts confirm (counting every prompt of a production trace,
    millions of tokens, would take minutes)."""

    def __init__(self, seed: int, block_tokens: int, words: Sequence[str], counter: TokenCounter) -> None:
        self.seed = seed
        self.size = block_tokens
        self.words = words
        self.counter = counter
        self._blocks: dict[object, list[str]] = {}

    def block(self, key: object) -> list[str]:
        if key not in self._blocks:
            rng = random.Random(f"{self.seed}:{key}")
            chosen = [rng.choice(self.words) for _ in range(self.size)]
            if self.counter(" " + " ".join(chosen)) != self.size:
                raise PromptError(f"a block of {self.size} words does not count {self.size} tokens "
                                  "(the tokenizer merged words; try another tokenizer)")
            self._blocks[key] = chosen
        return self._blocks[key]

    def prompt(self, row: TraceRow) -> str:
        needed = -(-row.input_tokens // self.size)
        keys: list[object] = list(row.hash_ids[:needed])
        keys += [f"row{row.line}-{k}" for k in range(len(keys), needed)]
        chosen = [w for key in keys for w in self.block(key)][: row.input_tokens]
        return " " + " ".join(chosen)
