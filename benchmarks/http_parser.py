"""How fast the client's HTTP/1.1 + chunked parser handles a token stream, in one process.

Why: ``Connection._parse`` runs on every network read of every stream; it is the one
function the 60-line rule exempts only if splitting it measurably slows it. This feeds a
recorded-shaped SSE stream (one chunk per token, as vLLM sends it) through a real
``Connection`` on a socketpair, N reads of one event each and M reads of 16 events, and
prints reads and events per second (best of R repetitions).

    .venv/bin/python benchmarks/http_parser.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

from loadgen.clients.http import Connection, ConnectionPool

EVENT = b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" word"}]}\n\n'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class _Count:
    def __init__(self) -> None:
        self.bodies = 0

    def on_headers(self, status: int, headers: dict[str, str], now_ns: int) -> None:
        pass

    def on_body(self, data: bytes, now_ns: int) -> None:
        self.bodies += 1


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


async def _measure(events: int, per_read: int) -> float:
    a, b = socket.socketpair()
    a.setblocking(False)
    conn = Connection(ConnectionPool("http://127.0.0.1:1"), a)
    handler = _Count()
    conn._handler, conn._state, conn._done = handler, 0, asyncio.get_running_loop().create_future()
    conn._on_data(HEAD, 0)
    read = _chunk(EVENT) * per_read
    reads = events // per_read
    start = time.perf_counter()
    for i in range(reads):
        conn._on_data(read, i)
    elapsed = time.perf_counter() - start
    assert handler.bodies == reads * per_read, handler.bodies
    conn._close()
    b.close()
    return reads * per_read / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for per_read in (1, 16):
        best = max(asyncio.run(_measure(args.events, per_read)) for _ in range(args.repeat))
        print(f"{per_read:2d} event(s) per read: {best / 1e6:.3f} M events/s ({best / per_read / 1e6:.3f} M reads/s)")


if __name__ == "__main__":
    main()
