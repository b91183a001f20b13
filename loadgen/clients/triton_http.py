"""Triton's HTTP generate extension: ``POST /v2/models/{model}/generate_stream``.

This is how TensorRT-LLM's ``ensemble`` / ``tensorrt_llm_bls`` models are driven over HTTP:
inputs by name (``text_input``, ``max_tokens``, ``stream``...), one SSE event per response
with ``text_output``, and NO ``[DONE]``: the stream simply ends. Errors arrive as
``data: {"error": "..."}`` after HTTP 200. A streaming TensorRT-LLM model sends one
response per generated token, so each event counts as one token (marked as an
assumption in the record, since Triton reports no usage). Fixed output lengths
(``request.ignore_eos``, the default) are asked as ``min_tokens = max_tokens``: TensorRT-LLM's
ensemble and BLS models declare that optional input (named ``min_length`` before TensorRT-LLM
0.13 — rename it through ``request.extra_body`` for such deployments), and so does the rig's
CPU model. Triton rejects inputs a model does not declare, so nothing else is sent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from loadgen.clients.base import (
    HTTPStreamClient,
    ProtocolError,
    RequestSpec,
    StreamError,
    loads_event,
    with_extra,
)
from loadgen.record import Attempt
from loadgen.registry import CLIENTS


@CLIENTS.register("triton-generate")
class TritonGenerateClient(HTTPStreamClient):
    kind: ClassVar[str] = "triton-generate"
    requires_done: ClassVar[bool] = False

    @property
    def url_path(self) -> str:
        return f"/v2/models/{self.options.model}/generate_stream"

    def body(self, spec: RequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "text_input": spec.prompt,
            "max_tokens": spec.max_tokens,
            "stream": True,
            "exclude_input_in_output": True,
            "temperature": self.options.temperature,
        }
        if self.options.ignore_eos:
            body["min_tokens"] = spec.max_tokens
        return with_extra(body, self.options.extra_body)

    def on_event(self, payload: bytes, now_ns: int, attempt: Attempt) -> bool:
        event = loads_event(payload)
        if "error" in event:
            raise StreamError(f"error event after HTTP 200: {event['error']}")
        if "text_output" not in event:
            raise ProtocolError(f"generate_stream event without text_output: {payload[:80]!r}")
        text = event["text_output"]
        if isinstance(text, list):  # batched output shape [1]
            text = text[0] if text else ""
        if attempt.text_parts is not None and text:
            attempt.text_parts.append(text)
        attempt.chunk_tokens_exact = False
        attempt.chunk(now_ns, 1, bool(text))
        return False

    def finish(self, attempt: Attempt, saw_end: bool) -> None:
        attempt.output_tokens = sum(attempt.chunk_tokens)
