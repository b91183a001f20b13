"""``python -m stack.local``: up, status and down as a user runs them, and stopping by PID only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stack.local import start
from stack.process import EngineStartError, is_running, stop_group

ROOT = Path(__file__).resolve().parents[2]


def local(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack.local", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_up_status_down_with_triton(model_dir: Path, tmp_path: Path) -> None:
    up = local("up", "--engines", "triton", "--model", str(model_dir), "--dir", str(tmp_path))
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    triton = state["engines"]["triton"]
    assert is_running(triton["pid"], triton["argv0"])
    try:
        assert local("up", "--engines", "triton", "--dir", str(tmp_path)).returncode == 1  # already up
        status = local("status", "--dir", str(tmp_path))
        assert status.returncode == 0 and "ready" in status.stdout
    finally:
        down = local("down", "--dir", str(tmp_path))
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not is_running(triton["pid"], triton["argv0"])
    assert not (tmp_path / "state.json").exists()
    assert local("status", "--dir", str(tmp_path)).returncode == 1  # nothing up


def test_stop_group_leaves_a_process_that_is_not_ours_alone() -> None:
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert not stop_group(other.pid, "/some/other/tritonserver")  # same PID, different program: untouched
        assert other.poll() is None
        assert stop_group(other.pid, "sleep")
        other.wait(timeout=5)
    finally:
        other.kill()


def test_a_failed_start_names_the_engine_and_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    started = time.monotonic()
    with pytest.raises(EngineStartError) as info:
        start(["baseline"], broken, tmp_path / "logs")
    message = str(info.value)
    assert "baseline" in message and str(tmp_path / "logs") in message
    assert time.monotonic() - started < 60  # it exited: no waiting for the ready timeout


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineStartError, match="make model"):
        start(["baseline"], tmp_path / "nowhere", tmp_path / "logs")
