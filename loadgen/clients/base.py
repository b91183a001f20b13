"""What every client implements, and the HTTP plumbing the HTTP clients share.

A client knows one wire API: how to turn a prompt into a request, and how to read the
response into an ``Attempt`` (timestamps, chunks, tokens, outcome). Everything else —
when to send, how many at once, what to do with the result — belongs to the runner.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, ClassVar, Protocol

import aiohttp

from loadgen.clients.sse import SSEParser, SSEProtocolError
from loadgen.record import Attempt


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to ask: a prompt (text, and chat messages for chat APIs) and the output length."""

    prompt_id: str
    prompt: str
    max_tokens: int
    prompt_tokens: int | None = None  # exact count from the prompt builder, when known
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class ClientOptions:
    """Request knobs shared by every API (from the profile's ``request`` section)."""

    model: str
    timeout_s: float = 600.0
    stall_timeout_s: float = 120.0
    temperature: float = 0.0
    ignore_eos: bool = True
    extra_body: dict[str, Any] | None = None
    keep_text: bool = False  # keep output text for a client-side token count


class StreamError(Exception):
    """The server reported an error inside a stream that had started with HTTP 200."""


class ProtocolError(Exception):
    """The server's bytes do not follow the API (malformed event, missing fields, no end marker)."""


class Client(Protocol):
    kind: ClassVar[str]

    async def start(self, max_connections: int) -> None: ...
    async def close(self) -> None: ...
    async def send(self, spec: RequestSpec, attempt: Attempt) -> None:
        """Send one request and read its whole response into ``attempt``; never raises,
        except ``asyncio.CancelledError`` after marking the attempt cancelled."""
        ...


class HTTPStreamClient:
    """Shared aiohttp machinery: one pooled session, one SSE reader, one error taxonomy.

    Subclasses give ``path``, ``body()`` and ``on_event()``; this class times the request and
    classifies every failure: connect, timeout (total or stalled), http_4xx / http_5xx,
    stream_error (an error event, or the connection dropped mid-stream), protocol (bytes
    that break the API), cancelled.
    """

    kind: ClassVar[str] = ""
    requires_done: ClassVar[bool] = False  # OpenAI streams end with [DONE]; Triton's do not

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def body(self, spec: RequestSpec) -> dict[str, Any]:
        raise NotImplementedError

    def on_event(self, payload: bytes, now_ns: int, attempt: Attempt) -> bool:
        """Interpret one SSE payload; return True when it ends the stream."""
        raise NotImplementedError

    def finish(self, attempt: Attempt, saw_end: bool) -> None:
        """After the last byte: fill totals the API gives only at the end."""
        if self.requires_done and not saw_end and attempt.error is None:
            raise ProtocolError("the stream ended without data: [DONE]")
        if attempt.output_tokens is None:
            attempt.output_tokens = sum(attempt.chunk_tokens)

    async def start(self, max_connections: int) -> None:
        """One pooled session for the whole run; ``max_connections`` 0 means no limit."""
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=None,
                                         keepalive_timeout=60, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s, sock_read=self.options.stall_timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                              skip_auto_headers=("User-Agent",),
                                              json_serialize=json.dumps)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, spec: RequestSpec, attempt: Attempt) -> None:
        assert self._session is not None, "start() the client first"
        payload = json.dumps(self.body(spec)).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        saw_end = False
        try:
            attempt.sent_ns = perf_counter_ns()
            async with self._session.post(self.url, data=payload, headers=headers) as response:
                attempt.first_byte_ns = perf_counter_ns()
                attempt.status = response.status
                if response.status >= 400:
                    text = (await response.content.read(2000)).decode(errors="replace")
                    attempt.fail("http_5xx" if response.status >= 500 else "http_4xx",
                                 f"HTTP {response.status}: {text}")
                    return
                parser = SSEParser()
                on_event = self.on_event
                async for data in response.content.iter_any():
                    now = perf_counter_ns()
                    for event in parser.feed(data):
                        if on_event(event, now, attempt):
                            saw_end = True
                parser.close()
                self.finish(attempt, saw_end)
        except asyncio.CancelledError:
            attempt.fail("cancelled", "the run stopped before the response ended")
            raise
        except StreamError as exc:
            attempt.fail("stream_error", str(exc))
        except (ProtocolError, SSEProtocolError) as exc:
            attempt.fail("protocol", str(exc))
        except aiohttp.ClientConnectorError as exc:
            attempt.fail("connect", f"{type(exc).__name__}: {exc}")
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            stalled = attempt.first_byte_ns is not None
            attempt.fail("timeout", f"{'stalled stream' if stalled else 'no response'}: {type(exc).__name__}")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError,
                ConnectionError) as exc:
            where = "mid-stream" if attempt.first_byte_ns is not None else "before the response"
            attempt.fail("stream_error" if attempt.first_byte_ns is not None else "connect",
                         f"connection dropped {where}: {type(exc).__name__}: {exc}")
        except aiohttp.ClientResponseError as exc:
            attempt.fail("protocol", f"{type(exc).__name__}: {exc}")
        finally:
            attempt.end_ns = perf_counter_ns()


def loads_event(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON event: {payload[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"event is not a JSON object: {payload[:80]!r}")
    return obj
