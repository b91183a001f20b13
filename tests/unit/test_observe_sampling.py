"""loadgen.observe's samplers against real processes and a real HTTP page: the process tree sees its
children's CPU, the observer thread samples at stage boundaries and in between, writes what it keeps,
and stops scraping a page that is not an engine's."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from loadgen.observe.resources import ProcessTree
from loadgen.observe.sampler import Observer, Watch, default_metrics_url
from loadgen.observe.summary_blocks import read_observed

# A parent that sleeps while its child burns CPU: only a tree walk sees the work.
BURNING_CHILD = ("import subprocess, sys, time\n"
                 "child = subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.time()\\n"
                 "while time.time() - t < 30: pass'])\n"
                 "time.sleep(30)\n")


@pytest.fixture
def burning_tree() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", BURNING_CHILD])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield proc.pid
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()


@pytest.mark.slow  # seconds: left out of make test-fast
def test_the_process_tree_counts_the_childrens_cpu_and_memory(burning_tree: int) -> None:
    tree = ProcessTree(burning_tree)
    first = tree.read()
    time.sleep(1.0)
    second = tree.read()
    assert first is not None and second is not None
    used = (second["cpu_s"] or 0) - (first["cpu_s"] or 0)
    assert used > 0.3, used  # the child's busy loop (the parent only sleeps); a loaded machine gives it less
    assert (second["rss_bytes"] or 0) > 5 * 2**20  # two Python interpreters
    parent_only = psutil.Process(burning_tree).cpu_times()
    assert parent_only.user + parent_only.system < 0.3 * used


def test_a_pid_that_is_not_running_is_refused() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(psutil.NoSuchProcess):
        ProcessTree(proc.pid)


class Page:
    """A fake engine's /metrics (the baseline's names) whose counters move, and a page that is no engine's."""

    def __init__(self) -> None:
        self.scrapes: dict[str, int] = {}
        self.finished = 0

    def text(self, path: str) -> tuple[int, str]:
        self.scrapes[path] = self.scrapes.get(path, 0) + 1
        if path == "/metrics":
            self.finished += 1
            return 200, (f'hf:num_requests_running{{model_name="m"}} 2\n'
                         f'hf:request_queue_time_seconds_sum{{model_name="m"}} {self.finished * 0.01}\n'
                         f'hf:request_queue_time_seconds_count{{model_name="m"}} {self.finished}\n'
                         f"process_resident_memory_bytes 1e8\nprocess_cpu_seconds_total {self.finished}\n")
        if path == "/mock":
            return 200, "mock_requests_total 3\n"
        return 404, "not here"


@pytest.fixture
def page() -> Iterator[tuple[str, Page]]:
    state = Page()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = state.text(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()


@pytest.mark.slow  # seconds: left out of make test-fast
def test_the_observer_samples_at_every_stage_boundary_and_in_between(
        tmp_path: Path, page: tuple[str, Page], burning_tree: int) -> None:
    url, state = page
    notices: list[str] = []
    observer = Observer([Watch("engine", f"{url}/metrics", burning_tree), Watch("mock", f"{url}/mock"),
                         Watch("gone", f"{url}/nothing")], tmp_path, interval_s=0.25, nvml=False,
                        notify=notices.append)
    observer.start()
    observer.target_started("engine")
    observer.stage_started("engine", "c1")
    time.sleep(0.7)
    observer.stage_started("engine", "c2")
    time.sleep(0.3)
    for target in ("mock", "gone"):
        observer.target_started(target)
        observer.stage_started(target, "c1")
        time.sleep(0.6)
        observer.target_ended(target)
    observed = observer.finish()

    engine = [s for s in observed.server if s.target == "engine"]
    marks = [(s.stage, s.event) for s in engine if s.event != "sample"]
    assert marks == [("c1", "stage_start"), ("c1", "stage_end"), ("c2", "stage_start"), ("c2", "stage_end")]
    assert sum(1 for s in engine if s.event == "sample" and s.stage == "c1") >= 1  # the periodic ones
    assert all(s.engine == "hf" and s.values["running"] == 2 for s in engine)
    assert [s.t_ns for s in engine] == sorted(s.t_ns for s in engine)
    sources = {s.source for s in observed.resources if s.target == "engine"}
    assert sources == {"process", "metrics"}  # no GPU here, and nvml off: no GPU source at all
    assert all(s.gpu_mem_bytes is None for s in observed.resources)
    # Neither the page of no engine nor a 404 is scraped again; each gets one notice
    assert state.scrapes["/mock"] == 1 and state.scrapes["/nothing"] == 1
    assert any("no known engine" in n for n in notices) and any("HTTP 404" in n for n in notices)
    # What it kept is what it wrote
    assert read_observed(tmp_path) == observed


def test_the_default_metrics_url() -> None:
    assert default_metrics_url("openai-chat", "http://h:8000/") == "http://h:8000/metrics"
    assert default_metrics_url("triton-generate", "http://h:8000") is None  # a port of its own
    assert default_metrics_url("triton-grpc", "grpc://h:8001") is None
