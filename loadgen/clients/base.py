"""What every client implements, and the HTTP plumbing the HTTP clients share.

A client knows one wire API: how to turn a prompt into a request, and how to read the
response into an ``Attempt`` (timestamps, chunks, tokens, outcome). Everything else —
when to send, how many at once, what to do with the result — belongs to the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from time import perf_counter_ns
from typing import Any, ClassVar, Protocol

import orjson

from loadgen.clients.endpoint import HTTP_SCHEMES, parse_url
from loadgen.clients.http import ConnectionPool, HTTPFailure, exchange
from loadgen.clients.sse import SSEParser, SSEProtocolError
from loadgen.clients.tls import TLSConnection, tls_context
from loadgen.headers import scrub, secrets_of
from loadgen.record import Attempt

# Tokens of a unique per-request salt (``prompts.unique``): 4 words from a vocabulary of at
# least 64 single-token words number 64**4 ≈ 16.7 M requests before a salt can repeat.
SALT_TOKENS = 4


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to ask: a prompt (text, and chat messages for chat APIs) and the output length.

    The optional fields carry what only the prompt source knows and the runner needs to
    schedule it (so no source is special-cased in the runner): ``at_s``, the request's
    offset on a trace's own clock (the ``replay`` load shape sends it then); ``session_id``,
    ``turn`` and ``think_s``, a turn of a multi-turn session (sent ``think_s`` after the
    previous turn's response ended, with the whole history); ``salt_words``, single-token
    words from which the runner draws a unique per-request prefix of ``SALT_TOKENS`` tokens
    (``prompts.unique``), so that no request can hit a prefix cache warmed by another.
    """

    prompt_id: str
    prompt: str
    max_tokens: int
    prompt_tokens: int | None = None  # exact count from the prompt builder, when known
    messages: tuple[dict[str, str], ...] | None = None
    at_s: float | None = None
    session_id: str | None = None
    turn: int | None = None  # 1 for a session's first turn
    think_s: float = 0.0
    salt_words: tuple[str, ...] | None = None

    def salted(self, number: int) -> RequestSpec:
        """This request with ``number`` written as ``SALT_TOKENS`` words (base ``len(salt_words)``)
        in front of the prompt, which the source built ``SALT_TOKENS`` tokens short: each word is one
        space-prefixed token, so the length stays exact and distinct numbers give distinct prompts.
        The prompt id gets the salt too: records with equal ids saw equal prompts (``agreement``)."""
        words = self.salt_words
        if not words:
            return self
        digits = []
        for _ in range(SALT_TOKENS):
            number, digit = divmod(number, len(words))
            digits.append(words[digit])
        return replace(self, prompt=" " + " ".join(digits) + self.prompt, salt_words=None,
                       prompt_id=f"{self.prompt_id}~{'-'.join(digits)}")


@dataclass(frozen=True)
class ClientOptions:
    """Request knobs shared by every API (from the profile's ``request`` section)."""

    model: str
    timeout_s: float = 600.0
    stall_timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    temperature: float = 0.0
    ignore_eos: bool = True
    extra_body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()  # extra headers (with the API key, when one is given)
    ca_cert: str | None = None  # TLS: the CA file that signed the server's certificate
    insecure: bool = False  # TLS: do not verify the server's certificate

    def secrets(self) -> set[str]:
        """Header values that must never be written (error details are scrubbed of them)."""
        return secrets_of(self.headers)


def with_extra(body: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """The request body with ``request.extra_body`` applied: keys added or replaced, and a key
    whose value is null removed (for servers that reject a field the client sends by default)."""
    if extra:
        for key, value in extra.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
    return body


class StreamError(Exception):
    """The server reported an error inside a stream that had started with HTTP 200."""


class ProtocolError(Exception):
    """The server's bytes do not follow the API (malformed event, missing fields, no end marker)."""


class Client(Protocol):
    """One wire API. A client class registers under its kind (``@CLIENTS.register("openai-chat")``)
    and says what its API offers beyond streaming (``has_tokenize``: a ``/tokenize`` endpoint
    that counts tokens the way the server does)."""

    kind: ClassVar[str]
    has_tokenize: ClassVar[bool]
    url_schemes: ClassVar[dict[str, int]]  # the URL schemes it speaks, each with its default port

    def __init__(self, base_url: str, options: ClientOptions) -> None: ...
    async def start(self) -> None: ...
    async def preconnect(self, connections: int) -> None:
        """Open up to ``connections`` connections now, so that requests do not wait for them."""
        ...
    async def close(self) -> None: ...
    async def send(self, spec: RequestSpec, attempt: Attempt) -> None:
        """Send one request and read its whole response into ``attempt``; never raises,
        except ``asyncio.CancelledError`` after marking the attempt cancelled."""
        ...


class HTTPStreamClient:
    """Shared HTTP machinery: one keep-alive pool, one SSE reader, one error taxonomy.

    Subclasses give ``url_path``, ``body()`` and ``on_event()``; this class times the request
    and classifies every failure: connect (no connection, or it closed before any response),
    timeout (no complete response within ``timeout_s``, or no byte for ``stall_timeout_s``),
    http_4xx / http_5xx, stream_error (an error event, or the connection dropped mid-stream),
    protocol (bytes that break HTTP or the API), cancelled.
    """

    kind: ClassVar[str] = ""
    has_tokenize: ClassVar[bool] = False
    url_schemes: ClassVar[dict[str, int]] = HTTP_SCHEMES
    requires_done: ClassVar[bool] = False  # OpenAI streams end with [DONE]; Triton's do not

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options
        # Checked here, before a run creates anything: the URL, and the TLS settings (a CA file that loads).
        endpoint = parse_url(self.base_url, self.url_schemes)
        self._tls = tls_context(options.ca_cert, options.insecure) if endpoint.tls else None
        self._pool: ConnectionPool | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._secrets = sorted(options.secrets(), key=len, reverse=True)  # scrubbed from error details

    @property
    def url_path(self) -> str:
        raise NotImplementedError

    def body(self, spec: RequestSpec) -> dict[str, Any]:
        raise NotImplementedError

    def on_event(self, payload: bytes, now_ns: int, attempt: Attempt) -> bool:
        """Interpret one SSE payload; return True when it ends the stream."""
        raise NotImplementedError

    def finish(self, attempt: Attempt, saw_end: bool) -> None:
        """After the last byte: fill totals the API gives only at the end."""
        if self.requires_done and not saw_end:
            raise ProtocolError("the stream ended without data: [DONE]")
        if attempt.output_tokens is None:
            attempt.output_tokens = sum(attempt.chunk_tokens)

    async def start(self) -> None:
        """Connections open on demand and stay open: the runner bounds how many are in use."""
        self._pool = ConnectionPool(self.base_url, headers=self.options.headers, tls=self._tls,
                                    connect_timeout_s=min(self.options.connect_timeout_s, self.options.timeout_s),
                                    connection_class=TLSConnection if self._tls else None)
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_stalls())

    async def _watch_stalls(self) -> None:
        stall_ns = int(self.options.stall_timeout_s * 1e9)
        while True:
            await asyncio.sleep(min(0.5, self.options.stall_timeout_s / 4))
            assert self._pool is not None
            for conn in self._pool.stalled(perf_counter_ns() - stall_ns):
                conn.abort(TimeoutError(f"stalled: no byte for {self.options.stall_timeout_s:g}s"))

    async def preconnect(self, connections: int) -> None:
        assert self._pool is not None, "start() the client first"
        await self._pool.preconnect(connections)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def request_body(self, spec: RequestSpec) -> bytes:
        """The request's JSON body, as sent (also by the Locust front end, ``loadgen.locust``)."""
        return orjson.dumps(self.body(spec))

    def responder(self, attempt: Attempt) -> _SSEResponse:
        """The ``ResponseHandler`` that reads one response into ``attempt``, whatever carries the bytes
        (this client's sockets, or the Locust front end's gevent ones)."""
        return _SSEResponse(self, attempt)

    def conclude(self, attempt: Attempt, reader: _SSEResponse) -> None:
        """After the response's last byte: its end time, then the HTTP error or the API's totals.
        Raises what ``fail_with`` classifies (an unterminated event, no ``[DONE]``)."""
        attempt.end_ns = reader.last_ns or attempt.first_byte_ns or perf_counter_ns()
        if attempt.status is not None and attempt.status >= 400:
            text = scrub(reader.error_body.decode(errors="replace"), self._secrets)  # a server may echo a key
            attempt.fail("http_5xx" if attempt.status >= 500 else "http_4xx", f"HTTP {attempt.status}: {text}")
            return
        reader.parser.close()
        self.finish(attempt, reader.saw_end)

    async def send(self, spec: RequestSpec, attempt: Attempt) -> None:
        assert self._pool is not None, "start() the client first"
        request = self._pool.request_bytes(self.url_path, self.request_body(spec))
        reader = self.responder(attempt)
        try:
            attempt.sent_ns = perf_counter_ns()  # replaced by the moment of the write, once written
            await exchange(self._pool, request, reader, self.options.timeout_s, attempt)
            self.conclude(attempt, reader)
        except asyncio.CancelledError:
            attempt.fail("cancelled", "the run stopped before the response ended")
            raise
        except FAILURES as exc:
            fail_with(attempt, exc)
        finally:
            if not attempt.end_ns or attempt.error is not None:
                attempt.end_ns = perf_counter_ns()


# What a request can fail with below the runner; ``fail_with`` gives each its error class.
FAILURES = (StreamError, ProtocolError, SSEProtocolError, TimeoutError, HTTPFailure)


def fail_with(attempt: Attempt, exc: BaseException) -> None:
    """Mark ``attempt`` failed with the error class of ``exc`` (docs/metrics.md): stream_error (an error
    event, or a connection dropped after the response began), protocol, timeout, connect (no connection,
    or one dropped before any response byte), or the ``HTTPFailure``'s own kind."""
    if isinstance(exc, StreamError):
        attempt.fail("stream_error", str(exc))
    elif isinstance(exc, ProtocolError | SSEProtocolError):
        attempt.fail("protocol", str(exc))
    elif isinstance(exc, TimeoutError):
        attempt.fail("timeout", str(exc) or "timed out")
    elif isinstance(exc, HTTPFailure) and exc.kind == "dropped":
        attempt.fail("stream_error" if attempt.first_byte_ns is not None else "connect", str(exc))
    elif isinstance(exc, HTTPFailure):
        attempt.fail(exc.kind, str(exc))  # type: ignore[arg-type]
    else:
        raise TypeError(f"not a request failure: {exc!r}") from exc


class _SSEResponse:
    """The ResponseHandler of one streaming request: timestamps, SSE events, error bodies."""

    __slots__ = ("attempt", "client", "error_body", "last_ns", "parser", "saw_end")

    def __init__(self, client: HTTPStreamClient, attempt: Attempt) -> None:
        self.client = client
        self.attempt = attempt
        self.parser = SSEParser()
        self.saw_end = False
        self.error_body = b""
        self.last_ns = 0  # arrival of the newest body bytes: the response's end once it is complete

    def on_headers(self, status: int, headers: dict[str, str], now_ns: int) -> None:
        self.attempt.first_byte_ns = now_ns
        self.attempt.status = status

    def on_body(self, data: bytes, now_ns: int) -> None:
        self.last_ns = now_ns
        if self.attempt.status is not None and self.attempt.status >= 400:
            if len(self.error_body) < 2000:
                self.error_body += data[: 2000 - len(self.error_body)]
            return
        on_event = self.client.on_event
        for event in self.parser.feed(data):
            if on_event(event, now_ns, self.attempt):
                self.saw_end = True


def loads_event(payload: bytes) -> dict[str, Any]:
    """Parse one event's JSON (orjson: this runs once per streamed chunk)."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON event: {payload[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"event is not a JSON object: {payload[:80]!r}")
    return obj
