"""The baseline server under abuse a new user finds by trying: huge bodies, huge prompts, clients that stop reading.

Real server processes: the session's SmolLM2 server with its default limits (8 MiB bodies, prompts of at most
``max_model_len`` × the longest token's characters), and servers on a tiny random-weight model with an
8192-token context (fast enough to fill socket buffers and pass deadlines within seconds) with one limit
changed each.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.baseline.launch import baseline_process
from stack.process import free_port
from tests.integration.helpers import metric, stream
from tests.integration.servers import Server

STALL_S = 1.0
DEADLINE_S = 2.0


@pytest.fixture(scope="module")
def long_tiny_model(model_dir: Path) -> Path:
    from stack.models import build_random

    return build_random(model_dir.parent / "tiny-random-llama-8k", model_dir, hidden_size=32, layers=1, heads=2,
                        max_position_embeddings=8192)


def _tiny(model: Path, log_dir: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    with baseline_process(model, port, log_dir, served_model_name="tiny", extra_args=list(extra)) as proc:
        yield Server(url=f"http://127.0.0.1:{port}", process=proc, model="tiny")


@pytest.fixture(scope="module")
def stall_server(long_tiny_model: Path, log_dir: Path) -> Iterator[Server]:
    """Short stall timeout; caps raised so that a 4 MB prompt reaches the tokenizer."""
    yield from _tiny(long_tiny_model, log_dir, "--stream-stall-timeout-s", str(STALL_S),
                     "--max-prompt-chars", "100000000", "--max-request-bytes", str(64 * 2**20))


@pytest.fixture(scope="module", params=["naive", "continuous"])
def deadline_server(request: pytest.FixtureRequest, long_tiny_model: Path, log_dir: Path) -> Iterator[Server]:
    # continuous with one batch row, so that the second request queues as it does with the naive scheduler
    yield from _tiny(long_tiny_model, log_dir, "--request-timeout-s", str(DEADLINE_S), "--scheduler", request.param,
                     "--max-num-seqs", "1")


def _raw_post(url: str, path: str, head: bytes, body: bytes, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode() + head
                 + b"\r\n" + body)
    return sock


def _response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict]:
    """Status and JSON body of a plain (Content-Length) HTTP response read from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


# -- the body cap and the prompt cap (default limits, the real model) ------------------------------------------
def test_a_50_mb_body_is_refused_413_before_it_is_read(baseline: Server) -> None:
    sock = _raw_post(baseline.url, "/v1/completions", b"Content-Length: 50000000\r\n", b'{"prompt": "' + b"a" * 65536)
    started = time.perf_counter()
    try:
        status, body = _response(sock)
    finally:
        sock.close()
    assert status == 413
    assert body["error"]["code"] == "request_too_large" and "--max-request-bytes" in body["error"]["message"]
    assert time.perf_counter() - started < 2.0


def test_a_chunked_body_is_refused_413_once_it_passes_the_cap(baseline: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "smollm2", "prompt": "'
        for _ in range(10):  # 10 MiB, beyond the default 8 MiB cap
            yield b"a" * 2**20
        yield b'"}'

    with baseline.client() as client:
        reply = client.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/tokenize"])
def test_a_prompt_longer_than_any_context_is_refused_400_without_tokenizing(baseline: Server, path: str) -> None:
    """800,000 characters (1.6 MB): under the body cap, over the default prompt cap of 8192 × 81 characters.
    Tokenized, it would take about a second; refused by its length, it is answered at once."""
    text = "ab " * 266_667
    body: dict = {"model": "smollm2", "max_tokens": 1}
    body |= {"messages": [{"role": "user", "content": text}]} if "chat" in path else {"prompt": text}
    with baseline.client() as client:
        started = time.perf_counter()
        reply = client.post(path, json=body)
        elapsed = time.perf_counter() - started
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["param"] == ("messages" if "chat" in path else "prompt")
        assert "characters" in error["message"] and "--max-prompt-chars" in error["message"]
        assert elapsed < 0.5
        # A prompt just under the cap is tokenized as before, then refused by the context check.
        fits = client.post("/tokenize", json={"prompt": "ab " * 1000})
        assert fits.status_code == 200 and fits.json()["count"] > 0


def test_a_token_id_prompt_longer_than_the_context_is_refused_400(baseline: Server) -> None:
    with baseline.client() as client:
        reply = client.post("/v1/completions", json={"model": "smollm2", "prompt": [1] * 9000, "max_tokens": 1})
    assert reply.status_code == 400
    assert "9000 tokens" in reply.json()["error"]["message"]


def test_health_answers_while_a_4_mb_prompt_is_tokenized(stall_server: Server) -> None:
    """Tokenizing runs in a thread of its own that releases the GIL: the event loop keeps answering."""
    text = "The quick brown fox jumps over the lazy dog. " * 90_000  # 4 MB, ~900k tokens
    result: dict[str, float | int] = {}

    def tokenize() -> None:
        with stall_server.client() as client:
            started = time.perf_counter()
            reply = client.post("/tokenize", json={"prompt": text})
            result.update(status=reply.status_code, seconds=time.perf_counter() - started,
                          count=reply.json().get("count", 0))

    worker = threading.Thread(target=tokenize)
    worker.start()
    latencies: list[float] = []
    with stall_server.client() as client:
        time.sleep(0.2)
        while worker.is_alive():
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
    worker.join()
    assert result["status"] == 200 and result["count"] > 800_000
    assert result["seconds"] > 1.0, "the tokenization was too short to show anything"
    assert latencies and max(latencies) < 0.5, f"/health took up to {max(latencies):.2f} s"


# -- clients that stop reading (naive scheduler) ----------------------------------------------------------------
def test_streams_whose_clients_stopped_reading_are_cancelled_and_free_the_model(stall_server: Server) -> None:
    """Four clients ask for 8000 tokens each and never read. Without the stall timeout the 8-token request
    behind them waits for all 32,000 tokens (about 75 s here); with it, each stream is cancelled once its
    socket buffers are full (~1,400 tokens here) and has taken no data for a second."""
    body = json.dumps({"model": "tiny", "prompt": "hi", "max_tokens": 8000, "ignore_eos": True,
                       "stream": True}).encode()
    with stall_server.client() as client:
        stalled_before = metric(client, "hf:requests_total", outcome="stalled")
        tokens_before = metric(client, "hf:generation_tokens_total")
        silent = [_raw_post(stall_server.url, "/v1/completions", f"Content-Length: {len(body)}\r\n".encode(), body,
                            rcvbuf=4096) for _ in range(4)]
        try:
            time.sleep(0.2)
            started = time.perf_counter()
            reply = client.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 8,
                                                         "ignore_eos": True})
            waited = time.perf_counter() - started
        finally:
            for sock in silent:
                sock.close()
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 8
        assert metric(client, "hf:requests_total", outcome="stalled") - stalled_before == 4  # the server ended them
        generated = metric(client, "hf:generation_tokens_total") - tokens_before - 8
        assert generated < 4 * 4000, f"the silent streams generated {generated:.0f} tokens"
        assert waited < 40, f"the 8-token request waited {waited:.1f} s"


def test_a_slow_reader_is_not_cancelled(stall_server: Server) -> None:
    """Reading slowly is not stopping: a client that takes a chunk now and then keeps its stream."""
    with stall_server.client() as client, client.stream(
            "POST", "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 20, "ignore_eos": True,
                                             "stream": True}) as response:
        lines = []
        for line in response.iter_lines():
            if line:
                lines.append(line)
                time.sleep(0.1)
    assert lines[-1] == "data: [DONE]" and len(lines) == 21


# -- the per-request deadline ------------------------------------------------------------------------------------
def test_the_deadline_ends_a_running_stream_and_a_queued_request(deadline_server: Server) -> None:
    """8000 tokens take ~20 s here; the deadline (2 s from arrival) ends the stream with an error event, and
    the request queued behind it — which started when the stream was ended — with a 504 at its own deadline,
    both in OpenAI's error shape; the server then serves again."""
    queued: dict[str, object] = {}

    def send_queued() -> None:
        with deadline_server.client() as c:
            time.sleep(0.3)
            started = time.perf_counter()
            reply = c.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 8000,
                                                    "ignore_eos": True})
            queued.update(status=reply.status_code, body=reply.json(), seconds=time.perf_counter() - started)

    worker = threading.Thread(target=send_queued)
    worker.start()
    with deadline_server.client() as client:
        timeout_before = metric(client, "hf:requests_total", outcome="timeout")
        cancelled_before = metric(client, "hf:requests_total", outcome="cancelled")
        started = time.perf_counter()
        s = stream(client, "/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 8000,
                                               "ignore_eos": True})
        elapsed = time.perf_counter() - started
        worker.join()
        assert s.status == 200 and s.done
        assert s.chunks[-1]["error"]["code"] == "request_timeout"
        assert 0 < len(s.content_chunks) < 8000
        assert DEADLINE_S <= elapsed < DEADLINE_S + 3
        assert queued["status"] == 504
        assert queued["body"]["error"]["code"] == "request_timeout"  # type: ignore[index]
        assert DEADLINE_S - 0.2 <= queued["seconds"] < DEADLINE_S + 3  # type: ignore[operator]
        assert metric(client, "hf:requests_total", outcome="timeout") - timeout_before == 2  # not "cancelled":
        assert metric(client, "hf:requests_total", outcome="cancelled") == cancelled_before  # no client left
        after = client.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 8,
                                                     "ignore_eos": True})
        assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 8
