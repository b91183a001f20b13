"""The mock's HTTP/1.1 server and token emission, on a bare ``asyncio.Protocol``.

Why so low-level: the mock must never be the bottleneck of the client it measures, with
a thousand streams and tens of thousands of token writes per second on one core. Each
token is a timer callback (no task, no coroutine), its bytes are encoded once per
request, and deadlines are absolute — chunk i is due at received + TTFT + i·ITL·K — so
timer overshoot never accumulates. What the mock did is what its metrics record, never
what it was asked: a request's start is the kernel's arrival time of its bytes (see
``sockets``), a token's time is when its chunk was handed to the socket.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from servers.mock.metrics import MockMetrics
from servers.mock.sockets import SocketTransport

TOKEN_TEXT = " tok"


@dataclass(frozen=True)
class MockConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    tokens_per_chunk: int = 1
    output_tokens: int = 16
    model: str = "mock"
    seed: int = 0
    fail_500_rate: float = 0.0
    fail_429_rate: float = 0.0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    malformed_rate: float = 0.0
    error_event_rate: float = 0.0
    prefix_cache_block: int = 0  # >0: report usage.prompt_tokens_details.cached_tokens (see PrefixCache)
    # >0: serve at most this many generation requests at once; later ones wait in a FIFO queue and their
    # timing (ttft, itl) starts when admitted: a known capacity of max_concurrency / service time.
    max_concurrency: int = 0
    api_key: str | None = None  # set: POSTs without ``Authorization: Bearer <key>`` get 401, as vLLM's --api-key
    ssl_certfile: str | None = None  # with ssl_keyfile: serve https (servers.mock.tls), timestamps kept
    ssl_keyfile: str | None = None
    # >1: write this many events in one write (each still its own SSE event and token), every
    # events_per_write × itl_ms: the mock's cost per event drops, so it can offer one client core more
    # token events per second than it could write one by one (the selftest's capacity check). Its own
    # ITL record is then per write.
    events_per_write: int = 1

    def draw_fault(self, rng: random.Random) -> str | None:
        """At most one fault per request, each with its own probability."""
        u = rng.random()
        for name, rate in (("http_500", self.fail_500_rate), ("http_429", self.fail_429_rate),
                           ("dropped", self.drop_rate), ("stalled", self.stall_rate),
                           ("malformed", self.malformed_rate), ("error_event", self.error_event_rate)):
            if u < rate:
                return name
            u -= rate
        return None


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-transfer frame."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: Any) -> bytes:
    return _chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


LAST_CHUNK = b"0\r\n\r\n"
DONE = _chunk(b"data: [DONE]\n\n")
STREAM_HEADERS = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                  b"transfer-encoding: chunked\r\n\r\n")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def json_response(status: int, body: Any) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n").encode() + data


def text_response(data: bytes, content_type: str = "text/plain; version=0.0.4") -> bytes:
    return (f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(data)}\r\n\r\n").encode() + data


def openai_error(status: int, message: str, code: str) -> bytes:
    return json_response(status, {"error": {"message": message, "type": "mock_error", "param": None, "code": code}})


class Stream:
    """One streaming response: writes its chunks on an absolute deadline schedule."""

    __slots__ = ("chunk_bytes", "fault", "final_bytes", "index", "last_write", "n_chunks", "n_tokens", "proto",
                 "received", "tail", "timer", "tokens_per_chunk")

    def __init__(self, proto: MockProtocol, received: float, n_tokens: int, chunk_bytes: bytes, final_bytes: bytes,
                 tail: bytes, fault: str | None) -> None:
        cfg = proto.server.config
        self.proto = proto
        self.received = received
        self.tokens_per_chunk = cfg.tokens_per_chunk
        self.n_tokens = n_tokens
        self.n_chunks = -(-n_tokens // cfg.tokens_per_chunk)
        self.chunk_bytes = chunk_bytes
        self.final_bytes = final_bytes
        self.tail = tail
        self.fault = fault
        self.index = 0
        self.last_write = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def due(self, index: int) -> float:
        cfg = self.proto.server.config
        return self.received + (cfg.ttft_ms + index * cfg.itl_ms * self.tokens_per_chunk) / 1000.0

    def schedule(self) -> None:
        loop = self.proto.server.loop
        delay = self.due(self.index) - time.perf_counter()
        self.timer = loop.call_at(loop.time() + delay, self.fire) if delay > 0 else loop.call_soon(self.fire)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def event(self, index: int) -> bytes:
        """The bytes of event ``index`` (the last one carries the finish reason)."""
        return self.final_bytes if index == self.n_chunks - 1 else self.chunk_bytes

    def fire(self) -> None:
        proto = self.proto
        if proto.closed:
            return
        metrics = proto.server.metrics
        k = min(proto.server.config.events_per_write, self.n_chunks - self.index)
        halfway = self.index <= self.n_chunks // 2 < self.index + k
        if self.fault is not None and halfway and self.index > 0:
            self.inject()
            return
        last = self.index + k == self.n_chunks
        data = self.event(self.index) if k == 1 else b"".join(self.event(i) for i in range(self.index, self.index + k))
        proto.transport.write(data + self.tail if last else data)
        now = time.perf_counter()
        if self.index == 0:
            metrics.ttft.observe(now - self.received)
        else:
            metrics.itl.observe(now - self.last_write)
        self.last_write = now
        metrics.tokens += k * self.tokens_per_chunk - (self.n_chunks * self.tokens_per_chunk - self.n_tokens
                                                       if last else 0)
        self.index += k
        if last:
            metrics.outcomes["ok"] += 1
            proto.response_done()
        else:
            self.schedule()

    def inject(self) -> None:
        proto, fault = self.proto, self.fault
        assert fault is not None
        proto.server.metrics.outcomes[fault] += 1
        if fault == "dropped":
            proto.transport.abort()
        elif fault == "stalled":
            return  # nothing more is ever written; the connection stays open
        elif fault == "malformed":
            proto.transport.write(_chunk(b'data: {"choices": [{"text": \n\n'))
            proto.transport.write(DONE + LAST_CHUNK)
            proto.response_done()
        elif fault == "error_event":
            proto.transport.write(self.error_bytes() + LAST_CHUNK)
            proto.response_done()

    def error_bytes(self) -> bytes:
        if self.tail == LAST_CHUNK:  # Triton: a bare error string, no [DONE]
            return _event({"error": "mock: injected error event"})
        return _event({"error": {"message": "mock: injected error event", "type": "mock_error",
                                 "code": "injected"}}) + DONE


class PrefixCache:
    """A block-granular prefix cache over the prompt's words (the mock's tokens), like vLLM's chain of
    block hashes: a prompt's cached tokens are its leading full blocks that an earlier prompt had, in
    the same order from the start. Why in a mock: the load generator's ``cached_tokens`` and
    ``cached_share`` need a server whose answer follows from the prompts actually sent, so a test
    can tell a shared prefix from a unique one. Never evicts; at least one block is always computed."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.seen: set[int] = set()

    def admit(self, words: list[str]) -> int:
        """Cached tokens of this prompt; its blocks are remembered for later prompts."""
        cached, key, hit = 0, 0, True
        for end in range(self.block, len(words) + 1, self.block):
            key = hash((key, tuple(words[end - self.block:end])))
            if hit and key in self.seen:
                cached = end
            else:
                hit = False
            self.seen.add(key)
        return cached - self.block if cached and cached == len(words) else cached


class MockServer:
    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.prefix_cache = PrefixCache(config.prefix_cache_block) if config.prefix_cache_block > 0 else None
        self.metrics = MockMetrics()
        self.rng = random.Random(config.seed)
        self.loop = asyncio.get_running_loop()
        self._counter = 0
        self.active = 0  # generation requests admitted and not finished (``max_concurrency``)
        self.waiting: collections.deque[tuple[MockProtocol, str, bytes]] = collections.deque()

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    def handle(self, proto: MockProtocol, method: str, path: str, body: bytes, received: float) -> None:
        cfg = self.config
        if method == "GET":
            if path in ("/health", "/v2/health/ready", "/v2/health/live"):
                proto.send_and_finish(json_response(200, {"status": "ok"}))
            elif path == "/metrics":
                proto.send_and_finish(text_response(self.metrics.render()))
            elif path == "/v1/models":
                proto.send_and_finish(json_response(200, {"object": "list", "data": [
                    {"id": cfg.model, "object": "model", "owned_by": "mock"}]}))
            else:
                proto.send_and_finish(openai_error(404, f"no route {path}", "not_found"))
            return
        if method != "POST":
            proto.send_and_finish(openai_error(404, f"no route {method} {path}", "not_found"))
            return
        if cfg.max_concurrency:
            if self.active >= cfg.max_concurrency:
                self.waiting.append((proto, path, body))
                return
            self.active += 1
            proto.holds_slot = True
        self.generate(proto, path, body, received)

    def release(self, proto: MockProtocol) -> None:
        """A request that held a slot ended (or its client left): admit the oldest waiting one, its
        timing starting now."""
        proto.holds_slot = False
        self.active -= 1
        while self.waiting:
            waiting, path, body = self.waiting.popleft()
            if not waiting.closed:
                self.active += 1
                waiting.holds_slot = True
                self.generate(waiting, path, body, time.perf_counter())
                return

    def generate(self, proto: MockProtocol, path: str, body: bytes, received: float) -> None:
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            proto.send_and_finish(openai_error(400, f"malformed JSON body: {exc}", "invalid_json"))
            return
        if path in ("/v1/completions", "/v1/chat/completions"):
            self.openai(proto, request, chat=path.endswith("chat/completions"), received=received)
        elif path.startswith("/v2/models/") and path.endswith(("/generate_stream", "/generate")):
            name = path.split("/")[3]
            self.triton(proto, request, name, stream=path.endswith("_stream"), received=received)
        else:
            proto.send_and_finish(openai_error(404, f"no route {path}", "not_found"))

    def _fault_response(self, proto: MockProtocol, fault: str | None) -> bool:
        if fault in ("http_500", "http_429"):
            self.metrics.outcomes[fault] += 1
            status = 500 if fault == "http_500" else 429
            proto.send_and_finish(openai_error(status, f"mock: injected HTTP {status}", fault))
            return True
        return False

    def openai(self, proto: MockProtocol, request: dict[str, Any], chat: bool, received: float) -> None:
        cfg = self.config
        if chat and not isinstance(request.get("messages"), list):
            proto.send_and_finish(openai_error(400, "missing `messages`", "missing_field"))
            return
        if not chat and "prompt" not in request:
            proto.send_and_finish(openai_error(400, "missing `prompt`", "missing_field"))
            return
        n = request.get("max_tokens") or request.get("max_completion_tokens") or cfg.output_tokens
        if not isinstance(n, int) or n < 1:
            proto.send_and_finish(openai_error(400, "`max_tokens` must be a positive integer", "invalid_value"))
            return
        fault = self.config.draw_fault(self.rng)
        if self._fault_response(proto, fault):
            return
        prompt = " ".join(str(m.get("content", "")) for m in request["messages"]) if chat else str(request["prompt"])
        words = prompt.split()
        prompt_tokens = len(words)
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                 "total_tokens": prompt_tokens + n}
        if self.prefix_cache is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.prefix_cache.admit(words)}
        rid = f"{'chatcmpl' if chat else 'cmpl'}-mock-{self.next_id()}"
        base = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()), "model": cfg.model}
        k = cfg.tokens_per_chunk

        def choice(tokens: int, finish: str | None) -> dict[str, Any]:
            text = TOKEN_TEXT * tokens
            if chat:
                return {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

        if not request.get("stream"):
            text = TOKEN_TEXT * n
            result = {**base, "object": "chat.completion" if chat else "text_completion", "usage": usage,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                   "finish_reason": "length"} if chat else
                                  {"index": 0, "text": text, "finish_reason": "length"}]}
            delay = (cfg.ttft_ms + (n - 1) * cfg.itl_ms) / 1000 - (time.perf_counter() - received)
            self.loop.call_later(max(0.0, delay), self._finish_whole, proto, json_response(200, result))
            return
        options = request.get("stream_options") or {}
        last_tokens = n - (-(-n // k) - 1) * k
        # Continuous usage makes every chunk's bytes differ, so that stream encodes per chunk.
        chunk_body = {**base, "choices": [choice(k, None)]}
        final_body = {**base, "choices": [choice(last_tokens, "length")]}
        tail = (_event({**base, "choices": [], "usage": usage}) if options.get("include_usage") else b"") + DONE
        if options.get("continuous_usage_stats"):
            stream = ContinuousUsageStream(proto, received, n, base, chat, prompt_tokens, tail + LAST_CHUNK, fault)
        else:
            stream = Stream(proto, received, n, _event(chunk_body), _event(final_body), tail + LAST_CHUNK, fault)
        head = STREAM_HEADERS
        if chat:
            head += _event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "logprobs": None, "finish_reason": None}]})
        proto.transport.write(head)
        proto.start_stream(stream)

    def triton(self, proto: MockProtocol, request: dict[str, Any], name: str, stream: bool, received: float) -> None:
        cfg = self.config
        if "text_input" not in request:
            proto.send_and_finish(json_response(400, {"error": "missing input 'text_input'"}))
            return
        n = request.get("max_tokens", cfg.output_tokens)
        if not isinstance(n, int) or n < 1:
            proto.send_and_finish(json_response(400, {"error": "max_tokens must be a positive integer"}))
            return
        fault = self.config.draw_fault(self.rng)
        if self._fault_response(proto, fault):
            return
        base = {"model_name": name, "model_version": "1"}
        if not stream:
            delay = (cfg.ttft_ms + (n - 1) * cfg.itl_ms) / 1000 - (time.perf_counter() - received)
            body = json_response(200, {**base, "text_output": TOKEN_TEXT * n})
            self.loop.call_later(max(0.0, delay), self._finish_whole, proto, body)
            return
        k = cfg.tokens_per_chunk
        last_tokens = n - (-(-n // k) - 1) * k
        s = Stream(proto, received, n, _event({**base, "text_output": TOKEN_TEXT * k}),
                   _event({**base, "text_output": TOKEN_TEXT * last_tokens}), LAST_CHUNK, fault)
        proto.transport.write(STREAM_HEADERS)
        proto.start_stream(s)

    def _finish_whole(self, proto: MockProtocol, data: bytes) -> None:
        if not proto.closed:
            self.metrics.outcomes["ok"] += 1
            proto.send_and_finish(data)


class ContinuousUsageStream(Stream):
    """Like Stream, but every chunk carries the cumulative usage (vLLM's continuous_usage_stats).

    The chunk bytes differ only in two numbers, so they are cut from a template once and
    joined per chunk (no JSON encoding on the hot path)."""

    __slots__ = ("final_parts", "normal_parts", "prompt_tokens")

    def __init__(self, proto: MockProtocol, received: float, n: int, base: dict[str, Any], chat: bool,
                 prompt_tokens: int, tail: bytes, fault: str | None) -> None:
        super().__init__(proto, received, n, b"", b"", tail, fault)
        self.prompt_tokens = prompt_tokens
        k = self.tokens_per_chunk
        last_tokens = n - (self.n_chunks - 1) * k
        self.normal_parts = self._template(base, chat, k, None, prompt_tokens)
        self.final_parts = self._template(base, chat, last_tokens, "length", prompt_tokens)

    @staticmethod
    def _template(base: dict[str, Any], chat: bool, tokens: int, finish: str | None,
                  prompt_tokens: int) -> tuple[bytes, bytes, bytes]:
        text = TOKEN_TEXT * tokens
        choice = ({"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish} if chat
                  else {"index": 0, "text": text, "logprobs": None, "finish_reason": finish})
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": "@C@", "total_tokens": "@T@"}
        raw = b"data: " + json.dumps({**base, "choices": [choice], "usage": usage},
                                     separators=(",", ":")).encode() + b"\n\n"
        head, rest = raw.split(b'"@C@"')
        middle, tail = rest.split(b'"@T@"')
        return head, middle, tail

    def event(self, index: int) -> bytes:
        last = index == self.n_chunks - 1
        done = self.n_tokens if last else (index + 1) * self.tokens_per_chunk
        head, middle, tail = self.final_parts if last else self.normal_parts
        return _chunk(head + str(done).encode() + middle + str(self.prompt_tokens + done).encode() + tail)


class MockProtocol:
    """HTTP/1.1 with keep-alive; one request at a time per connection (pipelined ones wait)."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.transport: SocketTransport
        self.arrived = 0.0
        self.buffer = b""
        self.closed = False
        self.busy = False
        self.holds_slot = False  # counted in the server's ``active`` (``max_concurrency``)
        self.stream: Stream | None = None
        self.keep_alive = True

    def connection_made(self, transport: SocketTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.holds_slot:
            self.server.release(self)
        if self.stream is not None:
            self.stream.cancel()
            if self.stream.index < self.stream.n_chunks and self.stream.fault is None:
                self.server.metrics.outcomes["client_gone"] += 1
            self.stream = None

    def data_received(self, data: bytes, arrived: float) -> None:
        self.buffer += data
        self.arrived = arrived  # kernel arrival time of the newest bytes: the request's "received"
        self.process()

    def process(self) -> None:
        while not self.busy and not self.closed:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, path, version = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(openai_error(400, "malformed request line", "bad_request"))
                self.transport.close()
                return
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4: head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            self.keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            self.busy = True
            key = self.server.config.api_key
            if key and method == "POST" and headers.get("authorization") != f"Bearer {key}":
                self.send_and_finish(openai_error(401, "Unauthorized: missing or wrong API key", "unauthorized"))
                continue
            self.server.handle(self, method, path.split("?", 1)[0], body, self.arrived)

    def start_stream(self, stream: Stream) -> None:
        self.stream = stream
        stream.schedule()

    def send_and_finish(self, data: bytes) -> None:
        self.transport.write(data)
        self.response_done()

    def response_done(self) -> None:
        self.stream = None
        self.busy = False
        if self.holds_slot:
            self.server.release(self)
        if not self.keep_alive:
            self.transport.close()
            return
        if self.buffer:
            self.process()
