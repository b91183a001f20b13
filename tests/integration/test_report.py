"""report.html in a real headless Chromium (Debian's `chromium`): loads offline with no script errors,
every plot drawn and none wider than its cell at 1,400 px. The run behind it is a real run
(``loadgen.api.run``) against the synthetic server (two stages, two targets, a fault; the first target with
the server's PID, so that the engine-resources plot has data) so that every plot has data; a screenshot is
kept under results/test-artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from loadgen.api import run
from loadgen.cli import main
from loadgen.config import Profile
from loadgen.render.html import PLOTS
from tests.integration.mock_runs import mock, write_dataset
from tests.prerequisites import unavailable

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "results" / "test-artifacts"


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        unavailable("chromium", "run `make chromium` (make test does)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=20000", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    with mock(tmp, "--ttft-ms", "30", "--itl-ms", "10", "--fail-500-rate", "0.1") as url:
        port = url.rsplit(":", 1)[1]
        server = next(p for p in psutil.Process().children(recursive=True)
                      if "servers.mock" in p.cmdline() and port in p.cmdline())
        profile = Profile.model_validate({
            "model": "m", "targets": [{"name": "a", "kind": "openai-completions", "url": url, "pid": server.pid},
                                      {"name": "b", "kind": "openai-chat", "url": url}],
            "prompts": {"source": "sharegpt", "dataset": str(write_dataset(tmp)), "output_tokens": 8},
            "sweep": {"type": "concurrency", "values": [1, 4], "requests": 12},
            "agreement": {"reference": "a"}, "metrics": {"enabled": False}})
        result = run(profile, tmp / "out")
    assert not result.interrupted and set(result.summary.targets) == {"a", "b"}
    assert list(result.summary.targets["b"].stages) == ["c1", "c4"] and result.summary.targets["b"].agreement
    return tmp / "out"


def test_report_is_one_self_contained_file(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched: the plotting library is inline
    assert "Plotly" in page and len(page) > 1_000_000
    for name in PLOTS:
        assert f'data-plot="{name}"' in page
    assert "Output agreement" in page and "Manifest" in page and "The engines&#x27; side" in page


@pytest.mark.binary
def test_report_renders_in_headless_chromium_without_errors(run_dir: Path) -> None:
    url = (run_dir / "report.html").resolve().as_uri()
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = re.search(r'<pre id="rig-errors">(.*?)</pre>', dom.stdout, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else dom.stdout[:500]
    assert not re.search(r"Uncaught|CONSOLE\(\d+\).*[Ee]rror", dom.stderr), dom.stderr[-2000:]
    for name in PLOTS:  # each plot div was drawn by Plotly (it renders into svg.main-svg)
        block = re.search(rf'data-plot="{name}"[^>]*>(.*?)</div>\s*(?=<div class="rig-plot"|</div>)', dom.stdout,
                          re.S)
        assert block is not None and 'class="main-svg"' in block.group(1), f"plot {name} not drawn"
    # The plots of the server's side have data: the engine's CPU over time, the client's in-flight count, TTFT bars
    for name, trace in (("resources_time", "trace scatter"), ("server_time", "trace scatter"),
                        ("ttft_breakdown", "trace bars")):
        block = re.search(rf'data-plot="{name}"[^>]*>(.*?)</div>\s*(?=<div class="rig-plot"|</div>)', dom.stdout,
                          re.S)
        assert block is not None and f'class="{trace}' in block.group(1), f"plot {name} has no data"
    # After load every cell says how wide it and its plot are; none is wider than its cell (the TTFT CDF was)
    widths = dict((m[1], (int(m[2]), int(m[3]))) for m in re.finditer(
        r'data-plot="(\w+)" data-cell-width="(\d+)" data-plot-width="(\d+)"', dom.stdout))
    assert set(widths) == set(PLOTS), widths
    assert all(0 < plot <= cell for cell, plot in widths.values()), widths
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1400,3200", url)
    assert result.returncode == 0 and shot.stat().st_size > 50_000, result.stderr[-2000:]
    print(f"screenshot: {shot}")


def test_loadgen_report_re_renders_it_from_the_records(run_dir: Path) -> None:
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert all(f'data-plot="{name}"' in page for name in PLOTS)
