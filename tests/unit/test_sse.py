"""The shared SSE reader against byte streams shaped like vLLM's and Triton's (see FACTS.md),
split across reads at every possible position."""

from __future__ import annotations

import json

import pytest

from loadgen.clients.sse import SSEParser, SSEProtocolError

VLLM_CHAT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"The"},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" caf\xc3\xa9"},'
    b'"logprobs":null,"finish_reason":"length"}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,'
    b'"completion_tokens":2,"total_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)
TRITON = (
    b'data: {"model_name":"ensemble","model_version":"1","sequence_end":false,"sequence_id":0,'
    b'"text_output":"The"}\n\n'
    b'data: {"model_name":"ensemble","model_version":"1","sequence_end":false,"sequence_id":0,'
    b'"text_output":" capital"}\n\n'
)


def feed_split(stream: bytes, cut: int) -> list[bytes]:
    parser = SSEParser()
    events = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
    parser.close()
    return events


@pytest.mark.parametrize("stream", [VLLM_CHAT, TRITON], ids=["vllm-chat", "triton"])
def test_every_split_position_gives_the_same_events(stream: bytes) -> None:
    whole = feed_split(stream, len(stream))
    assert all(json.loads(e) for e in whole if e != b"[DONE]")
    for cut in range(len(stream) + 1):
        assert feed_split(stream, cut) == whole, cut


def test_byte_by_byte() -> None:
    parser = SSEParser()
    events = [e for i in range(len(VLLM_CHAT)) for e in parser.feed(VLLM_CHAT[i:i + 1])]
    assert len(events) == 5 and events[-1] == b"[DONE]"
    assert json.loads(events[2])["choices"][0]["delta"]["content"] == " café"


def test_several_events_in_one_read_and_no_done() -> None:
    events = SSEParser().feed(TRITON)
    assert [json.loads(e)["text_output"] for e in events] == ["The", " capital"]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_crlf_and_cr_line_ends_even_when_split(newline: bytes) -> None:
    stream = VLLM_CHAT.replace(b"\n", newline)
    expected = feed_split(VLLM_CHAT, len(VLLM_CHAT))
    for cut in range(len(stream) + 1):
        assert feed_split(stream, cut) == expected, cut


def test_comments_keepalives_and_other_fields_are_skipped() -> None:
    stream = b": ping\n\nevent: message\nid: 7\ndata: {\"a\":1}\n\n:keep-alive\n\nretry: 100\n\ndata: x\n\n"
    assert SSEParser().feed(stream) == [b'{"a":1}', b"x"]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert SSEParser().feed(b"data: line one\ndata: line two\ndata\n\n") == [b"line one\nline two\n"]


def test_data_without_space_after_colon() -> None:
    assert SSEParser().feed(b"data:{\"x\":2}\n\n") == [b'{"x":2}']


def test_stream_cut_inside_an_event_is_a_protocol_error() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"text_output": "The"}\n\ndata: {"text_out') == [b'{"text_output": "The"}']
    with pytest.raises(SSEProtocolError):
        parser.close()


def test_trailing_newline_only_is_fine() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\n\n") == [b"a"]
    parser.close()  # the extra blank line is not a cut event: no SSEProtocolError
