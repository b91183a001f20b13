"""TLS for ``https://`` targets over the rig's own sockets, keeping kernel receive timestamps.

Why not ``ssl.wrap_socket`` or asyncio's TLS transport: both read the socket themselves, and the
kernel's receive time of each segment (``SO_TIMESTAMPNS``, see ``loadgen.clients.http``) is lost
with the ancillary data. Here the connection still reads raw TCP with ``recvmsg``, feeds the bytes
to the stdlib's TLS engine through an ``ssl.MemoryBIO`` and hands the plaintext to the same HTTP
parser, stamped with the arrival time of the ciphertext that carried it. Decryption costs CPU
(the figure is in docs/selftest.md); the timestamps stay the kernel's.

Writes go through the engine too: what it produces is sent at once, and what the socket cannot
take is kept in order and flushed when the socket is writable.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from loadgen.clients.http import RECV_BYTES, Connection, ConnectionPool, HTTPFailure, arrival_ns


def tls_context(ca_cert: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The client's TLS settings: the system's CAs (or ``ca_cert``), hostname checked, HTTP/1.1 by ALPN;
    ``insecure``: no verification at all (a test server with a self-made certificate)."""
    try:
        context = ssl.create_default_context(cafile=ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--ca-cert {ca_cert}: cannot load it ({exc})") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


class TLSConnection(Connection):
    """A ``Connection`` whose bytes pass through ``ssl.SSLObject`` (memory BIOs), read with kernel timestamps."""

    def __init__(self, pool: ConnectionPool, sock: socket.socket) -> None:
        assert pool.tls is not None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = pool.tls.wrap_bio(self._incoming, self._outgoing, server_hostname=pool.host)
        self._unsent = b""
        self._handshake: asyncio.Future[None] | None = None
        super().__init__(pool, sock)

    async def ready(self) -> None:
        self._handshake = self._loop.create_future()
        self._step_handshake()
        await self._handshake

    def _step_handshake(self) -> None:
        assert self._handshake is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._handshake_failed(f"TLS handshake with {self.pool.authority} failed: {exc}")
            return
        self._flush()
        if not self._handshake.done():
            self._handshake.set_result(None)

    def _handshake_failed(self, detail: str) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HTTPFailure("connect", detail))
        self._close()

    # -- socket events ---------------------------------------------------------------------
    def _received(self, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> bool:
        """Ciphertext in; the plaintext it completes goes to the HTTP parser with the kernel's
        receive time of the ciphertext (decryption happens after arrival, not before)."""
        self._incoming.write(data)
        if self._handshake is not None and not self._handshake.done():
            self._step_handshake()
            return not self.closed
        plain, ended = self._decrypt()
        if plain:
            self._on_data(plain, arrival_ns(ancillary))
        if ended:
            self._lost(None)
            return False
        return not self.closed

    def _decrypt(self) -> tuple[bytes, bool]:
        """All plaintext the engine can give now, and whether the peer closed TLS (close_notify)."""
        parts = []
        ended = False
        while True:
            try:
                chunk = self._tls.read(RECV_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                ended = True
                break
            except ssl.SSLError as exc:
                self._fail(HTTPFailure("protocol", f"TLS error: {exc}"))
                return b"", False
            if not chunk:
                ended = True
                break
            parts.append(chunk)
        if self._outgoing.pending:  # e.g. a key update the engine answers
            self._flush()
        return b"".join(parts), ended

    def _lost(self, exc: BaseException | None) -> None:
        self._handshake_failed(f"connection closed during the TLS handshake: {exc or 'EOF'}")
        super()._lost(exc)

    # -- writing ---------------------------------------------------------------------------
    def _send(self, request: bytes) -> None:
        try:
            self._tls.write(request)
        except ssl.SSLError as exc:
            self._fail(HTTPFailure("protocol", f"TLS error: {exc}"))
            return
        self._flush()

    def _flush(self) -> None:
        """Send what the engine produced, after anything still waiting; the rest when writable."""
        waiting = bool(self._unsent)
        self._unsent += self._outgoing.read()
        if waiting or not self._unsent or self.closed:
            return
        self._write_some()

    def _write_some(self) -> None:
        try:
            sent = self.sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._unsent = b""
            self._loop.remove_writer(self.sock.fileno())
            self._lost(exc)
            return
        self._unsent = self._unsent[sent:]
        if self._unsent:
            self._loop.add_writer(self.sock.fileno(), self._write_some)
        else:
            self._loop.remove_writer(self.sock.fileno())

    def _close(self) -> None:
        if not self.closed and self._unsent:
            self._loop.remove_writer(self.sock.fileno())
            self._unsent = b""
        super()._close()
