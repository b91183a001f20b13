"""The real vLLM (CPU) started with ``--api-key``: the load generator's key handling against the server
that enforces it. One vLLM start (~2–3 min here) for every check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.vllm.launch import VLLM_PYTHON, vllm_argv, vllm_env
from loadgen.api import RECORDS_FILE, run
from loadgen.config import Profile
from loadgen.sinks.jsonl import read_records
from stack.process import ManagedProcess, free_port

KEY = "sk-vllm-test-5c1d8e2a"
SERVED = "smollm2"


def profile(url: str, folder: Path, **request: object) -> Profile:
    dataset = folder / "prompts.json"
    dataset.write_text(json.dumps([{"id": str(i), "conversations": [
        {"from": "human", "value": f"Name a colour, number {i}."}, {"from": "gpt", "value": "x"}]} for i in range(4)]))
    return Profile.model_validate({
        "model": SERVED, "targets": [{"name": "vllm", "kind": "openai-chat", "url": url}],
        "prompts": {"source": "sharegpt", "dataset": str(dataset), "output_tokens": 4},
        "load": {"concurrency": 2, "requests": 4}, "metrics": {"enabled": False}, "request": request})


def test_vllm_with_an_api_key(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm`")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(name="vLLM (CPU, --api-key)",
                          argv=[*vllm_argv(model_dir, port, SERVED), "--api-key", KEY],
                          log_path=tmp_path / "vllm.log", ready_url=f"{url}/health", env=vllm_env(),
                          ready_timeout_s=420)
    monkeypatch.setenv("VLLM_TEST_KEY", KEY)
    with proc:
        refused = run(profile(url, tmp_path), tmp_path / "nokey", report=False)
        accepted = run(profile(url, tmp_path, api_key_env="VLLM_TEST_KEY"), tmp_path / "key")
    # Without the key: every request a classified http_4xx carrying vLLM's own message.
    assert len(refused.records) == 4
    assert all(r.error == "http_4xx" and r.status == 401 and "Unauthorized" in (r.error_detail or "")
               for r in refused.records), [r.error_detail for r in refused.records]
    # With it: success, and the key is in no file of the run.
    assert len(accepted.records) == 4 and all(r.ok and r.output_tokens == 4 for r in accepted.records)
    assert list(read_records(tmp_path / "key" / RECORDS_FILE))
    for path in (tmp_path / "key").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"{path.name} holds the key"
