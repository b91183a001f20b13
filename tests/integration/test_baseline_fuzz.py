"""Schemathesis against the server's own OpenAPI schema: no generated request may cause a 5xx.

The server here is the real baseline code on a random-weight, one-layer model with the real
tokenizer, so that the ~1,000 generated requests (valid and invalid) finish in a couple of
minutes on two cores. This tests the HTTP and validation layer, not answer quality.
"""

from __future__ import annotations

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
