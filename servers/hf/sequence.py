"""One request's generation state: output tokens, incremental text, stop rules, timestamps.

Why it is separate from the scheduler: every scheduler (naive now, continuous later) feeds
tokens into the same ``Sequence.append`` so stop strings, ``ignore_eos``, ``min_tokens``,
usage and the streamed text are decided in exactly one place.

Streaming contract: ``append`` emits exactly one ``TokenEvent`` per generated token. Its
``text`` is the output text released by that token, possibly ``""`` (an incomplete UTF-8
sequence, a special token, or text held back because it may begin a stop string). The
concatenation of all events' text is the final output text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Tokenizer(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    text: str
    finish_reason: str | None = None  # "stop" | "length" on the last token
    completion_tokens: int = 0  # output tokens so far, this one included


@dataclass(frozen=True)
class FinishEvent:
    """Ends a sequence that produced no final token: cancelled ("abort") or failed ("error")."""

    finish_reason: str
    message: str = ""


Event = TokenEvent | FinishEvent


class IncrementalDetokenizer:
    """Turns a growing list of token ids into text deltas without re-decoding everything.

    Decodes a short window (the last few already-released tokens plus the new ones) and
    releases only the part beyond what the window's prefix decoded to; a trailing U+FFFD
    means an incomplete multi-byte character and is held until the next token completes it.
    The window starts inside the prompt so tokenizers that drop a leading space at the
    start of a decode still produce the right first word.
    """

    def __init__(self, tokenizer: Tokenizer, prompt_ids: list[int], context: int = 5) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids[-context:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def _decode(self, start: int, end: int | None = None) -> str:
        return self._tokenizer.decode(self._ids[start:end], skip_special_tokens=True)

    def step(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        new_text = self._decode(self._prefix_offset)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return new_text[len(prefix_text):]
        return ""

    def flush(self) -> str:
        """Whatever is still held (an unfinished character at the very end)."""
        if self._read_offset == len(self._ids):
            return ""
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        new_text = self._decode(self._prefix_offset)
        self._prefix_offset = self._read_offset = len(self._ids)
        return new_text[len(prefix_text):]


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


@dataclass(eq=False)
class Sequence:
    """A request inside the server. Timestamps are ``time.perf_counter()`` seconds."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    tokenizer: Tokenizer
    eos_ids: frozenset[int]
    emit: Callable[[Event], None] = lambda event: None
    arrival: float = field(default_factory=time.perf_counter)
    scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    finished: float | None = None
    finish_reason: str | None = None
    output_ids: list[int] = field(default_factory=list)
    text: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set (before ``cancelled``) when the server ended it, not the client: the per-request deadline passed, or
    # the stream's client took no data for ``--stream-stall-timeout-s``.
    deadline_exceeded: bool = False
    stream_stalled: bool = False

    def __post_init__(self) -> None:
        self._detok = IncrementalDetokenizer(self.tokenizer, self.prompt_ids)
        self._released = 0
        self._max_stop = max((len(s) for s in self.params.stop), default=0)

    @property
    def is_finished(self) -> bool:
        return self.finish_reason is not None

    def suppressed_token_ids(self) -> frozenset[int]:
        """EOS may not be sampled before ``min_tokens`` — with ``ignore_eos`` too (vLLM's semantics:
        ``ignore_eos`` only stops EOS from ending the sequence; ``min_tokens`` bans it)."""
        if len(self.output_ids) >= self.params.min_tokens:
            return frozenset()
        return self.eos_ids

    def append(self, token_id: int, now: float | None = None) -> TokenEvent:
        """Take one sampled token; decide whether the sequence ends; emit its event."""
        now = time.perf_counter() if now is None else now
        if self.first_token is None:
            self.first_token = now
        self.last_token = now
        self.output_ids.append(token_id)
        before = len(self.text)
        self.text += self._detok.step(token_id)

        finish: str | None = None
        truncated = False
        if len(self.output_ids) >= self.params.min_tokens:
            if not self.params.ignore_eos and token_id in self.eos_ids:
                finish = "stop"
            elif self.params.stop:
                search_from = max(0, before - self._max_stop + 1)
                hits = [i for i in (self.text.find(s, search_from) for s in self.params.stop) if i >= 0]
                if hits:
                    self.text = self.text[: min(hits)]
                    finish, truncated = "stop", True
        if finish is None and len(self.output_ids) >= self.params.max_tokens:
            finish = "length"
        if finish is not None and not truncated:
            self.text += self._detok.flush()

        if finish is None:
            releasable = len(self.text) - _held_back(self.text, self.params.stop)
        else:
            releasable = len(self.text)
            self.finish_reason = finish
            self.finished = now
        delta = self.text[self._released:releasable]
        self._released = max(self._released, releasable)
        event = TokenEvent(token_id=token_id, text=delta, finish_reason=finish,
                           completion_tokens=len(self.output_ids))
        self.emit(event)
        return event

    def end(self, reason: str, message: str = "", now: float | None = None) -> None:
        """Finish without a final token (cancelled or failed); idempotent."""
        if self.finish_reason is not None:
            return
        self.finish_reason = reason
        self.finished = time.perf_counter() if now is None else now
        self.emit(FinishEvent(finish_reason=reason, message=message))
