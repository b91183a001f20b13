"""Server-sent events with client-disconnect detection, and waiting with it.

Why our own response class: a request whose client went away must be cancelled at once,
even while it is still queued and no byte is being written. Starlette's streaming
response only notices a disconnect on some ASGI versions, or on the next write; this
class listens for ``http.disconnect`` for the whole life of the stream and calls back.

A client that stays connected but stops reading is the other way to hold a slot: once the
socket's buffers are full, a write blocks. A write blocked for ``stall_timeout_s`` counts as
a disconnect (the request is cancelled, its slot freed, the connection closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")
log = logging.getLogger(__name__)


class StreamStalled(Exception):
    """The client took no data for ``stall_timeout_s``: it stopped reading."""


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class SSEResponse(Response):
    """Streams ``data: ...`` events; ``on_disconnect`` runs if the client leaves early, ``on_stall`` (default:
    ``on_disconnect``) if it stops reading for ``stall_timeout_s``."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], on_disconnect: Callable[[], None],
                 stall_timeout_s: float | None = None, on_stall: Callable[[], None] | None = None) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        self._events = events
        self._on_disconnect = on_disconnect
        self._on_stall = on_stall or on_disconnect
        self._stall_timeout_s = stall_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        })
        writer = asyncio.ensure_future(self._write(send))
        listener = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            done, _ = await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done and writer.exception() is None:
                return
            stalled = writer in done and isinstance(writer.exception(), StreamStalled)
            (self._on_stall if stalled else self._on_disconnect)()
        finally:
            for task in (writer, listener):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, StreamStalled):
                    await task
            await _aclose(self._events)

    async def _write(self, send: Send) -> None:
        async for chunk in self._events:
            await self._send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, message: dict[str, Any]) -> None:
        """``send`` returns at once while the transport takes data; it blocks only while the client's and
        the server's socket buffers are full, i.e. the client has stopped reading."""
        try:
            async with asyncio.timeout(self._stall_timeout_s):  # a timer handle, no task per chunk
                await send(message)
        except TimeoutError:
            log.warning("stream cancelled: the client took no data for %.1f s", self._stall_timeout_s)
            raise StreamStalled from None


async def _aclose(events: Any) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


class ClientDisconnected(Exception):
    pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` unless the client disconnects first (then raise ClientDisconnected).

    The body has been read by then, so the next ``receive()`` only returns on disconnect.
    """
    task = asyncio.ensure_future(work)
    listener = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, listener}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        raise ClientDisconnected()
    finally:
        for t in (task, listener):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
