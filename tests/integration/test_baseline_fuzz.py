"""Schemathesis against the server's own OpenAPI schema: no generated request may cause a 5xx.

The server here is the real baseline code on a random-weight, one-layer model with the real
tokenizer, so that the ~1,000 generated requests (valid and invalid) finish in a couple of
minutes on two cores. This tests the HTTP and validation layer, not answer quality.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.integration.servers import Server

MIN_REQUESTS = 500
EXAMPLES_PER_MODE = 60


def test_no_generated_request_causes_a_server_error(tiny_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{tiny_server.url}/openapi.json")
    sent: list[tuple[str, str, int]] = []
    failures: list[str] = []

    def served_model(case):
        # Valid requests name the served model; otherwise nearly all would end as 404s and
        # the generation paths would never be fuzzed.
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = tiny_server.model
        return case

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = schema.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE:
            strategy = strategy.map(served_model)

        @settings(max_examples=EXAMPLES_PER_MODE * 6, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def send(case) -> None:
            response = case.call(base_url=tiny_server.url, timeout=60)
            sent.append((case.method, case.path, response.status_code))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
                                f"\n  body: {str(case.body)[:300]}")
            elif response.status_code >= 400 and case.path.startswith(("/v1", "/tokenize")):
                error = response.json().get("error", {})
                assert error.get("message"), f"{case.method} {case.path}: 4xx without an OpenAI error body"

        send()

    assert not failures, "\n".join(failures[:10])
    assert len(sent) >= MIN_REQUESTS, f"only {len(sent)} requests were generated"
    # Both generation paths ran for real, and invalid requests were exercised.
    ok_paths = {path for _, path, status in sent if status == 200}
    assert {"/v1/completions", "/v1/chat/completions"} <= ok_paths, ok_paths
    assert any(status == 400 for _, _, status in sent)


SURROGATE = "x \\ud800 y"  # JSON text: the escape decodes to a lone surrogate, which UTF-8 cannot encode
INVALID_TEXT_BODIES = [
    ("/v1/completions", "prompt", '{"model": "M", "prompt": "S", "max_tokens": 2}'),
    ("/v1/completions", "stop", '{"model": "M", "prompt": "hi", "max_tokens": 2, "stop": "S"}'),
    ("/v1/completions", "stop.1", '{"model": "M", "prompt": "hi", "max_tokens": 2, "stop": ["a", "S"]}'),
    ("/v1/completions", "user", '{"model": "M", "prompt": "hi", "max_tokens": 2, "user": "S"}'),
    ("/v1/completions", "model", '{"model": "S", "prompt": "hi", "max_tokens": 2}'),
    ("/v1/chat/completions", "messages.0.content",
     '{"model": "M", "messages": [{"role": "user", "content": "S"}], "max_tokens": 2}'),
    ("/v1/chat/completions", "messages.0.content.0.text",
     '{"model": "M", "messages": [{"role": "user", "content": [{"type": "text", "text": "S"}]}], "max_tokens": 2}'),
    ("/v1/chat/completions", "stop", '{"model": "M", "messages": [{"role": "user", "content": "hi"}], "stop": "S"}'),
    ("/tokenize", "prompt", '{"model": "M", "prompt": "S"}'),
    ("/tokenize", "messages.0.content", '{"model": "M", "messages": [{"role": "user", "content": "S"}]}'),
]


def test_invalid_unicode_in_any_string_field_is_a_400_naming_it(tiny_server: Server) -> None:
    """Every string field, in every endpoint: a lone surrogate is a 400 in OpenAI's shape naming the field, never a
    500 nor internal text (issue 29, item 4)."""
    for path, field, body in INVALID_TEXT_BODIES:
        raw = body.replace('"M"', f'"{tiny_server.model}"').replace('"S"', f'"{SURROGATE}"')
        response = httpx.post(f"{tiny_server.url}{path}", content=raw, headers={"content-type": "application/json"},
                              timeout=60)
        assert response.status_code == 400, (path, field, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert error["param"] == field and error["code"] == "invalid_value", (path, field, error)
        assert "lone surrogate" in error["message"] and "Error" not in error["message"], error
