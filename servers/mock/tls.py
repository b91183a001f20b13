"""https for the synthetic server, keeping the kernel's receive timestamps (``servers.mock.sockets``).

Why not asyncio's TLS: the mock's truth starts at the kernel's arrival time of a request, read
with ``recvmsg``; asyncio's TLS transport reads the socket itself and loses it. Here the raw
ciphertext is read exactly as before, fed to the stdlib's TLS engine through memory BIOs, and
the plaintext handed on with the arrival time of the bytes that carried it; written bytes are
encrypted and go out through the plain transport's buffered writes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from servers.mock.sockets import RECV_BYTES, Handler, SocketTransport, arrival


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def tls_transport(context: ssl.SSLContext) -> Callable[[asyncio.AbstractEventLoop, socket.socket, Handler],
                                                       SocketTransport]:
    """A transport factory for ``listen``: every accepted connection speaks TLS with ``context``."""
    return lambda loop, sock, handler: TLSSocketTransport(loop, sock, handler, context)


class TLSSocketTransport(SocketTransport):
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handler: Handler,
                 context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaken = False
        super().__init__(loop, sock, handler)

    def _received(self, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> bool:
        self._incoming.write(data)
        if not self._handshaken and not self._handshake():
            return not self.closed
        plain = self._decrypt()
        if plain is None:
            return False
        if plain:
            self.handler.data_received(plain, arrival(ancillary))
        return not self.closed

    def _handshake(self) -> bool:
        try:
            self._tls.do_handshake()
            self._handshaken = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self._lost(None)  # a client that does not trust the certificate, or speaks plain HTTP
            return False
        self._send_raw()
        return self._handshaken

    def _decrypt(self) -> bytes | None:
        """The plaintext available now; None when the connection closed."""
        parts = []
        while True:
            try:
                chunk = self._tls.read(RECV_BYTES)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                self._lost(None)
                return None
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._tls.write(data)
        self._send_raw()

    def _send_raw(self) -> None:
        out = self._outgoing.read()
        if out:
            super().write(out)
