"""report.html in a real headless Chromium (Debian's `chromium`): loads offline with no script errors,
every plot drawn, none wider than its cell at 1,400 px, and no title, legend or axis title overlapping other
text or the plot area (measured by the page's own check with the browser's fonts). The run behind it is a real run
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
from loadgen.render.html import CHECKS, ERROR_CAPTURE, PLOTS
from loadgen.render.svg import Axis, Series, XYChart
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
    assert not re.search(r"<script[^>]+src=|<img[^>]+src=|<link[^>]+href=", page)  # nothing fetched
    for name in PLOTS:  # each plot is an inline SVG drawn from the records, with data in it
        block = re.search(rf'data-plot="{name}">(<svg class="rig-chart".*?</svg>)</div>', page, re.S)
        assert block is not None and 'class="rig-series' in block.group(1), f"plot {name} has no data"
    assert len(page) < 500_000, len(page)  # a few dozen requests: the page weighs what it shows
    assert "Output agreement" in page and "Manifest" in page and "The engines&#x27; side" in page


@pytest.mark.binary
def test_report_renders_in_headless_chromium_without_errors(run_dir: Path) -> None:
    url = (run_dir / "report.html").resolve().as_uri()
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = re.search(r'<pre id="rig-errors">(.*?)</pre>', dom.stdout, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else dom.stdout[:500]
    assert not re.search(r"Uncaught|CONSOLE\(\d+\).*[Ee]rror", dom.stderr), dom.stderr[-2000:]
    # The page's own checks ran in the browser on every plot: widths, and overlaps measured with its fonts
    checked = dict((m[1], int(m[2])) for m in re.finditer(
        r'data-plot="(\w+)" data-cell-width="\d+" data-plot-width="\d+" data-texts-checked="(\d+)"', dom.stdout))
    assert set(checked) == set(PLOTS) and all(n >= 3 for n in checked.values()), checked  # title, axes, legend
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


@pytest.mark.binary
def test_the_pages_overlap_check_reports_a_title_over_a_label(tmp_path: Path) -> None:
    """The check the report runs in the browser can fail: a chart whose title is moved onto a tick label."""
    chart = XYChart("A title long enough to cover the label", Axis("x"), Axis("y"), [Series("s", [1, 2], [1, 2])])
    svg = chart.svg("broken")
    y_tick = re.search(r'class="rig-text rig-tick" x="([\d.]+)" y="([\d.]+)"', svg)
    assert y_tick is not None
    svg = re.sub(r'(class="rig-text rig-title" )x="[\d.]+" y="[\d.]+"', rf'\1x="{y_tick[1]}" y="{y_tick[2]}"', svg)
    page = tmp_path / "broken.html"
    page.write_text(f'<!DOCTYPE html><html><body><pre id="rig-errors"></pre><script>{ERROR_CAPTURE}</script>'
                    f'<div class="rig-plot" data-plot="broken">{svg}</div><script>{CHECKS}</script></body></html>')
    dom = chromium("--dump-dom", page.resolve().as_uri())
    errors = re.search(r'<pre id="rig-errors">(.*?)</pre>', dom.stdout, re.S)
    assert errors is not None and 'plot broken: rig-title "A title long enough' in errors.group(1), dom.stdout[-2000:]
