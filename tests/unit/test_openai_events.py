"""How the OpenAI clients turn chunks into tokens: role-only chunks, cumulative usage,
servers without per-chunk usage, error objects after HTTP 200, reasoning channels."""

from __future__ import annotations

import json

import pytest

from loadgen.clients.base import ClientOptions, ProtocolError, StreamError
from loadgen.clients.openai import ChatClient, CompletionsClient
from loadgen.record import Attempt

OPTIONS = ClientOptions(model="m")


def feed(client, events: list[dict | str]) -> tuple[Attempt, bool]:
    attempt = Attempt(intended_ns=0)
    ended = False
    for t, event in enumerate(events, start=1):
        payload = event.encode() if isinstance(event, str) else json.dumps(event).encode()
        ended = client.on_event(payload, t * 1000, attempt) or ended
    return attempt, ended


def chat(delta: dict, usage: dict | None = None, finish: str | None = None) -> dict:
    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        event["usage"] = usage
    return event


def usage(completion: int, prompt: int = 5) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def test_role_chunk_then_cumulative_usage_counts_tokens_exactly() -> None:
    attempt, ended = feed(ChatClient("http://x", OPTIONS), [
        chat({"role": "assistant", "content": ""}, usage(0)),
        chat({"content": "The"}, usage(1)),
        chat({"content": " big cat"}, usage(3)),  # two tokens in one chunk
        chat({"content": ""}, usage(4), finish="stop"),  # EOS: a token without text
        {"choices": [], "usage": usage(4)},
        "[DONE]",
    ])
    assert ended
    assert attempt.chunk_tokens == [0, 1, 2, 1, 0]
    assert attempt.first_token_ns == 2000 and attempt.first_content_ns == 2000  # not the role chunk at 1000
    assert (attempt.output_tokens, attempt.prompt_tokens, attempt.finish_reason) == (4, 5, "stop")
    assert attempt.chunk_tokens_exact


def test_without_per_chunk_usage_one_token_per_output_chunk_is_assumed() -> None:
    attempt, _ = feed(ChatClient("http://x", OPTIONS), [
        chat({"role": "assistant", "content": ""}),
        chat({"content": "a"}),
        chat({"content": "b"}, finish="length"),
        {"choices": [], "usage": usage(2)},
        "[DONE]",
    ])
    assert attempt.chunk_tokens == [0, 1, 1, 0]
    assert attempt.output_tokens == 2 and not attempt.chunk_tokens_exact


def test_reasoning_tokens_are_tokens_but_not_content() -> None:
    attempt, _ = feed(ChatClient("http://x", OPTIONS), [
        chat({"reasoning_content": "hmm"}),
        chat({"content": "Yes"}),
    ])
    assert attempt.first_token_ns == 1000 and attempt.first_content_ns == 2000


def test_completions_text_chunks() -> None:
    attempt, _ = feed(CompletionsClient("http://x", OPTIONS), [
        {"choices": [{"index": 0, "text": " a", "finish_reason": None}], "usage": usage(1)},
        {"choices": [{"index": 0, "text": " b", "finish_reason": "length"}], "usage": usage(2)},
        "[DONE]",
    ])
    assert attempt.chunk_tokens == [1, 1] and attempt.finish_reason == "length"


def test_error_object_after_200_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="out of memory"):
        feed(ChatClient("http://x", OPTIONS), [chat({"content": "a"}), {"error": {"message": "out of memory"}}])


def test_malformed_event_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        feed(ChatClient("http://x", OPTIONS), ['{"choices": [}'])


def test_request_body_asks_for_fixed_length_and_usage() -> None:
    from loadgen.clients.base import RequestSpec

    body = CompletionsClient("http://x", OPTIONS).body(RequestSpec(prompt_id="p", prompt="hi", max_tokens=9))
    assert body["max_tokens"] == 9 and body["ignore_eos"] and body["min_tokens"] == 9
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_extra_body_replaces_adds_and_removes_fields() -> None:
    from loadgen.clients.base import RequestSpec

    options = ClientOptions(model="m", extra_body={"stream_options": None, "top_k": 5, "temperature": 0.7})
    body = CompletionsClient("http://x", options).body(RequestSpec(prompt_id="p", prompt="hi", max_tokens=4))
    assert "stream_options" not in body and body["top_k"] == 5 and body["temperature"] == 0.7
