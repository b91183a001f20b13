"""The request-body cap: a body larger than ``--max-request-bytes`` is answered 413 before it is read whole.

Why an ASGI middleware and not a check in the handler: FastAPI reads and parses the whole body before
any handler runs, so a 50 MB body was read, parsed and tokenized (45 s, 5 GB of RSS) before the context
check could refuse it. Here the declared ``Content-Length`` is refused at once, without reading a byte
of the body, and a body sent without one (chunked) is counted as it arrives and refused as soon as it
passes the cap — the server never holds more than the cap of one request's body.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servers.hf import errors


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Pure ASGI middleware: reads the body itself (up to ``max_bytes``) and replays it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_reject: Callable[[int], None] = lambda status: None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, f"Content-Length {declared}")
            return
        try:
            first = await self._read_body(receive)
        except BodyTooLarge:
            await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes arrived")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()  # after the body only http.disconnect comes

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> Message:
        """The whole body as one ``http.request`` message (or the ``http.disconnect`` that cut it short)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                raise BodyTooLarge
            parts.append(body)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        self.on_reject(413)
        error = errors.APIError(413, f"The request body is too large ({size}); this server accepts at most "
                                     f"{self.max_bytes} bytes (--max-request-bytes).", code="request_too_large")
        await error.response()(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
