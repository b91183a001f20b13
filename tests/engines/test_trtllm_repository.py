"""The rendered TensorRT-LLM model repository in the real ``tritonserver`` (CPU, python backend).

Everything in engines/trtllm/repository.py except the C++ ``tensorrtllm`` backend runs here:
our preprocessing, postprocessing and BLS models, the ensemble's wiring, Triton's handling of
the configs, and the load generator's Triton clients against them. The ``tensorrt_llm`` model
is replaced by tests/fixtures/tensorrt_llm_contract_model.py, which answers with the same
tensors over the real small model — so these tests say nothing about TensorRT-LLM itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engines.triton.launch import TritonInstall, TritonPorts, triton_argv
from engines.trtllm import repository
from loadgen.api import run
from loadgen.config import Profile
from loadgen.record import RequestRecord
from stack.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_MODEL = ROOT / "tests" / "fixtures" / "tensorrt_llm_contract_model.py"
PROMPT = "The three primary colors are"
N = 12


@pytest.fixture(scope="module")
def triton(model_dir: Path, tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("trtllm") / "repository"
    repository.render(repo, repository.RepositorySettings(engine_dir=repo / "no-engine-on-cpu",
                                                          tokenizer_dir=model_dir.resolve(), max_batch_size=8))
    config = repo / "tensorrt_llm" / "config.pbtxt"
    text = config.read_text()
    assert 'backend: "tensorrtllm"' in text
    config.write_text(text.replace('backend: "tensorrtllm"', 'backend: "python"'))  # same tensors, CPU model
    shutil.copyfile(CONTRACT_MODEL, repo / "tensorrt_llm" / "1" / "model.py")
    install = TritonInstall.find()
    ports = TritonPorts(free_port(), free_port(), free_port())
    proc = ManagedProcess(name="Triton (rendered TensorRT-LLM repository)", argv=triton_argv(install, ports, repo),
                          log_path=log_dir / "triton-trtllm-repo.log",
                          ready_url=f"http://127.0.0.1:{ports.http}/v2/health/ready",
                          env=install.env(model_dir, ROOT), ready_timeout_s=240)
    with proc:
        yield f"127.0.0.1:{ports.http}|127.0.0.1:{ports.grpc}"


def http(triton: str) -> str:
    return "http://" + triton.split("|")[0]


def grpc(triton: str) -> str:
    return "grpc://" + triton.split("|")[1]


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> str:
    """The model's own greedy text for PROMPT, exactly N tokens (EOS banned before N, as min_tokens asks)."""
    from servers.hf.runner import ModelRunner
    from servers.hf.sequence import SamplingParams

    runner = ModelRunner(model_dir)
    params = SamplingParams(max_tokens=N, temperature=0.0)
    logits, cache = runner.prefill(runner.encode(PROMPT))
    ids: list[int] = []
    while len(ids) < N:
        ids.append(runner.sample(logits, params, None, runner.eos_ids))
        logits = runner.decode(ids[-1], cache)
    return runner.tokenizer.decode(ids, skip_special_tokens=True)


def stream(triton: str, model: str, expect_status: int = 200, **extra: Any) -> list[dict[str, Any]]:
    body = {"text_input": PROMPT, "max_tokens": N, "min_tokens": N, "temperature": 0.0, "stream": True, **extra}
    events = []
    with httpx.stream("POST", f"{http(triton)}/v2/models/{model}/generate_stream", json=body, timeout=120) as r:
        assert r.status_code == expect_status, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_streams_one_response_per_token_with_the_models_greedy_text(triton: str, reference: str, model: str) -> None:
    events = stream(triton, model)
    assert all("error" not in e for e in events), events
    assert len(events) == N
    assert "".join(e["text_output"] for e in events) == reference


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_non_streaming_answers_once_without_the_prompt(triton: str, reference: str, model: str) -> None:
    body = {"text_input": PROMPT, "max_tokens": N, "min_tokens": N, "temperature": 0.0}
    r = httpx.post(f"{http(triton)}/v2/models/{model}/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["text_output"] in (reference, [reference])


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_bad_requests_fail_with_a_reason(triton: str, model: str) -> None:
    missing = httpx.post(f"{http(triton)}/v2/models/{model}/generate", json={"text_input": PROMPT}, timeout=60)
    assert missing.status_code == 400 and "max_tokens" in missing.text
    zero = stream(triton, model, expect_status=400, max_tokens=0, min_tokens=0)  # an error before any output
    assert len(zero) == 1 and "max_tokens must be at least 1" in zero[0]["error"]


def run_profile(tmp_path: Path, profile: dict[str, Any]) -> list[RequestRecord]:
    return run(Profile.model_validate(profile), tmp_path / "out").records


def test_an_input_the_repository_does_not_declare_is_refused_over_grpc(triton: str, model_dir: Path,
                                                                       tmp_path: Path) -> None:
    """TensorRT-LLM 0.x called ``seed`` ``random_seed``; over gRPC Triton refuses the unknown name (over HTTP's
    generate extension unknown fields become request parameters and are ignored)."""
    records = run_profile(tmp_path, {
        "targets": [{"name": "bls-grpc", "kind": "triton-grpc", "url": grpc(triton), "model": "tensorrt_llm_bls"}],
        "prompts": {"input_tokens": 16, "output_tokens": 4, "count": 1, "tokenizer": str(model_dir)},
        "load": {"type": "concurrency", "concurrency": 1, "requests": 1},
        "request": {"extra_body": {"random_seed": 1}}, "metrics": {"enabled": False}})
    assert [(r.ok, r.error) for r in records] == [(False, "http_4xx")]
    assert "random_seed" in (records[0].error_detail or "")


def test_the_load_generators_triton_clients_work_against_the_repository(triton: str, model_dir: Path,
                                                                        tmp_path: Path) -> None:
    profile = {
        "targets": [{"name": "ensemble-http", "kind": "triton-generate", "url": http(triton), "model": "ensemble"},
                    {"name": "ensemble-grpc", "kind": "triton-grpc", "url": grpc(triton), "model": "ensemble"},
                    {"name": "bls-http", "kind": "triton-generate", "url": http(triton), "model": "tensorrt_llm_bls"},
                    {"name": "bls-grpc", "kind": "triton-grpc", "url": grpc(triton), "model": "tensorrt_llm_bls"}],
        "prompts": {"input_tokens": 16, "output_tokens": 8, "count": 4, "tokenizer": str(model_dir)},
        "load": {"type": "concurrency", "concurrency": 2, "requests": 4},
        "metrics": {"enabled": False}}
    records = run_profile(tmp_path, profile)
    assert len(records) == 16
    for r in records:
        assert r.ok, (r.target, r.error, r.error_detail)
        assert r.output_tokens == 8, r.target
