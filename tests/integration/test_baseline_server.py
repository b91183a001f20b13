"""The baseline server as a real process on the real SmolLM2-135M-Instruct (CPU, fp32)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.helpers import metric, raw_request, read_until, stream, wait_for
from tests.integration.servers import MAX_QUEUE, Server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LONG = {"max_tokens": 2000, "ignore_eos": True, "temperature": 0}  # minutes of work: only ever cancelled


@pytest.fixture
def client(baseline: Server) -> Iterator[httpx.Client]:
    with baseline.client() as c:
        yield c
    # Leave the server idle for the next test: every request a test opened is gone by now.
    with baseline.client() as c:
        wait_for(lambda: metric(c, "hf:num_requests_running") == 0 and metric(c, "hf:num_requests_waiting") == 0,
                 timeout=60, what="the server to become idle")


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_models_lists_the_served_model(client: httpx.Client) -> None:
    data = client.get("/v1/models").json()
    assert [m["id"] for m in data["data"]] == ["smollm2"]
    assert data["data"][0]["max_model_len"] == 8192


def test_greedy_chat_answers_paris(client: httpx.Client) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION, "temperature": 0})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "Paris" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_stream_concatenates_to_the_non_streamed_text(client: httpx.Client, chat: bool) -> None:
    if chat:
        path, body = "/v1/chat/completions", {"messages": QUESTION}
    else:
        path, body = "/v1/completions", {"prompt": "The three primary colours are"}
    body = {**body, "model": "smollm2", "temperature": 0, "max_tokens": 40, "stream_options": {"include_usage": True}}
    whole = client.post(path, json=body).json()
    streamed = stream(client, path, body)
    expected = whole["choices"][0]["message"]["content"] if chat else whole["choices"][0]["text"]
    assert streamed.text(chat) == expected
    assert streamed.usage == whole["usage"]


def test_chat_stream_has_openai_chunk_shape(client: httpx.Client) -> None:
    s = stream(client, "/v1/chat/completions", {"model": "smollm2", "messages": QUESTION, "temperature": 0,
                                                "stream_options": {"include_usage": True}})
    assert s.status == 200 and s.done
    role, *tokens, usage = s.chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == role["id"] for c in s.chunks)
    # One chunk per generated token; the last token's chunk carries the finish reason.
    assert len(tokens) == usage["usage"]["completion_tokens"]
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None] * (len(tokens) - 1) + ["stop"]
    assert usage["choices"] == []


def test_continuous_usage_counts_every_chunk(client: httpx.Client) -> None:
    s = stream(client, "/v1/completions", {"model": "smollm2", "prompt": "Hello", "max_tokens": 5, "ignore_eos": True,
                                           "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    counts = [c["usage"]["completion_tokens"] for c in s.content_chunks]
    assert counts == [1, 2, 3, 4, 5]
    assert s.usage["completion_tokens"] == 5


def test_no_usage_chunk_unless_asked(client: httpx.Client) -> None:
    s = stream(client, "/v1/completions", {"model": "smollm2", "prompt": "Hello", "max_tokens": 3})
    assert s.done and s.usage is None and len(s.content_chunks) == 3


def test_usage_equals_the_tokenizers_counts(client: httpx.Client, tokenizer) -> None:
    prompt = "Write one sentence about the sea."
    reply = client.post("/v1/completions", json={"model": "smollm2", "prompt": prompt, "max_tokens": 30,
                                                 "temperature": 0}).json()
    assert reply["usage"]["prompt_tokens"] == len(tokenizer(prompt)["input_ids"])

    chat = client.post("/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION,
                                                     "temperature": 0}).json()
    rendered = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True)
    rendered = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
    assert chat["usage"]["prompt_tokens"] == len(rendered)
    text = chat["choices"][0]["message"]["content"]
    # Finished by EOS: the EOS token counts (as in vLLM) but renders no text.
    assert chat["usage"]["completion_tokens"] == len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
    assert chat["usage"]["total_tokens"] == chat["usage"]["prompt_tokens"] + chat["usage"]["completion_tokens"]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "stream"])
def test_ignore_eos_yields_exactly_max_tokens(client: httpx.Client, streaming: bool) -> None:
    # Unconstrained, this greedy answer ends after 8 tokens.
    body = {"model": "smollm2", "messages": QUESTION, "temperature": 0, "max_tokens": 24, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    if streaming:
        s = stream(client, "/v1/chat/completions", body)
        assert len(s.content_chunks) == 24 + 1  # + the role chunk
        assert s.usage["completion_tokens"] == 24
        assert s.content_chunks[-1]["choices"][0]["finish_reason"] == "length"
    else:
        reply = client.post("/v1/chat/completions", json=body).json()
        assert reply["usage"]["completion_tokens"] == 24
        assert reply["choices"][0]["finish_reason"] == "length"


def test_min_tokens_delays_eos(client: httpx.Client) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION, "temperature": 0,
                                                      "min_tokens": 14, "max_tokens": 40}).json()
    assert reply["usage"]["completion_tokens"] >= 14


def test_stop_string_truncates_output(client: httpx.Client) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION, "temperature": 0,
                                                      "stop": [" Paris"]}).json()
    assert reply["choices"][0]["message"]["content"] == "The capital of France is"
    assert reply["choices"][0]["finish_reason"] == "stop"


def test_seeded_sampling_is_reproducible(client: httpx.Client) -> None:
    body = {"model": "smollm2", "prompt": "My favourite animal is", "max_tokens": 12, "temperature": 1.0,
            "seed": 1234}
    first = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    second = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert first == second


def test_greedy_output_equals_hf_generate(client: httpx.Client, model_dir, tokenizer) -> None:
    """The naive scheduler's decode loop is HF generate, token for token."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    for prompt in ("The history of Rome", "def fibonacci(n):", "Les fleurs du"):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False)
        expected = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        reply = client.post("/v1/completions", json={"model": "smollm2", "prompt": prompt, "max_tokens": 20,
                                                     "temperature": 0, "ignore_eos": True}).json()
        assert reply["choices"][0]["text"] == expected, prompt


def test_health_answers_fast_while_generations_run_and_queue(baseline: Server, client: httpx.Client) -> None:
    with sockets() as opened:
        for _ in range(1 + MAX_QUEUE):
            opened.append(raw_request(baseline.url, "/v1/completions",
                                      {"model": "smollm2", "prompt": "Tell a long story.", "stream": True, **LONG}))
        wait_for(lambda: metric(client, "hf:num_requests_running") == 1
                 and metric(client, "hf:num_requests_waiting") == MAX_QUEUE, what="1 running + 2 waiting")
        read_until(opened[0], b'"text"', count=3)  # decoding is under way
        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
        assert max(latencies) < 0.100, f"/health took up to {max(latencies) * 1000:.0f} ms"


def test_disconnect_mid_stream_frees_the_slot(baseline: Server, client: httpx.Client) -> None:
    cancelled_before = metric(client, "hf:requests_total", outcome="cancelled")
    with sockets() as opened:
        first = raw_request(baseline.url, "/v1/completions",
                            {"model": "smollm2", "prompt": "Tell a long story.", "stream": True, **LONG})
        opened.append(first)
        read_until(first, b'"text"', count=3)

        second_first_token: list[float] = []

        def second() -> None:
            with baseline.client() as c, c.stream("POST", "/v1/completions", json={
                    "model": "smollm2", "prompt": "Hi", "max_tokens": 2, "stream": True}) as response:
                for line in response.iter_lines():
                    if '"text"' in line:
                        second_first_token.append(time.perf_counter())
                        break

        waiter = threading.Thread(target=second)
        waiter.start()
        wait_for(lambda: metric(client, "hf:num_requests_waiting") == 1, what="the second request to queue")
        time.sleep(0.5)
        assert not second_first_token, "the queued request started while the first was still running"
        closed_at = time.perf_counter()
        first.close()
        waiter.join(timeout=60)
        assert second_first_token, "the queued request never started after the first client left"
        # Without cancellation the first request would hold the model for minutes (2000 tokens).
        assert second_first_token[0] - closed_at < 10.0
    wait_for(lambda: metric(client, "hf:requests_total", outcome="cancelled") == cancelled_before + 1,
             what="the cancellation to be counted")


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_disconnect_while_queued_leaves_the_queue_at_once(baseline: Server, client: httpx.Client,
                                                         streaming: bool) -> None:
    cancelled_before = metric(client, "hf:requests_total", outcome="cancelled")
    with sockets() as opened:
        running = raw_request(baseline.url, "/v1/completions",
                              {"model": "smollm2", "prompt": "Tell a long story.", "stream": True, **LONG})
        opened.append(running)
        read_until(running, b'"text"')
        queued = raw_request(baseline.url, "/v1/completions",
                             {"model": "smollm2", "prompt": "Hi", "max_tokens": 5, "stream": streaming})
        wait_for(lambda: metric(client, "hf:num_requests_waiting") == 1, what="the request to queue")
        queued.close()
        wait_for(lambda: metric(client, "hf:num_requests_waiting") == 0, timeout=2.0,
                 what="the disconnected request to leave the queue")
        assert metric(client, "hf:num_requests_running") == 1  # the running one is untouched
        assert metric(client, "hf:requests_total", outcome="cancelled") == cancelled_before + 1


def test_full_queue_answers_429(baseline: Server, client: httpx.Client) -> None:
    rejected_before = metric(client, "hf:requests_total", outcome="rejected")
    with sockets() as opened:
        for _ in range(1 + MAX_QUEUE):
            opened.append(raw_request(baseline.url, "/v1/completions",
                                      {"model": "smollm2", "prompt": "Tell a long story.", "stream": True, **LONG}))
        wait_for(lambda: metric(client, "hf:num_requests_waiting") == MAX_QUEUE, what="a full queue")
        reply = client.post("/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION})
        assert reply.status_code == 429
        error = reply.json()["error"]
        assert error["code"] == "queue_full" and "queue" in error["message"]
        assert metric(client, "hf:requests_total", outcome="rejected") == rejected_before + 1


CHAT = {"model": "smollm2", "messages": QUESTION}
COMPLETION = {"model": "smollm2", "prompt": "Hello"}

BAD_INPUTS = [
    # (id, path, body (dict) or raw bytes, status, param)
    ("malformed-json", "/v1/chat/completions", b'{"model": "smollm2", "messages": [', 400, None),
    ("body-not-an-object", "/v1/completions", b"[1, 2, 3]", 400, None),
    ("missing-messages", "/v1/chat/completions", {"model": "smollm2"}, 400, "messages"),
    ("missing-model", "/v1/completions", {"prompt": "Hello"}, 400, "model"),
    ("messages-not-a-list", "/v1/chat/completions", {**CHAT, "messages": "hi"}, 400, "messages"),
    ("empty-messages", "/v1/chat/completions", {**CHAT, "messages": []}, 400, "messages"),
    ("unknown-role", "/v1/chat/completions", {**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 400,
     "messages.0.role"),
    ("max-tokens-string", "/v1/completions", {**COMPLETION, "max_tokens": "ten"}, 400, "max_tokens"),
    ("max-tokens-zero", "/v1/completions", {**COMPLETION, "max_tokens": 0}, 400, "max_tokens"),
    ("temperature-too-high", "/v1/completions", {**COMPLETION, "temperature": 5}, 400, "temperature"),
    ("top-p-zero", "/v1/completions", {**COMPLETION, "top_p": 0}, 400, "top_p"),
    ("n-two", "/v1/chat/completions", {**CHAT, "n": 2}, 400, "n"),
    ("min-tokens-over-max", "/v1/completions", {**COMPLETION, "max_tokens": 4, "min_tokens": 9}, 400, "min_tokens"),
    ("empty-stop-string", "/v1/completions", {**COMPLETION, "stop": [""]}, 400, "stop"),
    ("logprobs", "/v1/completions", {**COMPLETION, "logprobs": 3}, 400, "logprobs"),
    ("token-out-of-vocabulary", "/v1/completions", {**COMPLETION, "prompt": [1, 2, 10**9]}, 400, "prompt"),
    ("negative-token", "/v1/completions", {**COMPLETION, "prompt": [1, -5]}, 400, "prompt"),
    ("beyond-context", "/v1/completions", {**COMPLETION, "max_tokens": 9000}, 400, "max_tokens"),
    ("prompt-beyond-context", "/v1/completions", {**COMPLETION, "prompt": "hello " * 9000}, 400, "prompt"),
    ("unknown-model", "/v1/chat/completions", {**CHAT, "model": "gpt-17"}, 404, "model"),
]


@pytest.mark.parametrize(("path", "body", "status", "param"), [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_4xx_openai_error(client: httpx.Client, path: str, body, status: int,
                                           param: str | None) -> None:
    invalid_before = metric(client, "hf:requests_total", outcome="invalid")
    if isinstance(body, bytes):
        reply = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        reply = client.post(path, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"]
    assert error["param"] == param
    assert metric(client, "hf:requests_total", outcome="invalid") == invalid_before + 1


def test_wrong_method_and_unknown_route_are_json_errors(client: httpx.Client) -> None:
    for method, path, status in (("GET", "/v1/completions", 405), ("GET", "/v2/nothing", 404)):
        reply = client.request(method, path)
        assert reply.status_code == status
        assert reply.json()["error"]["message"]


def test_metrics_count_the_work_done(client: httpx.Client) -> None:
    before = {name: metric(client, name) for name in (
        "hf:generation_tokens_total", "hf:prompt_tokens_total", "hf:time_to_first_token_seconds_count",
        "hf:inter_token_latency_seconds_count", "hf:e2e_request_latency_seconds_count",
        "hf:request_queue_time_seconds_count")}
    reply = client.post("/v1/completions", json={"model": "smollm2", "prompt": "Count: one, two,", "max_tokens": 6,
                                                 "ignore_eos": True, "temperature": 0}).json()
    after = {name: metric(client, name) for name in before}
    delta = {name: after[name] - before[name] for name in before}
    assert delta == {
        "hf:generation_tokens_total": 6,
        "hf:prompt_tokens_total": reply["usage"]["prompt_tokens"],
        "hf:time_to_first_token_seconds_count": 1,
        "hf:inter_token_latency_seconds_count": 5,
        "hf:e2e_request_latency_seconds_count": 1,
        "hf:request_queue_time_seconds_count": 1,
    }
    assert metric(client, "hf:request_success_total", finished_reason="length") >= 1
