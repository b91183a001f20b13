"""A minimal HTTP/1.1 client on ``asyncio.Protocol``: keep-alive pool, chunked bodies, callbacks.

Why not aiohttp or httpx: the client must not be the bottleneck it measures. A general
client resumes a coroutine for every read; with a thousand streams that is the cost that
saturates the one core the load generator has. Here the bytes are handled inside
``data_received`` — status line, headers, chunked framing, and the body handed to a
``ResponseHandler`` together with the time they arrived. That time is the kernel's receive
timestamp of the data (``SO_TIMESTAMPNS``), not the moment the event loop got round to
reading it, so a busy client does not inflate the latencies it measures. Only the end of
a response wakes a coroutine.

Scope, on purpose: one request per connection at a time (no pipelining), bodies framed by
Content-Length, chunked encoding, or connection close. ``https://`` runs the stdlib's TLS over
these same sockets (``loadgen.clients.tls``), so TLS keeps the kernel's receive timestamps.

Stamps for the record: ``connect_start_ns``/``connect_ns`` bracket opening a new connection
(TCP, and TLS when used; None on a reused one), and ``sent_ns`` is the moment the request's
bytes are written, so connection setup is never part of TTFT.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Iterable
from time import perf_counter_ns, time_ns
from typing import Protocol

from loadgen.clients.endpoint import HTTP_SCHEMES, parse_url


class ResponseHandler(Protocol):
    def on_headers(self, status: int, headers: dict[str, str], now_ns: int) -> None: ...
    def on_body(self, data: bytes, now_ns: int) -> None: ...


class Stamps(Protocol):
    """Where ``exchange`` writes when the connection was opened and the request written (an ``Attempt``)."""

    sent_ns: int
    connect_start_ns: int | None
    connect_ns: int | None


class HTTPFailure(Exception):
    """The exchange failed below HTTP semantics; ``kind`` is connect, dropped or protocol."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _chunk_size(line: bytes) -> int:
    """A chunk-size line with extensions (``1a;name=value``)."""
    try:
        return int(line.split(b";", 1)[0], 16)
    except ValueError as exc:
        raise HTTPFailure("protocol", f"bad chunk size line {line[:40]!r}") from exc


# Linux's SO_TIMESTAMPNS (Python's socket module does not name it): the kernel stamps each
# received segment with its arrival time, so a late event loop does not make chunks late.
SO_TIMESTAMPNS = 35
RECV_BYTES = 256 * 1024
ANCILLARY_BYTES = 64


def arrival_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """When the bytes just read arrived, as ``perf_counter_ns``: the kernel's receive time of
    the newest segment in the read (CLOCK_REALTIME, mapped onto the monotonic clock), or now.

    A read that drains several segments carries the newest one's time, so an event that
    waited in the socket behind later ones is stamped at most that backlog late."""
    now = perf_counter_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack_from("qq", data)
            stamped = now - (time_ns() - (seconds * 1_000_000_000 + nanos))
            return stamped if stamped <= now else now
    return now


_STATUS, _HEADERS, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _LENGTH, _UNTIL_CLOSE, _DONE = range(9)


class Connection:
    """One keep-alive connection running one exchange at a time, read with kernel timestamps."""

    def __init__(self, pool: ConnectionPool, sock: socket.socket) -> None:
        self.pool = pool
        self.sock = sock
        self.closed = False
        self.last_data_ns = 0
        self.sent_ns = 0  # when the current request's bytes were written
        self._loop = asyncio.get_running_loop()
        self._handler: ResponseHandler | None = None
        self._done: asyncio.Future[None] | None = None
        self._buf = b""
        self._state = _DONE
        self._remaining = 0
        self._keep_alive = True
        self._loop.add_reader(sock.fileno(), self._readable)

    # -- socket events ---------------------------------------------------------------------
    def _readable(self) -> None:
        while not self.closed:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(RECV_BYTES, ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(exc)
                return
            if not data:
                self._lost(None)
                return
            if not self._received(data, ancillary):
                return

    def _received(self, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> bool:
        """Bytes read from the socket, with their ancillary data; False when the connection ended.
        Plain HTTP hands them on; TLS (``loadgen.clients.tls``) decrypts them first."""
        self._on_data(data, arrival_ns(ancillary))
        return True

    def _lost(self, exc: BaseException | None) -> None:
        self._close()
        self.pool.forget(self)
        if self._done is None or self._done.done():
            return
        if self._state == _UNTIL_CLOSE:
            self._finish()
        else:
            phase = "before the response" if self._state in (_STATUS, _HEADERS) else "mid-stream"
            self._fail(HTTPFailure("dropped", f"connection closed {phase}: {exc or 'EOF'}"))

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _on_data(self, data: bytes, now: int) -> None:
        self.last_data_ns = now
        if self._done is None or self._done.done():
            return  # bytes after a response we gave up on; the connection will not be reused
        self._buf = self._buf + data if self._buf else data
        try:
            self._parse(now)
        except Exception as exc:  # an HTTP failure, or a handler's verdict (stream or protocol error)
            self._fail(exc)

    # -- one exchange ----------------------------------------------------------------------
    def start(self, request: bytes, handler: ResponseHandler) -> asyncio.Future[None]:
        self._handler = handler
        self._done = self._loop.create_future()
        self._buf = b""
        self._state = _STATUS
        self._keep_alive = True
        self.sent_ns = self.last_data_ns = perf_counter_ns()
        self._send(request)
        return self._done

    async def ready(self) -> None:
        """Plain TCP is ready once connected; TLS overrides this with its handshake."""

    def _send(self, request: bytes) -> None:
        try:
            sent = self.sock.send(request)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(request):  # a large body the socket buffer could not take at once
            self._loop.create_task(self._send_rest(request[sent:]))

    async def _send_rest(self, rest: bytes) -> None:
        try:
            await self._loop.sock_sendall(self.sock, rest)
        except OSError as exc:
            self._lost(exc)

    def abort(self, error: BaseException) -> None:
        """Give up on the exchange (timeout, cancellation): the connection is closed."""
        self._fail(error)

    def _fail(self, error: BaseException) -> None:
        self._keep_alive = False
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)
        self._close()
        self.pool.forget(self)

    def _finish(self) -> None:
        self._state = _DONE
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        if self._keep_alive and not self.closed:
            self.pool.release(self)
        else:
            self._close()
            self.pool.forget(self)

    def _parse(self, now: int) -> None:  # noqa: C901 (the per-chunk hot path: benchmarks/http_parser.py)
        handler = self._handler
        assert handler is not None
        while True:
            state = self._state
            buf = self._buf
            if state == _CHUNK_SIZE:
                if not self._whole_chunks(buf, handler, now):
                    return
            elif state in (_CHUNK_DATA, _LENGTH):
                if not buf:
                    return
                take = buf[: self._remaining]
                self._remaining -= len(take)
                self._buf = buf[len(take):]
                handler.on_body(take, now)
                if self._remaining == 0:
                    if state == _LENGTH:
                        self._finish()
                        return
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise HTTPFailure("protocol", "chunk not followed by CRLF")
                self._buf = buf[2:]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                self._buf = buf[end + 2:]
                if end == 0:  # the empty line that ends the trailer
                    self._finish()
                    return
            elif state == _UNTIL_CLOSE:
                if buf:
                    self._buf = b""
                    handler.on_body(buf, now)
                return
            elif state in (_STATUS, _HEADERS):
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 65536:
                        raise HTTPFailure("protocol", "response headers larger than 64 KiB")
                    return
                self._buf = buf[end + 4:]
                self._read_head(buf[:end], now)
            else:
                return

    def _whole_chunks(self, buf: bytes, handler: ResponseHandler, now: int) -> bool:
        """Fast path: hand over every whole chunk (size line, data, CRLF) in the buffer. False when
        the rest needs more bytes; True when the state moved on (a partial chunk, or the last chunk)."""
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                self._buf = buf
                return False
            try:
                size = int(buf[:end], 16)
            except ValueError:
                size = _chunk_size(buf[:end])
            start = end + 2
            if size == 0:
                self._buf = buf[start:]
                self._state = _TRAILER
                return True
            stop = start + size
            if len(buf) >= stop + 2 and buf[stop:stop + 2] == b"\r\n":
                handler.on_body(buf[start:stop], now)
                buf = buf[stop + 2:]
                continue
            self._buf = buf[start:]
            self._remaining = size
            self._state = _CHUNK_DATA
            return True

    def _read_head(self, head: bytes, now: int) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HTTPFailure("protocol", f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        try:
            status = int(parts[1])
        except ValueError as exc:
            raise HTTPFailure("protocol", f"bad status code {parts[1][:20]!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if 100 <= status < 200:  # an interim response: the real one follows
            self._state = _STATUS
            return
        self._keep_alive = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        assert self._handler is not None
        self._handler.on_headers(status, headers, now)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            self._remaining = int(headers["content-length"])
            self._state = _LENGTH
            if self._remaining == 0:
                self._finish()
        else:
            self._keep_alive = False
            self._state = _UNTIL_CLOSE


def post_request(authority: str, path: str, body: bytes, extra_headers: str = "",
                 accept: str = "text/event-stream") -> bytes:
    """The bytes of one JSON POST (also sent by the Locust front end's gevent sockets, ``loadgen.locust``);
    ``extra_headers``: complete header lines, each ending in CRLF."""
    return (f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n{extra_headers}"
            f"Content-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


class ConnectionPool:
    """Idle keep-alive connections to one host, opened on demand (or ahead: ``preconnect``), reused LIFO.

    ``tls``: an ``ssl.SSLContext`` and ``connection_class`` ``loadgen.clients.tls.TLSConnection`` for
    ``https://`` (required then); ``headers``: extra header lines on every request;
    ``connect_timeout_s``: how long opening one connection (TCP and TLS) may take."""

    def __init__(self, base_url: str, headers: Iterable[tuple[str, str]] = (), tls: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 60.0, connection_class: type[Connection] | None = None) -> None:
        endpoint = parse_url(base_url, HTTP_SCHEMES)
        if endpoint.tls and (tls is None or connection_class is None):
            raise ValueError(f"{base_url}: https:// needs a TLS context and loadgen.clients.tls.TLSConnection")
        self.connection_class = connection_class or Connection
        self.host = endpoint.host
        self.port = endpoint.port
        self.authority = endpoint.authority
        self.prefix = endpoint.prefix
        self.tls = tls if endpoint.tls else None
        self.connect_timeout_s = connect_timeout_s
        self._extra_headers = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self._idle: list[Connection] = []
        self.active: set[Connection] = set()

    async def acquire(self, stamps: Stamps | None = None) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                self.active.add(conn)
                return conn
        start = perf_counter_ns()
        conn = await self._open()
        if stamps is not None:
            stamps.connect_start_ns, stamps.connect_ns = start, perf_counter_ns()
        self.active.add(conn)
        return conn

    async def _open(self) -> Connection:
        """A new connection, TCP connected (and TLS handshaken) within ``connect_timeout_s``."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                sock = await self._connect()
                conn = self.connection_class(self, sock)
                try:
                    await conn.ready()
                except BaseException:
                    conn._close()
                    raise
        except TimeoutError as exc:
            raise HTTPFailure("connect", f"no connection within {self.connect_timeout_s:g}s") from exc
        return conn

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                await loop.sock_connect(sock, address)
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            raise HTTPFailure("connect", f"{type(exc).__name__}: {exc}") from exc
        return sock


    async def preconnect(self, connections: int) -> None:
        """Open connections until ``connections`` exist (idle or busy), all at once; one that fails is
        left out (the request that would have used it records the failure)."""
        missing = connections - len(self._idle) - len(self.active)
        if missing <= 0:
            return
        opened = await asyncio.gather(*(self._open() for _ in range(missing)), return_exceptions=True)
        for conn in opened:
            if isinstance(conn, Connection):
                self._idle.append(conn)
            elif not isinstance(conn, HTTPFailure | OSError):
                raise conn

    def release(self, conn: Connection) -> None:
        self.active.discard(conn)
        self._idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self.active.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def request_bytes(self, path: str, body: bytes, accept: str = "text/event-stream") -> bytes:
        return post_request(self.authority, f"{self.prefix}{path}", body, self._extra_headers, accept)

    def close(self) -> None:
        for conn in [*self._idle, *self.active]:
            conn._close()
        self._idle.clear()
        self.active.clear()

    def stalled(self, older_than_ns: int) -> list[Connection]:
        return [c for c in self.active if c.last_data_ns and c.last_data_ns < older_than_ns]


async def exchange(pool: ConnectionPool, request: bytes, handler: ResponseHandler, timeout_s: float,
                   stamps: Stamps | None = None) -> Connection:
    """Send ``request`` on a pooled connection and wait until its response has been handled;
    ``stamps`` gets the connection's opening (when a new one was needed) and the write's time.

    Raises ``HTTPFailure``, ``TimeoutError`` (no complete response within ``timeout_s``), or
    whatever the handler raised (the connection is then closed, never reused)."""
    conn = await pool.acquire(stamps)
    done = conn.start(request, handler)
    if stamps is not None:
        stamps.sent_ns = conn.sent_ns
    timer = asyncio.get_running_loop().call_later(
        timeout_s, conn.abort, TimeoutError(f"no complete response within {timeout_s:g}s"))
    try:
        await done
    except asyncio.CancelledError:
        conn.abort(asyncio.CancelledError())
        raise
    finally:
        timer.cancel()
    return conn
