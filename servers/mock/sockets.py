"""Raw non-blocking sockets for the mock: kernel receive timestamps and cheap writes.

Why not asyncio transports: the mock's ground truth starts when a request *arrived*, and
on a busy loop that is earlier than when Python gets to read it. Reading with ``recvmsg``
and ``SO_TIMESTAMPNS`` gives the kernel's arrival time of the data, so the mock's own
latencies (``mock_ttft_seconds``) include the time a request waited for the mock's loop,
exactly as a client sees it. Writes go straight to ``send``; what the socket cannot take
is buffered and flushed when it becomes writable.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

SO_TIMESTAMPNS = 35  # Linux; not named by Python's socket module
RECV_BYTES = 256 * 1024


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """Kernel receive time of the newest segment read, as ``time.perf_counter()`` seconds."""
    now = time.perf_counter()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack_from("qq", data)
            stamped = now - (time.time() - (seconds + nanos / 1e9))
            return min(stamped, now)
    return now


class Handler(Protocol):
    def connection_made(self, transport: SocketTransport) -> None: ...
    def data_received(self, data: bytes, arrived: float) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...


class SocketTransport:
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handler: Handler) -> None:
        self.loop = loop
        self.sock = sock
        self.handler = handler
        self.closed = False
        self._pending = b""
        self._close_when_flushed = False
        loop.add_reader(sock.fileno(), self._readable)
        handler.connection_made(self)

    def _readable(self) -> None:
        while not self.closed:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(RECV_BYTES, 64)
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
        """Bytes read, with their ancillary data; False when the connection closed. TLS
        (``servers.mock.tls``) decrypts them first."""
        self.handler.data_received(data, arrival(ancillary))
        return True

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._pending:
            self._pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):
            self._pending = data[sent:]
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        self._pending = self._pending[sent:]
        if not self._pending:
            self.loop.remove_writer(self.sock.fileno())
            if self._close_when_flushed:
                self._shutdown()

    def close(self) -> None:
        """Close after what was written has been sent."""
        if self._pending:
            self._close_when_flushed = True
        else:
            self._shutdown()

    def abort(self) -> None:
        """Close at once with a reset: the peer sees the connection drop."""
        if not self.closed:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._shutdown()

    def _shutdown(self) -> None:
        self._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        """Close the socket (once) and tell the handler."""
        if self.closed:
            return
        self.closed = True
        fd = self.sock.fileno()
        self.loop.remove_reader(fd)
        if self._pending:
            self.loop.remove_writer(fd)
        self.sock.close()
        self.handler.connection_lost(exc)


def listen(loop: asyncio.AbstractEventLoop, host: str, port: int, factory: Callable[[], Handler],
           transport: Callable[[asyncio.AbstractEventLoop, socket.socket, Handler], SocketTransport] = SocketTransport,
           ) -> socket.socket:
    """Accept connections on ``host:port``; each gets a transport (``transport``: e.g. TLS, see
    ``servers.mock.tls``) and a new handler."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(4096)
    server.setblocking(False)

    def accept() -> None:
        while True:
            try:
                sock, _ = server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            transport(loop, sock, factory())

    loop.add_reader(server.fileno(), accept)
    return server
