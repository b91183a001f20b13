"""OpenAI ``/v1/completions`` and ``/v1/chat/completions`` streaming clients (vLLM, the baseline).

Token accounting, the part other tools get wrong:
- a chat stream's first chunk is often role-only (``{"role": "assistant", "content": ""}``),
  sometimes sent before the prompt is even processed: it is a chunk, never a token;
- a chunk may carry several tokens. We ask for ``stream_options.continuous_usage_stats``
  (vLLM's cumulative usage in every chunk) and take each chunk's token count as the
  growth of ``completion_tokens``; a server that ignores the option gets one token per
  output-bearing chunk, and the record says the counts were assumed
  (``chunk_tokens_exact = False``);
- output tokens come from the final ``usage`` (``stream_options.include_usage``); prompt tokens
  served from the prefix cache from ``usage.prompt_tokens_details.cached_tokens`` when the
  server reports them (vLLM with ``--enable-prompt-tokens-details``);
- an ``{"error": ...}`` object after HTTP 200 is a stream error, not the end of a success.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loadgen.clients.base import HTTPStreamClient, RequestSpec, StreamError, loads_event, with_extra
from loadgen.record import Attempt
from loadgen.registry import CLIENTS


class _OpenAIStream(HTTPStreamClient):
    requires_done: ClassVar[bool] = True
    has_tokenize: ClassVar[bool] = True  # vLLM and the baseline count tokens at /tokenize
    path: ClassVar[str] = ""

    @property
    def url_path(self) -> str:
        return self.path

    def common_body(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.options.model,
            "max_tokens": spec.max_tokens,
            "temperature": self.options.temperature,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        if self.options.ignore_eos:
            # vLLM's ignore_eos, plus min_tokens for servers that only know that one.
            body["ignore_eos"] = True
            body["min_tokens"] = spec.max_tokens
        return with_extra(body, self.options.extra_body)

    def output_of(self, choice: dict[str, Any]) -> tuple[str | None, bool]:
        """(content text, whether the chunk carries output of any channel)."""
        raise NotImplementedError

    def on_event(self, payload: bytes, now_ns: int, attempt: Attempt) -> bool:
        if payload == b"[DONE]":
            return True
        event = loads_event(payload)
        error = event.get("error")
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamError(f"error event after HTTP 200: {message}")
        choices = event.get("choices")
        usage = event.get("usage")
        text: str | None = None
        any_output = False
        if choices:
            choice = choices[0]
            text, any_output = self.output_of(choice)
            if choice.get("finish_reason"):
                attempt.finish_reason = choice["finish_reason"]
            if text and attempt.text_parts is not None:
                attempt.text_parts.append(text)
        if usage:
            completion = usage.get("completion_tokens")
            if choices and completion is not None:
                tokens = completion - (attempt.output_tokens or 0)  # growth of the cumulative count
            else:
                tokens = 0  # usage-only chunk
            attempt.output_tokens = completion
            attempt.prompt_tokens = usage.get("prompt_tokens", attempt.prompt_tokens)
            details = usage.get("prompt_tokens_details")
            if details and details.get("cached_tokens") is not None:
                attempt.cached_tokens = details["cached_tokens"]
        elif choices:
            tokens = 1 if any_output else 0
            if any_output:
                attempt.chunk_tokens_exact = False
        else:
            tokens = 0
        attempt.chunk(now_ns, tokens, bool(text))
        return False


@CLIENTS.register("openai-completions")
class CompletionsClient(_OpenAIStream):
    kind: ClassVar[str] = "openai-completions"
    path: ClassVar[str] = "/v1/completions"

    def body(self, spec: RequestSpec) -> dict[str, Any]:
        return {**self.common_body(spec), "prompt": spec.prompt}

    def output_of(self, choice: dict[str, Any]) -> tuple[str | None, bool]:
        text = choice.get("text")
        # "" without a finish_reason is a token whose characters are not complete yet.
        return text, bool(text) or (text == "" and choice.get("finish_reason") is None)


@CLIENTS.register("openai-chat")
class ChatClient(_OpenAIStream):
    kind: ClassVar[str] = "openai-chat"
    path: ClassVar[str] = "/v1/chat/completions"

    def body(self, spec: RequestSpec) -> dict[str, Any]:
        messages = list(spec.messages) if spec.messages else [{"role": "user", "content": spec.prompt}]
        return {**self.common_body(spec), "messages": messages}

    def output_of(self, choice: dict[str, Any]) -> tuple[str | None, bool]:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        other = delta.get("reasoning_content") or delta.get("reasoning") or delta.get("tool_calls")
        return text, bool(text) or bool(other)
