"""The launchers the compose CPU flavour's containers run (python -m engines.<name>.launch): the local CPU stack's
argv, listening where the container needs, extra flags passed through, and the process replaced (exec)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import serve
from engines.baseline import launch as baseline_launch
from engines.triton import stage
from engines.vllm import launch as vllm_launch


class Exec(Exception):
    """Raised instead of replacing the test process."""


@pytest.fixture()
def execs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], dict[str, str]]]:
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise Exec

    monkeypatch.setattr(serve.os, "execve", fake_execve)
    return calls


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_vllm_launcher_execs_the_local_stacks_argv_on_the_containers_address(execs: list) -> None:
    with pytest.raises(Exec):
        vllm_launch.main(["--model", "/models/model", "--served-model-name", "model", "--max-num-seqs", "8"])
    path, argv, env = execs[0]
    assert path == argv[0] and argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert (flag(argv, "--host"), flag(argv, "--port"), flag(argv, "--dtype")) == ("0.0.0.0", "8000", "float32")
    assert flag(argv, "--served-model-name") == "model" and argv[-2:] == ["--max-num-seqs", "8"]
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["HF_HUB_OFFLINE"] == "1"
    local = vllm_launch.vllm_argv("/m", 9)
    assert flag(local, "--host") == "127.0.0.1"  # the local stack stays on the loopback


def test_baseline_launcher_passes_server_flags_through(execs: list) -> None:
    with pytest.raises(Exec):
        baseline_launch.main(["--model", "/models/model", "--scheduler", "continuous", "--port", "8100"])
    _, argv, _ = execs[0]
    assert argv[1:3] == ["-m", "servers.hf"] and flag(argv, "--port") == "8100" and flag(argv, "--host") == "0.0.0.0"
    assert argv[-2:] == ["--scheduler", "continuous"]


def test_a_launcher_without_a_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        vllm_launch.main([])
    assert exit_info.value.code == 2 and "--model" in capsys.readouterr().err


def test_the_cpu_build_job_stages_the_repository_and_says_what_serves(tmp_path: Path) -> None:
    repository, manifest = tmp_path / "repository", tmp_path / "manifest.json"
    (repository / "stale").mkdir(parents=True)
    assert stage.main(["--repository", str(repository), "--manifest", str(manifest)]) == 0
    assert (repository / "ensemble" / "config.pbtxt").is_file() and not (repository / "stale").exists()
    assert not (tmp_path / "repository.partial").exists()
    written = json.loads(manifest.read_text())
    assert written["engine"] == "triton-python-backend-cpu" and written["precision"] == "fp32"
    assert "GPU-only" in written["reason"]
