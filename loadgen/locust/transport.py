"""HTTP/1.1 over gevent sockets: what carries the rig's requests inside Locust.

Why not the rig's own sockets (``loadgen.clients.http``): they are asyncio protocols, and Locust
runs on gevent. Why not ``FastHttpUser.client.post(stream=True)``: its response ``read(n)`` waits
until ``n`` body bytes have arrived, so several SSE events would share one arrival time. Here a
gevent socket is read as bytes come, each read is stamped with ``perf_counter_ns()`` the moment
``recv`` returns, and the bytes are parsed by geventhttpclient's llhttp parser (Locust's own
HTTP parser). Everything above the bytes is the rig's: the request line and headers
(``post_request``), and the client's ``ResponseHandler`` (SSE events, tokens, error classes).

The stamp is when the greenlet got the bytes, not the kernel's arrival time the asyncio client
records (``SO_TIMESTAMPNS``): a busy gevent hub shows up in TTFT and ITL. docs/locust.md gives the
measured difference.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from time import perf_counter_ns

import gevent
from geventhttpclient._parser import HTTPParseError
from geventhttpclient.response import HTTPResponse

from loadgen.clients.endpoint import Endpoint
from loadgen.clients.http import HTTPFailure, ResponseHandler, Stamps

READ_SIZE = 65536


class _Parser(HTTPResponse):
    """llhttp, collecting the body bytes each ``feed`` parsed (handed on outside the C callbacks,
    so that an exception the handler raises keeps its class)."""

    def __init__(self) -> None:
        super().__init__(method="POST")
        self.body: list[bytes] = []

    def _on_body(self, buf: bytearray) -> None:
        self.body.append(bytes(buf))


class _Unstamped:
    sent_ns = 0
    connect_start_ns: int | None = None
    connect_ns: int | None = None


class Connection:
    """One keep-alive connection of one Locust user (a user sends one request at a time)."""

    def __init__(self, endpoint: Endpoint, headers: str, tls: ssl.SSLContext | None, connect_timeout_s: float) -> None:
        self.endpoint = endpoint
        self.headers = headers  # extra header lines, each ending in CRLF
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def preconnect(self) -> None:
        """Open the connection now, before the first request needs it (as the asyncio runner opens a
        closed loop's connections before its stage); a failure is left to that request to record."""
        if self._sock is None:
            with contextlib.suppress(HTTPFailure):
                self._sock = self._open(_Unstamped())

    def _open(self, stamps: Stamps) -> socket.socket:
        stamps.connect_start_ns = perf_counter_ns()
        try:
            sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.connect_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.endpoint.host)
        except TimeoutError as exc:
            raise HTTPFailure("connect", f"no connection within {self.connect_timeout_s:g}s") from exc
        except OSError as exc:
            raise HTTPFailure("connect", f"{type(exc).__name__}: {exc}") from exc
        stamps.connect_ns = perf_counter_ns()
        return sock

    def exchange(self, request: bytes, handler: ResponseHandler, stamps: Stamps, timeout_s: float,
                 stall_timeout_s: float) -> None:
        """Send ``request`` and hand the response to ``handler`` as it arrives. Raises ``HTTPFailure``,
        ``TimeoutError`` (no complete response within ``timeout_s``, or no byte for ``stall_timeout_s``),
        or what the handler raised; the connection is then closed, never reused."""
        with gevent.Timeout(timeout_s, TimeoutError(f"no complete response within {timeout_s:g}s")):
            sock = self._sock or self._open(stamps)
            self._sock = None  # back only after a complete response
            try:
                keep = self._exchange(sock, request, handler, stamps, stall_timeout_s)
            except BaseException:
                sock.close()
                raise
        if keep:
            self._sock = sock
        else:
            sock.close()

    def _exchange(self, sock: socket.socket, request: bytes, handler: ResponseHandler, stamps: Stamps,
                  stall_timeout_s: float) -> bool:
        parser = _Parser()
        headers_seen = False
        sock.settimeout(stall_timeout_s)
        stamps.sent_ns = perf_counter_ns()
        try:
            sock.sendall(request)
            while not parser.message_complete:
                try:
                    data = sock.recv(READ_SIZE)
                except TimeoutError as exc:
                    raise TimeoutError(f"stalled: no byte for {stall_timeout_s:g}s") from exc
                now = perf_counter_ns()
                try:
                    parser.feed(data)  # b"": the peer closed; llhttp ends a close-delimited body
                except HTTPParseError as exc:
                    if not data:
                        raise HTTPFailure("dropped", "connection closed before the response ended") from exc
                    raise HTTPFailure("protocol", f"bad HTTP response: {exc}") from exc
                if parser.headers_complete and not headers_seen and parser.get_code() >= 200:
                    headers_seen = True
                    handler.on_headers(parser.get_code(), {k.lower(): v for k, v in parser.items()}, now)
                for chunk in parser.body:
                    handler.on_body(chunk, now)
                parser.body.clear()
                if not data and not parser.message_complete:
                    raise HTTPFailure("dropped", "connection closed before the response ended")
        except OSError as exc:  # reset, broken pipe (TimeoutError is one too: it passes through)
            if isinstance(exc, TimeoutError):
                raise
            raise HTTPFailure("dropped", f"{type(exc).__name__}: {exc}") from exc
        return not parser.should_close()
