"""`docker compose up`, for real: the CPU flavour of the compose file (docker-compose.yml + docker-compose.cpu.yml)
is built, booted, loaded over every engine's protocols, checked in Prometheus, drilled with a killed vLLM, and torn
down without a trace (issue 25). Real engines in real containers; needs Docker (`make docker`, `make docker-images`:
`make test` does both). Results land in results/compose-smoke/ as `make compose-smoke` leaves them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from stack.compose import ROOT, SMOKE_EXIT_CODES, Stack, drill, smoke

pytestmark = pytest.mark.timeout(3600)  # a cold build of every image, then vLLM's warm-up, on two cores


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no Docker daemon answers: run `make docker` (installs Docker and starts dockerd)")
    stack = Stack(out=ROOT / "results" / "compose-smoke")
    shutil.rmtree(stack.out, ignore_errors=True)
    stack.down()  # a project left by an interrupted run starts from nothing
    try:
        stack.build()
        stack.up()
        yield stack
    finally:
        stack.save_logs(stack.out / "logs")
        stack.down()


def test_the_three_engines_answer_alike_over_every_protocol_and_prometheus_sees_it(stack: Stack) -> None:
    result = smoke(stack)
    failed = {name: check["seen"] for name, check in result["checks"].items() if not check["ok"]}
    assert failed == {} and result["exit_code"] in SMOKE_EXIT_CODES, json.dumps(result, indent=2)
    summary = json.loads((stack.out / "summary.json").read_text())
    assert set(summary["targets"]) == {"baseline", "baseline-chat", "vllm", "vllm-chat", "triton", "triton-grpc"}
    compared = {name: t["agreement"]["reference"] for name, t in summary["targets"].items() if t.get("agreement")}
    assert compared == {"vllm": "baseline", "triton": "baseline", "triton-grpc": "baseline",
                        "vllm-chat": "baseline-chat"}
    # The TensorRT-LLM build's CPU stand-in says what served, in every run's manifest.
    builds = summary["manifest"].get("engine_builds") or []
    assert any(b.get("engine") == "triton-python-backend-cpu" for b in builds), builds
    for name in ("summary.json", "report.html", "prometheus-targets.json"):
        assert (stack.out / name).stat().st_size > 0, name
    targets = json.loads((stack.out / "prometheus-targets.json").read_text())["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"loadgen", "baseline", "vllm", "triton", "prometheus"}


def test_a_killed_vllm_fails_its_requests_cleanly_comes_back_and_the_results_survive(stack: Stack) -> None:
    result = drill(stack)
    assert not result["run_hung"], result
    assert result["exit_code"] == 3, result  # failed requests (loadgen/cli/exit_codes.py EXIT_FAILED)
    records = [json.loads(line) for line in (stack.out / "drill" / "records.jsonl").read_text().splitlines()]
    failed = [r for r in records if r.get("error")]
    assert failed and all(r["error"] in {"connect", "stream_error", "protocol", "timeout"} for r in failed), failed
    assert all(r.get("error_detail") for r in failed)
    assert any(not r.get("error") for r in records)  # before the kill, vLLM answered
    assert result["vllm_restarts"] >= 1 and result["vllm_health"] == "healthy", result  # restart: unless-stopped
    assert result["prometheus_up_vllm"]["zeros"] > 0 and result["prometheus_up_vllm"]["ones"] > 0, result
    assert result["results_survive_down_up"] and result["survival_check_can_fail"], result


def test_down_leaves_no_container_network_or_volume(stack: Stack) -> None:
    stack.down()
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
