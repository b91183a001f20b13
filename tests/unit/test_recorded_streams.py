"""Golden tests: the SSE reader and the clients on byte streams recorded from the real engines.

The fixtures (``tests/fixtures/streams``) are vLLM's, the baseline's and Triton's own bytes, recorded
once by ``python -m tests.fixtures.record_streams``; each comes with the result a deliberately simple
reader worked out. Here the load generator's reader must reach the same result however the bytes are
split across reads: whole, byte by byte, and at random cut points.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loadgen.clients.base import ClientOptions, _SSEResponse
from loadgen.clients.openai import ChatClient, CompletionsClient
from loadgen.clients.triton_http import TritonGenerateClient
from loadgen.record import Attempt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "streams"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def client_for(name: str, meta: dict) -> object:
    options = ClientOptions(model=meta["request"].get("model", "ensemble"))
    if meta["engine"] == "triton":
        return TritonGenerateClient("http://x", options)
    return ChatClient("http://x", options) if "chat" in name else CompletionsClient("http://x", options)


def read(name: str, pieces: list[bytes]) -> Attempt:
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    client = client_for(name, meta)
    attempt = Attempt(intended_ns=0, text_parts=[])
    reader = _SSEResponse(client, attempt)  # type: ignore[arg-type]
    reader.on_headers(meta["status"], {}, 1)
    for t, piece in enumerate(pieces, start=2):
        reader.on_body(piece, t)
    reader.parser.close()
    client.finish(attempt, reader.saw_end)  # type: ignore[attr-defined]
    return attempt


def splits(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randint(1, 40))))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def test_fixtures_cover_every_recorded_engine() -> None:
    engines = {json.loads((FIXTURES / f"{n}.json").read_text())["engine"] for n in NAMES}
    assert engines == {"vllm", "triton", "baseline"}, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_recorded_stream_read_whole_split_and_byte_by_byte(name: str) -> None:
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    body = (FIXTURES / f"{name}.sse").read_bytes()
    expected = meta["expected"]
    ways = {"whole": [body], "bytes": [body[i:i + 1] for i in range(len(body))],
            **{f"random{s}": splits(body, s) for s in range(5)}}
    for how, pieces in ways.items():
        attempt = read(name, pieces)
        assert attempt.error is None, (how, attempt.error_detail)
        assert attempt.output_tokens == expected["output_tokens"], how
        assert "".join(attempt.text_parts or []) == expected["text"], how
        assert len(attempt.chunk_ns) == expected["events"] - expected["done"], how
        if meta["engine"] != "triton":
            assert attempt.prompt_tokens == expected["prompt_tokens"], how
            assert attempt.chunk_tokens_exact, how
        if expected.get("role_only_first"):
            # the role-only first chunk is a chunk, not the first token
            first = next(i for i, tokens in enumerate(attempt.chunk_tokens) if tokens)
            assert attempt.chunk_tokens[0] == 0 and first > 0, how
            assert attempt.first_token_ns == attempt.chunk_ns[first], how
