"""The per-request record: raw ``perf_counter_ns`` timestamps, token counts, outcome.

Why raw timestamps and not latencies: every metric is derived afterwards by a pure
function (``loadgen.metrics``), so a new metric, or a corrected definition, can be
computed from old runs. Chunk times are stored as offsets from ``sent_ns`` (add them back
to get the raw value) to keep ``records.jsonl`` small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

ErrorClass = Literal["connect", "timeout", "http_4xx", "http_5xx", "stream_error", "protocol", "cancelled",
                     "worker_lost"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("connect", "timeout", "http_4xx", "http_5xx", "stream_error", "protocol",
                                         "cancelled", "worker_lost")


# The record's absolute perf_counter_ns stamps (everything else is a duration or an offset).
ABSOLUTE_STAMPS = ("intended_ns", "sent_ns", "first_byte_ns", "first_token_ns", "first_content_ns", "end_ns",
                   "connect_start_ns", "connect_ns")


class RequestRecord(BaseModel):
    """One request as the client saw it. Times are ``time.perf_counter_ns()`` of this process."""

    target: str
    kind: str
    stage: int
    stage_name: str
    index: int  # order of issue within the target's run
    warmup: bool = False
    prompt_id: str

    intended_ns: int  # when the schedule wanted it sent (closed loop: when a slot freed)
    sent_ns: int  # when the request's bytes were written to the connection (gRPC: when the call started)
    first_byte_ns: int | None = None  # response status line and headers received
    first_token_ns: int | None = None  # first chunk carrying output of any channel (content, reasoning, tools)
    first_content_ns: int | None = None  # first chunk carrying non-empty content text
    end_ns: int  # last byte of the response read, or the error
    chunk_offsets_ns: list[int] = []  # every data chunk: arrival − sent_ns (role-only and usage-only included)
    chunk_tokens: list[int] = []  # output tokens carried by each chunk (0 for role-only / usage-only)
    chunk_tokens_exact: bool = True  # False when the server gave no per-chunk counts and 1 per chunk was assumed

    status: int | None = None
    error: ErrorClass | None = None
    error_detail: str | None = None
    finish_reason: str | None = None

    prompt_tokens: int | None = None  # the server's usage (or, for Triton, the prompt builder's exact count)
    output_tokens: int | None = None  # the server's usage, else the sum of chunk_tokens
    expected_output_tokens: int | None = None
    client_prompt_tokens: int | None = None  # counted with the local tokenizer, when one was given
    client_output_tokens: int | None = None
    token_count_mismatch: bool | None = None  # client-side count differs from the server's
    output_text: str | None = None  # kept only when the profile compares outputs (``agreement``) or runs sessions
    cached_tokens: int | None = None  # prompt tokens the server served from its prefix cache (when it says)
    session_id: str | None = None  # multi-turn runs: the session this request belongs to
    turn: int | None = None  # multi-turn runs: 1 for a session's first turn
    # A new connection opened for this request (TCP connect, and the TLS handshake on https): when the
    # client started opening it and when it was ready; null when a pooled connection was reused.
    connect_start_ns: int | None = None
    connect_ns: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def shifted(self, offset_ns: int) -> RequestRecord:
        """This record on another clock: every absolute stamp moved by ``offset_ns`` (chunk times are
        offsets from ``sent_ns`` and move with it). Records from another process's or host's clock
        (``loadgen merge``, the Locust master) are put on one clock this way."""
        if not offset_ns:
            return self
        return self.model_copy(update={k: getattr(self, k) + offset_ns for k in ABSOLUTE_STAMPS
                                       if getattr(self, k) is not None})


@dataclass(slots=True)
class Attempt:
    """Mutable state of a request while in flight; clients fill it, the runner freezes it."""

    intended_ns: int
    sent_ns: int = 0
    connect_start_ns: int | None = None
    connect_ns: int | None = None
    first_byte_ns: int | None = None
    first_token_ns: int | None = None
    first_content_ns: int | None = None
    end_ns: int = 0
    chunk_ns: list[int] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    chunk_tokens_exact: bool = True
    status: int | None = None
    error: ErrorClass | None = None
    error_detail: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    text_parts: list[str] | None = None  # kept only when a client-side token count was asked for

    def chunk(self, now_ns: int, tokens: int, content: bool) -> None:
        """Hot path: one data event arrived at ``now_ns`` carrying ``tokens`` output tokens."""
        self.chunk_ns.append(now_ns)
        self.chunk_tokens.append(tokens)
        if tokens and self.first_token_ns is None:
            self.first_token_ns = now_ns
        if content and self.first_content_ns is None:
            self.first_content_ns = now_ns

    def fail(self, error: ErrorClass, detail: str) -> None:
        if self.error is None:
            self.error = error
            self.error_detail = detail[:500]
