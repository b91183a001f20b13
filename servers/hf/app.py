"""The baseline server's HTTP surface: OpenAI completions and chat, models, health, metrics.

Why it looks like vLLM's: the load generator and users' own clients talk to every engine
through the same protocol, so this server answers in vLLM's chunk format (role chunk
first, one chunk per generated token, ``finish_reason`` on the last token's chunk, a
usage-only chunk when ``stream_options.include_usage``, then ``[DONE]``) and accepts
vLLM's ``ignore_eos`` and ``min_tokens``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from servers.hf import errors
from servers.hf.config import ServerConfig
from servers.hf.kv_cache import BudgetTooSmall
from servers.hf.limits import BodyLimit
from servers.hf.metrics import ServerMetrics
from servers.hf.naive import make_scheduler
from servers.hf.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
)
from servers.hf.runner import ModelRunner, default_linear_kernel, default_threads
from servers.hf.scheduler_base import QueueFull, Scheduler
from servers.hf.sequence import Event, FinishEvent, SamplingParams, Sequence, TokenEvent
from servers.hf.streaming import SSE_DONE, ClientDisconnected, SSEResponse, sse_event, unless_disconnected

# OpenAI's default for /v1/completions; chat defaults to the rest of the context (as vLLM).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 429, 500, 504)
}
T = TypeVar("T")


class OpenAIServing:
    """The OpenAI serving layer: glue between HTTP handlers and the scheduler — validation that
    needs the tokenizer, sequence creation, and turning a sequence's events into responses."""

    def __init__(self, config: ServerConfig, runner: ModelRunner, executor: ThreadPoolExecutor | None = None) -> None:
        self.config = config
        self.runner = runner
        self.served_model_name = config.served_model_name or config.model
        self.metrics = ServerMetrics(self.served_model_name, runner.info.device)
        self.scheduler: Scheduler = make_scheduler(config.scheduler, runner, self.metrics, config.max_queue,
                                                   config.max_num_seqs, config.kv_cache_tokens,
                                                   config.max_num_batched_tokens, executor)
        # The generation thread decodes text; a tokenizer of its own avoids sharing the
        # Rust object with the encodes of the tokenizer thread.
        self.detokenizer = type(runner.tokenizer).from_pretrained(runner.info.path)
        # Prompts are tokenized (and chat templates rendered) in one thread of their own, never on the
        # event loop: a long prompt takes seconds, and /health, /metrics and every stream would wait.
        # One thread, because the runner's tokenizer is one Rust object; its encodes release the GIL.
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-tokenize")
        self.max_prompt_chars = config.max_prompt_chars or runner.max_model_len * runner.longest_token_chars

    async def off_loop(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._tokenizer_thread, work, *args)

    def close(self) -> None:
        self._tokenizer_thread.shutdown(wait=False, cancel_futures=True)

    def check_prompt_chars(self, chars: int, param: str) -> None:
        """Refuses, before tokenizing, text too long to fit the context whatever it holds."""
        if chars > self.max_prompt_chars:
            raise errors.bad_request(
                f"The prompt has {chars} characters; this server accepts at most {self.max_prompt_chars} "
                f"(--max-prompt-chars; a {self.runner.max_model_len}-token context cannot hold more).", param)

    def check_model(self, model: str) -> None:
        if model != self.served_model_name:
            raise errors.model_not_found(model, self.served_model_name)

    def sampling_params(self, req: CompletionRequest | ChatCompletionRequest, prompt_len: int,
                        default_max_tokens: int | None) -> SamplingParams:
        limit = self.runner.max_model_len
        if prompt_len >= limit:
            raise errors.bad_request(f"The prompt has {prompt_len} tokens; this model's context is {limit} tokens.",
                               "prompt" if isinstance(req, CompletionRequest) else "messages")
        max_tokens = req.max_tokens
        if max_tokens is None:
            max_tokens = min(default_max_tokens or limit, limit - prompt_len)
        elif prompt_len + max_tokens > limit:
            raise errors.bad_request(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
                "completion). Please reduce the prompt or max_tokens.", "max_tokens")
        if req.min_tokens > max_tokens:
            raise errors.bad_request(f"min_tokens ({req.min_tokens}) exceeds max_tokens ({max_tokens})", "min_tokens")
        return SamplingParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                              seed=req.seed, stop=tuple(req.stop_strings), ignore_eos=req.ignore_eos,
                              min_tokens=req.min_tokens)

    async def completion_prompt(self, req: CompletionRequest) -> list[int]:
        if isinstance(req.prompt, str):
            self.check_prompt_chars(len(req.prompt), "prompt")
            ids = await self.off_loop(self.runner.encode, req.prompt)
        else:
            limit = self.runner.max_model_len
            if len(req.prompt) >= limit:
                raise errors.bad_request(f"The prompt has {len(req.prompt)} tokens; this model's context is "
                                         f"{limit} tokens.", "prompt")
            vocab = self.runner.vocab_size
            bad = [t for t in req.prompt if t >= vocab]
            if bad:
                raise errors.bad_request(f"token id {bad[0]} is out of the vocabulary (size {vocab})", "prompt")
            ids = list(req.prompt)
        if not ids:
            raise errors.bad_request("The prompt is empty after tokenization.", "prompt")
        return ids

    async def chat_prompt(self, messages: list[ChatMessage]) -> list[int]:
        rendered = [{"role": m.role, "content": m.text()} for m in messages]
        self.check_prompt_chars(sum(len(m["content"]) for m in rendered), "messages")
        try:
            return await self.off_loop(self.runner.render_chat, rendered)
        except Exception as exc:  # template errors (roles out of order, ...) are the client's input
            raise errors.bad_request(f"The messages could not be rendered with the chat template: {exc}",
                               "messages") from exc

    def submit(self, prompt_ids: list[int], params: SamplingParams, prefix: str) -> tuple[Sequence, asyncio.Queue]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        seq = Sequence(request_id=f"{prefix}-{uuid.uuid4().hex}", prompt_ids=prompt_ids, params=params,
                       tokenizer=self.detokenizer, eos_ids=self.runner.eos_ids, emit=emit)
        try:
            self.scheduler.submit(seq)
        except QueueFull as exc:
            raise errors.queue_full(exc.limit) from exc
        except BudgetTooSmall as exc:
            raise errors.bad_request(str(exc), "max_tokens") from exc
        return seq, queue

    def start_deadline(self, seq: Sequence) -> asyncio.TimerHandle | None:
        """Ends ``seq`` when ``--request-timeout-s`` has passed since its arrival, queued or generating."""
        timeout = self.config.request_timeout_s
        if not timeout:
            return None
        remaining = max(0.0, seq.arrival + timeout - time.perf_counter())
        return asyncio.get_running_loop().call_later(remaining, self._expire, seq)

    def _expire(self, seq: Sequence) -> None:
        if not seq.is_finished:
            seq.deadline_exceeded = True
            self.scheduler.cancel(seq)

    def usage(self, seq: Sequence) -> dict[str, int]:
        prompt, completion = len(seq.prompt_ids), len(seq.output_ids)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _events(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    while True:
        event = await queue.get()
        yield event
        if isinstance(event, FinishEvent) or event.finish_reason is not None:
            return


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _stream_error(message: str, type: str = "internal_server_error", code: str = "internal_error") -> bytes:
    return sse_event(_dumps({"error": {"message": message, "type": type, "param": None, "code": code}}))


async def _respond(serving: OpenAIServing, request: Request, seq: Sequence, queue: asyncio.Queue[Event],
                   req: CompletionRequest | ChatCompletionRequest, chat: bool) -> Response:
    deadline = serving.start_deadline(seq)
    try:
        return await _respond_in_time(serving, request, seq, queue, req, chat, deadline)
    finally:
        if deadline is not None and not req.stream:
            deadline.cancel()


async def _respond_in_time(serving: OpenAIServing, request: Request, seq: Sequence, queue: asyncio.Queue[Event],
                           req: CompletionRequest | ChatCompletionRequest, chat: bool,
                           deadline: asyncio.TimerHandle | None) -> Response:
    created = int(time.time())
    if req.stream:
        return _streaming_response(serving, seq, queue, req, chat, deadline, created)
    return await _whole_response(serving, request, seq, queue, chat, created)


def _streaming_response(serving: OpenAIServing, seq: Sequence, queue: asyncio.Queue[Event],
                        req: CompletionRequest | ChatCompletionRequest, chat: bool,
                        deadline: asyncio.TimerHandle | None, created: int) -> Response:
    """The SSE response (``_sse_chunks``): the deadline's timer ends with the stream; a client that stops
    reading is a stalled stream, one that goes away cancels its sequence."""

    async def body_in_time() -> AsyncIterator[bytes]:
        try:
            async for chunk in _sse_chunks(serving, seq, queue, req, chat, created):
                yield chunk
        finally:
            if deadline is not None:
                deadline.cancel()

    def stalled() -> None:
        seq.stream_stalled = True
        serving.scheduler.cancel(seq)

    return SSEResponse(body_in_time(), on_disconnect=lambda: serving.scheduler.cancel(seq),
                       stall_timeout_s=serving.config.stream_stall_timeout_s, on_stall=stalled)


async def _sse_chunks(serving: OpenAIServing, seq: Sequence, queue: asyncio.Queue[Event],
                      req: CompletionRequest | ChatCompletionRequest, chat: bool, created: int) -> AsyncIterator[bytes]:
    """SSE chunks as vLLM sends them: a role-only first chunk for chat, one chunk per token event (with usage
    when ``continuous_usage``), the usage chunk when asked, ``[DONE]``; an error or the deadline ends the
    stream with an error event."""
    base = {"id": seq.request_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created, "model": serving.served_model_name}
    if chat:
        yield sse_event(_dumps({**base, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]}))
    async for event in _events(queue):
        if isinstance(event, FinishEvent):
            if event.finish_reason == "error":
                yield _stream_error(event.message)
            elif seq.deadline_exceeded:
                yield _stream_error(errors.deadline_message(serving.config.request_timeout_s),
                                    "timeout", "request_timeout")
            break
        chunk = {**base, "choices": [_stream_choice(chat, event.text, event.finish_reason)]}
        if req.continuous_usage:  # from the event: the generation thread may be ahead already
            prompt = len(seq.prompt_ids)
            chunk["usage"] = {"prompt_tokens": prompt, "completion_tokens": event.completion_tokens,
                              "total_tokens": prompt + event.completion_tokens}
        yield sse_event(_dumps(chunk))
    if req.include_usage and seq.finish_reason in ("stop", "length"):
        yield sse_event(_dumps({**base, "choices": [], "usage": serving.usage(seq)}))
    yield SSE_DONE


def _stream_choice(chat: bool, text: str, finish_reason: str | None) -> dict[str, Any]:
    if chat:
        return {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish_reason}
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}


async def _whole_response(serving: OpenAIServing, request: Request, seq: Sequence, queue: asyncio.Queue[Event],
                          chat: bool, created: int) -> Response:
    """One JSON body when generation ends: 499 when the client left first, the deadline's 408-style error, a 500
    when generation failed, else the completion with its usage."""

    async def collect() -> list[TokenEvent | FinishEvent]:
        return [event async for event in _events(queue)]

    try:
        events = await unless_disconnected(request, collect())
    except ClientDisconnected:
        serving.scheduler.cancel(seq)
        return Response(status_code=499)
    last = events[-1]
    if isinstance(last, FinishEvent) and seq.deadline_exceeded:
        return errors.deadline_exceeded(serving.config.request_timeout_s).response()
    if isinstance(last, FinishEvent):
        return errors.APIError(500, f"generation failed: {last.message}", type="internal_server_error",
                               code="internal_error").response()
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    if chat:
        result_choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": seq.finish_reason}
        obj = "chat.completion"
    else:
        result_choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": seq.finish_reason}
        obj = "text_completion"
    return JSONResponse({"id": seq.request_id, "object": obj, "created": created,
                         "model": serving.served_model_name, "choices": [result_choice],
                         "usage": serving.usage(seq)})


def runner_for(config: ServerConfig) -> ModelRunner:
    """The runner the server's flags describe (threads and linear kernel resolved to their defaults)."""
    threads = config.torch_threads or default_threads(config.device, config.scheduler)
    kernel = config.linear_kernel or default_linear_kernel(config.device, config.dtype)
    return ModelRunner(config.model, config.device, config.dtype, config.max_model_len, threads=threads,
                       linear_kernel=kernel)


def create_app(config: ServerConfig, runner: ModelRunner | None = None,
               executor: ThreadPoolExecutor | None = None) -> FastAPI:
    """Build the app; the model is loaded here unless a runner is passed (tests share one). The server builds it
    on its model thread and passes that thread as ``executor`` (model_thread.py: one thread for all torch work)."""
    serving = OpenAIServing(config, runner or runner_for(config), executor)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await serving.scheduler.start()
        try:
            yield
        finally:
            await serving.scheduler.stop()
            serving.close()

    app = FastAPI(title="HF baseline server (llm-serving-rig)", version="0.1.0", lifespan=lifespan)
    app.state.serving = serving
    errors.install_handlers(app, on_client_error=serving.metrics.on_client_error)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes, on_reject=serving.metrics.on_client_error)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(serving.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=serving.served_model_name, max_model_len=serving.runner.max_model_len)])

    _add_openai_routes(app, serving)
    return app


def _add_openai_routes(app: FastAPI, serving: OpenAIServing) -> None:
    """The OpenAI endpoints (completions, chat completions) and vLLM's /tokenize."""

    @app.post("/v1/completions", responses=ERROR_RESPONSES)
    async def completions(req: CompletionRequest, request: Request) -> Response:
        serving.check_model(req.model)
        prompt_ids = await serving.completion_prompt(req)
        params = serving.sampling_params(req, len(prompt_ids), COMPLETIONS_DEFAULT_MAX_TOKENS)
        seq, queue = serving.submit(prompt_ids, params, "cmpl")
        return await _respond(serving, request, seq, queue, req, chat=False)

    @app.post("/v1/chat/completions", responses=ERROR_RESPONSES)
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Response:
        serving.check_model(req.model)
        prompt_ids = await serving.chat_prompt(req.messages)
        params = serving.sampling_params(req, len(prompt_ids), None)
        seq, queue = serving.submit(prompt_ids, params, "chatcmpl")
        return await _respond(serving, request, seq, queue, req, chat=True)

    @app.post("/tokenize", responses=ERROR_RESPONSES)
    async def tokenize(req: TokenizeRequest) -> dict[str, Any]:
        """vLLM-compatible: lets a client count tokens exactly as this server does."""
        if req.model is not None:
            serving.check_model(req.model)
        if req.messages is not None:
            tokens = await serving.chat_prompt(req.messages)
        elif req.prompt is not None:
            serving.check_prompt_chars(len(req.prompt), "prompt")
            tokens = await serving.off_loop(serving.runner.encode, req.prompt, req.add_special_tokens)
        else:
            raise errors.bad_request("Send either `prompt` or `messages`.", "prompt")
        return {"count": len(tokens), "max_model_len": serving.runner.max_model_len, "tokens": tokens}
