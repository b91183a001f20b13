"""The loadgen's HTTP/1.1 response parser: framing split at every byte, keep-alive, failures.
A socketpair stands in for the network; the parser and handler are the real ones."""

from __future__ import annotations

import asyncio
import socket

import pytest

from loadgen.clients.http import Connection, ConnectionPool, HTTPFailure

CHUNKED = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
           b"7\r\ndata: a\r\n5;ext=1\r\n\n\ndat\r\n4\r\na: b\r\n2\r\n\n\n\r\n0\r\n\r\n")
LENGTH = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"error\":1}"
UNTIL_CLOSE = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nsome body"
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH


class Collect:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    def on_headers(self, status: int, headers: dict[str, str], now_ns: int) -> None:
        self.status = status

    def on_body(self, data: bytes, now_ns: int) -> None:
        self.body += data


async def exchange_over_pair(response: bytes, cut: int | None = None,
                             close_after: bool = False) -> tuple[Collect, bool]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    pool = ConnectionPool("http://127.0.0.1:1")
    conn = Connection(pool, ours)
    pool.active.add(conn)
    handler = Collect()
    done = conn.start(b"GET / HTTP/1.1\r\n\r\n", handler)
    parts = [response] if cut is None else [response[:cut], response[cut:]]
    for part in parts:
        theirs.sendall(part)
        await asyncio.sleep(0.001)
    if close_after:
        theirs.close()
    try:
        await asyncio.wait_for(done, 2)
        reusable = not conn.closed and conn in pool._idle
    finally:
        theirs.close()
        conn._close()
    return handler, reusable


@pytest.mark.parametrize("cut", range(0, len(CHUNKED) + 1, 3))
def test_chunked_body_split_anywhere(cut: int) -> None:
    handler, reusable = asyncio.run(exchange_over_pair(CHUNKED, cut))
    assert handler.status == 200
    assert handler.body == b"data: a\n\ndata: b\n\n"
    assert reusable  # keep-alive: back in the pool


def test_content_length_body() -> None:
    handler, _ = asyncio.run(exchange_over_pair(LENGTH))
    assert (handler.status, handler.body) == (400, b'{"error":1}')


def test_interim_response_is_skipped() -> None:
    handler, _ = asyncio.run(exchange_over_pair(INTERIM))
    assert handler.status == 400


def test_body_until_close() -> None:
    handler, reusable = asyncio.run(exchange_over_pair(UNTIL_CLOSE, close_after=True))
    assert handler.body == b"some body" and not reusable


def test_connection_closed_mid_stream_is_a_drop() -> None:
    with pytest.raises(HTTPFailure) as failure:
        asyncio.run(exchange_over_pair(CHUNKED[:120], close_after=True))
    assert failure.value.kind == "dropped" and "mid-stream" in str(failure.value)


def test_garbage_is_a_protocol_failure() -> None:
    with pytest.raises(HTTPFailure) as failure:
        asyncio.run(exchange_over_pair(b"SSH-2.0-OpenSSH\r\n\r\n"))
    assert failure.value.kind == "protocol"
