"""The Locust front end (loadgen/locust) against the synthetic server: one master and two worker
processes on 127.0.0.1, exact request totals against the mock's own count, TTFT/ITL means against
the mock's truth, the run's folder accepted by ``loadgen report``, the live exporter on the master,
and a worker killed mid-run reported with the requests it took with it."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loadgen import metrics as m
from loadgen.api import load_run
from loadgen.config import Profile
from loadgen.locust.launch import start
from loadgen.locust.plan import PlanError, plan, user_offsets
from loadgen.selftest import mock_truth, running_mock
from loadgen.shapes.ramp import Ramp
from loadgen.shapes.rate import Rate
from stack.process import free_port

# The test process must not import locust (it monkey-patches the standard library): look, do not import.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs the [locust] extra")

TTFT_MS, ITL_MS, TOKENS = 40, 8, 16
# Stated tolerances (docs/locust.md): the gevent client stamps bytes when its greenlet reads them,
# so it sees TTFT a little late; ITL gaps are differences of two such stamps.
TTFT_TOLERANCE_MS = 8.0
ITL_TOLERANCE_MS = 1.0


def profile_file(folder: Path, url: str, load: dict[str, Any], kind: str = "openai-chat", **fields: Any) -> Path:
    dataset = folder / "sharegpt.json"
    dataset.write_text(json.dumps([{"id": str(i), "conversations": [
        {"from": "human", "value": f"question number {i} about the sea"}, {"from": "gpt", "value": "x"}]}
        for i in range(64)]))
    profile = {"name": "locust-test", "model": "mock", "targets": [{"name": "mock", "kind": kind, "url": url}],
               "prompts": {"source": "sharegpt", "dataset": str(dataset), "output_tokens": TOKENS},
               "stages": [load], "metrics": {"enabled": False}, **fields}
    path = folder / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def mock_requests(url: str) -> int:
    """Every request the mock finished, whatever its outcome (ok, client_gone, ...)."""
    text = httpx.get(f"{url}/metrics").text
    return int(sum(float(v) for v in re.findall(r'^mock_requests_total\{[^}]*\} (\S+)$', text, re.M)))


def scrape_until(port: int, pattern: str, want: float, timeout_s: float) -> float:
    """The exporter's value of ``pattern`` once it equals ``want`` (or the last value seen)."""
    deadline, value = time.monotonic() + timeout_s, -1.0
    while time.monotonic() < deadline:
        try:
            found = re.search(pattern, httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text, re.M)
            value = float(found[1]) if found else value
            if value == want:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return value


def split_cpus() -> tuple[list[int] | None, set[int] | None]:
    """The Locust processes on the first cores, the mock on the last (as the selftest pins them)."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[:-1], {cpus[-1]}) if len(cpus) > 1 else (None, None)


def test_two_workers_exact_totals_and_the_mocks_truth(tmp_path: Path) -> None:
    port = free_port()
    clients, server = split_cpus()
    with running_mock(["--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)], tmp_path, server) as url:
        profile = profile_file(tmp_path, url, {"type": "concurrency", "concurrency": 6, "requests": 61},
                               warmup=4, metrics={"enabled": True, "port": port, "linger_s": 30})
        before = httpx.get(f"{url}/metrics").text
        run = start(profile, tmp_path / "out", 2, tmp_path / "logs", cpus=clients)
        try:
            deadline = time.monotonic() + 90
            while not (tmp_path / "out" / "report.html").exists() and time.monotonic() < deadline:
                time.sleep(0.2)  # the last file written at test stop; the master then lingers for a last scrape
            ok = scrape_until(port, r'^loadgen_requests_total\{.*outcome="ok".*stage="c6".*\} (\S+)$', 61, 25)
            in_flight = scrape_until(port, r'^loadgen_requests_in_flight\{.*stage="c6".*\} (\S+)$', 0, 5)
        finally:
            run.stop()  # the master lingers for scrapes; its files are written by then
            run.wait(30)
        truth = mock_truth(before, httpx.get(f"{url}/metrics").text)
    assert (ok, in_flight) == (61, 0), run.master_log()[-3000:]
    result = load_run(tmp_path / "out")
    records = result.records
    measured = [r for r in records if not r.warmup]
    assert len(measured) == 61 and len(records) == 65 and all(r.ok for r in records), run.master_log()[-3000:]
    assert truth.requests == 65  # the mock's own count: nothing lost, nothing sent twice
    assert [r.index for r in records] == list(range(65))
    assert all(r.output_tokens == TOKENS and sum(r.chunk_tokens) == TOKENS for r in records)
    assert all(r.chunk_tokens[0] == 0 for r in records)  # the role-only first chunk is not a token
    reports = result.workers
    assert sorted(w.worker for w in reports) == [0, 1] and sum(w.requests for w in reports) == 65
    assert all(w.requests > 10 for w in reports) and not any(w.died for w in reports)
    ttft = m.stats(m.ttft_ms(r) for r in measured)
    itl = m.stats(g for r in measured for g in m.itl_gaps_ms(r))
    assert ttft is not None and itl is not None
    hub = [w.loop_lag_p99_ms for w in reports]  # the gevent hub's lag: what a busy machine adds
    assert truth.ttft_ms - 0.5 < ttft.mean < truth.ttft_ms + TTFT_TOLERANCE_MS, (ttft.mean, truth.ttft_ms, hub)
    assert abs(itl.mean - truth.itl_ms) < ITL_TOLERANCE_MS, (itl.mean, truth.itl_ms, hub)
    assert result.summary.targets["mock"].requests.ok == 61
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["locust"]["lost_requests"] == 0
    for k in (0, 1):  # each worker keeps its own records too
        assert (tmp_path / "out" / "workers" / str(k) / "records.jsonl").read_text().count("\n") == \
            next(w.requests for w in reports if w.worker == k)


def test_a_worker_killed_mid_run_is_reported_with_its_requests(tmp_path: Path) -> None:
    with running_mock(["--ttft-ms", "300", "--itl-ms", "50"], tmp_path, None) as url:
        profile = profile_file(tmp_path, url, {"type": "concurrency", "concurrency": 4, "duration_s": 8})
        run = start(profile, tmp_path / "out", 2, tmp_path / "logs")
        try:
            deadline = time.monotonic() + 60
            while "stage c4" not in run.master_log() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.5)  # every request takes ~1 s: each worker has two in flight
            victim = run.workers[1]
            victim.send_signal(signal.SIGKILL)
            run.wait(90)
        finally:
            run.stop()
        total_at_server = mock_requests(url)
    log = run.master_log()
    result = load_run(tmp_path / "out")
    lost = [r for r in result.records if r.error == "worker_lost"]
    dead = [w for w in result.workers if w.died]
    assert len(dead) == 1 and dead[0].pid == victim.pid, log[-3000:]
    assert dead[0].lost == len(lost) >= 1
    assert "went missing with" in log and "recorded as worker_lost" in log
    assert result.summary.targets["mock"].requests.by_error.get("worker_lost") == len(lost)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["locust"]["lost_requests"] == len(lost)
    # Nothing is silent: every request the server saw is a record (finished, or lost with its worker).
    assert len(result.records) == total_at_server, (len(result.records), total_at_server)
    survivors = [r for r in result.records if r.error is None]
    assert len(survivors) >= 8


@pytest.mark.parametrize("kind", ["openai-completions", "triton-generate"])
def test_one_process_drives_each_kind(tmp_path: Path, kind: str) -> None:
    """No --master/--worker: Locust's local runner, the same code through its local message emulation."""
    with running_mock(["--ttft-ms", "20", "--itl-ms", "4"], tmp_path, None) as url:
        profile = profile_file(tmp_path, url, {"type": "concurrency", "concurrency": 3, "requests": 12}, kind=kind)
        done = subprocess.run([sys.executable, "-m", "loadgen.locust", "--headless", "--only-summary",
                               "--rig-profile", str(profile), "--rig-out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120)
        served = mock_requests(url)
    assert done.returncode == 0, done.stderr[-3000:]
    result = load_run(tmp_path / "out")
    assert served == len(result.records) == 12 and all(r.ok and r.kind == kind for r in result.records)
    assert all(r.output_tokens == TOKENS and len(r.chunk_offsets_ns) >= TOKENS for r in result.records)
    assert "TTFT" in done.stderr and "ITL" in done.stderr  # Locust's own table shows the rig's metrics


# -- the mapping of profiles onto Locust (pure) --------------------------------------------------


def _profile(**fields: Any) -> Profile:
    return Profile.model_validate({"model": "m", "targets": [{"name": "t", "kind": "openai-chat",
                                                              "url": "http://127.0.0.1:1"}], **fields})


def test_stages_map_to_users_and_requests() -> None:
    steps = plan(_profile(warmup=3, stages=[{"type": "concurrency", "concurrency": 8, "requests": 100},
                                            {"type": "rate", "rate": 5, "duration_s": 10}]), open_users=16)
    assert [(s.index, s.name, s.users, s.requests, s.duration_s, s.warmup) for s in steps] == [
        (-1, "warmup", 3, 3, None, True), (0, "c8", 8, 100, None, False), (1, "r5", 16, None, 10, False)]
    assert steps[1].open_loop is None and steps[2].open_loop is not None and steps[2].open_loop["rate"] == 5


def test_replay_is_refused() -> None:
    with pytest.raises(PlanError, match="replay"):
        plan(_profile(load={"type": "replay", "requests": 3}))


@pytest.mark.parametrize("shape", [Rate(rate=40, duration_s=50), Ramp(rate=10, end_rate=70, duration_s=50)])
def test_users_pacing_adds_up_to_the_shapes_rate(shape: Rate | Ramp) -> None:
    """U users at 1/U of the rate each: the arrivals in [0, 50 s) number the shape's Λ(50 s) (±4 σ)."""
    rng = random.Random(7)
    users = 20
    count = 0
    for _ in range(users):
        for offset in user_offsets(shape, users, rng):
            if offset >= 50:
                break
            count += 1
    expected = 40 * 50 if isinstance(shape, Rate) else (10 + 70) / 2 * 50
    assert abs(count - expected) < 4 * expected ** 0.5, (count, expected)


def test_a_profile_locust_cannot_run_is_refused_before_the_run(tmp_path: Path) -> None:
    """One line naming the problem and exit code 2 (as ``loadgen run``), no traceback, nothing written."""
    profile = profile_file(tmp_path, "http://127.0.0.1:9", {"type": "replay", "requests": 2})
    done = subprocess.run([sys.executable, "-m", "loadgen.locust", "--headless", "--rig-profile", str(profile),
                           "--rig-out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "loadgen.locust: load type 'replay' has no Locust form" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and not (tmp_path / "out").exists()
