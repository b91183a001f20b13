"""One server-sent-events reader for every streaming client (OpenAI and Triton over HTTP).

Why hand-written: it sits on the hot path (one call per network read) and must be exact
about what real servers send: events split across reads, several events in one read,
``: keep-alive`` comments, CRLF or CR line ends (a CR may end one read and its LF start
the next), multi-line ``data:`` fields, and streams that end with ``[DONE]`` (OpenAI) or
without it (Triton). It returns the ``data`` payload of each complete event as bytes and
leaves interpretation to the client.
"""

from __future__ import annotations


class SSEProtocolError(ValueError):
    pass


def _payload(block: bytes) -> bytes | None:
    """The data of one event block (lines without their terminators), or None if it has none."""
    if block.startswith(b"data:") and b"\n" not in block:  # the common case: one data line
        data = block[5:]
        return data[1:] if data.startswith(b" ") else data
    parts = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:]
            parts.append(data[1:] if data.startswith(b" ") else data)
        elif line == b"data":
            parts.append(b"")
        # comments (":..."), "event:", "id:", "retry:" and unknown fields carry no data
    return b"\n".join(parts) if parts else None


class SSEParser:
    __slots__ = ("_buf", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the network; return the payloads of the events they completed."""
        if not self._buf and not self._pending_cr and data.startswith(b"data:") and data.endswith(b"\n\n"):
            # Fast path, the usual case: exactly one single-line event, nothing buffered.
            body = data[5:-2]
            if b"\n" not in body and b"\r" not in body:
                return [body[1:] if body.startswith(b" ") else body]
        if self._pending_cr:
            self._pending_cr = False
            if data.startswith(b"\n"):  # the LF of a CRLF split across reads
                data = data[1:]
        if b"\r" in data:
            self._pending_cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + data if self._buf else data
        events: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            payload = _payload(buf[start:end])
            if payload is not None:
                events.append(payload)
            start = end + 2
        self._buf = buf[start:] if start < len(buf) else b""
        return events

    def close(self) -> None:
        """At end of stream: an unterminated event with data means the stream was cut mid-event."""
        rest = self._buf.strip(b"\n")
        self._buf = b""
        if rest and _payload(rest) is not None:
            raise SSEProtocolError(f"stream ended inside an event: {rest[:80]!r}")
