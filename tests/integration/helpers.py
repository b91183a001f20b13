"""Small clients for the integration tests: SSE parsing, metric reading, raw sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Stream:
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    status: int = 0

    @property
    def content_chunks(self) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c.get("choices")]

    def text(self, chat: bool) -> str:
        if chat:
            return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.content_chunks)
        return "".join(c["choices"][0]["text"] for c in self.content_chunks)

    @property
    def usage(self) -> dict[str, int] | None:
        with_usage = [c for c in self.chunks if c.get("usage")]
        return with_usage[-1]["usage"] if with_usage else None


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> Stream:
    result = Stream()
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        result.status = response.status_code
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            payload = line[len("data: "):]
            assert not result.done, "nothing may follow [DONE]"
            if payload == "[DONE]":
                result.done = True
            else:
                result.chunks.append(json.loads(payload))
    return result


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def raw_request(url: str, path: str, body: dict[str, Any]) -> socket.socket:
    """Send a request on a bare socket and return it unread: closing it is a client disconnect."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
    )
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int = 1, timeout: float = 60.0) -> bytes:
    """Read from a raw streaming response until ``marker`` has appeared ``count`` times."""
    sock.settimeout(timeout)
    data = b""
    while data.count(marker) < count:
        block = sock.recv(65536)
        if not block:
            break
        data += block
    return data


def interrupt_after(proc: subprocess.Popen[str], records: Path, finished: int = 4) -> str:
    """SIGINT a ``loadgen run`` once ``finished`` requests are in its records.jsonl (or after 60 s);
    its combined output once it has exited."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if records.exists() and records.read_text().count("\n") >= finished:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    return output
