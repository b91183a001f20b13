"""A run's files: summary.json keeps its layout and round-trips through the typed ``Summary``;
``load_run`` (and ``loadgen report DIR``) gives back what the run returned, and names the file,
line or field that is wrong in a damaged run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadgen import metrics as m
from loadgen.api import (
    LOOP_LAG_FILE,
    MANIFEST_FILE,
    RECORDS_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    RunFormatError,
    RunResult,
    load_run,
    run,
)
from loadgen.cli import main
from loadgen.observe.resources import RESOURCES_FILE
from loadgen.observe.server_metrics import SERVER_FILE
from loadgen.record import ERROR_CLASSES
from loadgen.summary import Manifest, Summary
from tests.integration.mock_runs import mock, mock_profile

STATS = {"count", "mean", "std", "min", "p50", "p90", "p95", "p99", "p999", "max"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """Two stages against the mock, with a fault (so by_error has a count) and an SLO (so goodput is set); the
    target carries the mock's PID, so the run samples its process (``resources``; the mock's page is no
    engine's, so there is no ``server`` block and the TTFT breakdown has nothing to split)."""
    tmp = tmp_path_factory.mktemp("run-files")
    with mock(tmp, "--ttft-ms", "5", "--itl-ms", "2", "--fail-500-rate", "0.2") as url:
        port = url.rsplit(":", 1)[1]
        server = next(p for p in psutil.Process().children(recursive=True)
                      if "servers.mock" in p.cmdline() and port in p.cmdline())
        profile = mock_profile(url, tmp, [{"type": "concurrency", "concurrency": 2, "requests": 10},
                                          {"type": "rate", "rate": 50, "arrival": "constant", "requests": 10}],
                               output_tokens=4, slo={"ttft_ms": 1000}, warmup=2)
        profile.targets[0].pid = server.pid
        return run(profile, tmp / "out", report=False)


def copy_run(saved: RunResult, tmp_path: Path) -> Path:
    assert saved.out is not None
    return Path(shutil.copytree(saved.out, tmp_path / "run"))


def edit_summary(folder: Path, change: Any) -> None:
    data = json.loads((folder / SUMMARY_FILE).read_text())
    change(data)
    (folder / SUMMARY_FILE).write_text(json.dumps(data, indent=2))


def report_error(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`loadgen report DIR` on a damaged run: exit 2, and its error message (line wrapping removed)."""
    capsys.readouterr()
    assert main(["report", str(folder)]) == 2
    return "".join(capsys.readouterr().err.split())


def test_summary_json_keeps_its_layout(saved: RunResult) -> None:
    assert saved.out is not None
    data = json.loads((saved.out / SUMMARY_FILE).read_text())
    assert set(data) == {"manifest", "targets"} and set(data["targets"]) == {"mock"}
    block = data["targets"]["mock"]
    # no agreement without a reference; the validity verdict (issue 15) on every target
    # the engine's side (issue 17): resources from the mock's process; where TTFT goes (unsplit: no engine page)
    assert set(block) == {"requests", "stages", "validity", "resources", "ttft_breakdown", *m.registered_names()}
    assert block["resources"]["rss_mb"] > 0 and block["resources"]["sources"]["rss_mb"] == "process"
    assert block["ttft_breakdown"]["missing"] == ["queue", "prefill"]
    assert set(block["validity"]) == {"valid", "reasons", "cpu_share", "loop_lag_p99_ms", "send_lag_p99_ms",
                                      "achieved_ratio", "warnings"}  # warnings: steady state (issue 28)
    assert set(block["requests"]) == {"ok", "failed", "by_error"} and set(block["requests"]["by_error"]) == set(
        ERROR_CLASSES)
    assert block["requests"]["ok"] + block["requests"]["failed"] == 20  # warm-up requests are not counted
    assert list(block["stages"]) == ["c2", "r50"]
    for stage in block["stages"].values():
        assert set(stage) == {"requests", "saturated", "resources", "ttft_breakdown", "steady",
                              *m.registered_names()}
        assert {"rule", "reached", "start_s", "end_s", "share", "plateau", "metrics"} <= set(stage["steady"])
        assert set(stage["steady"]["metrics"]) >= {"requests", *m.registered_names()}
    for d in m.DISTRIBUTIONS:
        if d.source == "records" and d.name != "connect_ms":
            assert set(block[d.name]) == STATS, d.name
    # connect_ms counts only the connections requests had to open: none here (warm-up and preconnect did)
    assert block["connect_ms"] is None or set(block["connect_ms"]) == STATS
    assert block["goodput_rps"] is not None and block["output_tokens_per_s"] > 0
    manifest = data["manifest"]
    assert {"versions", "profile", "targets", "seed", "dataset_hash", "prompts", "host", "started_at", "command",
            "clock", "engine_builds"} <= set(manifest)
    assert json.loads((saved.out / MANIFEST_FILE).read_text()) == manifest


def test_summary_json_validates_and_round_trips(saved: RunResult) -> None:
    assert saved.out is not None
    text = (saved.out / SUMMARY_FILE).read_text()
    summary = Summary.model_validate_json(text)
    assert summary.to_json() == text
    assert summary == saved.summary and summary.to_json() == saved.summary.to_json()
    assert Manifest.model_validate_json((saved.out / MANIFEST_FILE).read_text()) == saved.manifest


def test_load_run_gives_back_what_the_run_returned(saved: RunResult) -> None:
    assert saved.out is not None
    loaded = load_run(saved.out)
    assert loaded.records == saved.records and len(loaded.records) == 22
    assert loaded.summary == saved.summary and loaded.manifest == saved.manifest
    assert loaded.loop_lag == saved.loop_lag and loaded.out == saved.out
    assert loaded.observed == saved.observed and saved.observed.resources and saved.observed.server
    # Rebuilt from the records, with the profile kept in the manifest: the same numbers.
    assert load_run(saved.out, rebuild=True).summary.to_json() == saved.summary.to_json()


def test_loadgen_report_re_renders_the_same_summary(saved: RunResult, tmp_path: Path) -> None:
    folder = copy_run(saved, tmp_path)
    before = (folder / SUMMARY_FILE).read_text()
    assert main(["report", str(folder)]) == 0
    assert (folder / SUMMARY_FILE).read_text() == before
    assert (folder / REPORT_FILE).exists()


def test_a_killed_run_without_summary_is_rebuilt_from_its_records(saved: RunResult, tmp_path: Path) -> None:
    folder = copy_run(saved, tmp_path)
    (folder / SUMMARY_FILE).unlink()
    assert load_run(folder).summary.to_json() == saved.summary.to_json()


@pytest.mark.parametrize(("damage", "field"), [
    (lambda d: d["targets"]["mock"]["ttft_ms"].pop("p99"), "targets.mock.ttft_ms.p99"),
    (lambda d: d["targets"]["mock"]["requests"].update(ok="many"), "targets.mock.requests.ok"),
    (lambda d: d["targets"]["mock"]["stages"]["r50"].update(e2e_ms={"p50": 1.0}), "targets.mock.stages.r50.e2e_ms"),
    (lambda d: d["targets"]["mock"].update(ttft_ms_p99=3.0), "targets.mock.ttft_ms_p99"),
    (lambda d: d["manifest"].pop("seed"), "manifest.seed"),
])
def test_a_damaged_summary_names_the_field(saved: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           damage: Any, field: str) -> None:
    folder = copy_run(saved, tmp_path)
    edit_summary(folder, damage)
    with pytest.raises(RunFormatError, match=rf"{SUMMARY_FILE}: .*field {field.replace('.', '[.]')}\b"):
        load_run(folder)
    with pytest.raises(RunFormatError, match=rf"field {field.replace('.', '[.]')}\b"):
        load_run(folder, rebuild=True)  # the saved summary is validated even when it is rebuilt
    error = report_error(folder, capsys)
    assert SUMMARY_FILE in error and f"field{field}" in error, error


def test_a_damaged_manifest_names_the_field(saved: RunResult, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_run(saved, tmp_path)
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["clock"]["unix_ns"] = "yesterday"
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(RunFormatError, match=rf"{MANIFEST_FILE}: field clock[.]unix_ns"):
        load_run(folder)
    assert "fieldclock.unix_ns" in report_error(folder, capsys)


def test_a_damaged_records_line_names_the_file_and_line(saved: RunResult, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_run(saved, tmp_path)
    lines = (folder / RECORDS_FILE).read_text().splitlines(keepends=True)
    record = json.loads(lines[2])
    record["sent_ns"] = "soon"
    lines[2] = json.dumps(record) + "\n"
    lines[5] = lines[5][: len(lines[5]) // 2] + "\n"  # cut short too, but line 3 comes first
    (folder / RECORDS_FILE).write_text("".join(lines))
    with pytest.raises(RunFormatError, match=rf"(?s){RECORDS_FILE}:3: not a request record: .*sent_ns"):
        load_run(folder)
    assert f"{RECORDS_FILE}:3:" in report_error(folder, capsys)


def test_a_last_line_cut_short_by_a_kill_is_skipped(saved: RunResult, tmp_path: Path) -> None:
    folder = copy_run(saved, tmp_path)
    text = (folder / RECORDS_FILE).read_text()
    (folder / RECORDS_FILE).write_text(text[: len(text) - 40])  # the last line lost its end, newline included
    assert len(load_run(folder, rebuild=True).records) == len(saved.records) - 1
    (folder / RECORDS_FILE).write_text(text[: len(text) - 40] + "\n")  # a complete but broken last line is an error
    with pytest.raises(RunFormatError, match=rf"{RECORDS_FILE}:{len(saved.records)}: not a request record"):
        load_run(folder)


def test_a_damaged_engine_samples_line_names_the_file_line_and_field(
        saved: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_run(saved, tmp_path)
    lines = (folder / RESOURCES_FILE).read_text().splitlines(keepends=True)
    sample = json.loads(lines[1])
    sample["rss_bytes"] = "a lot"
    lines[1] = json.dumps(sample) + "\n"
    (folder / RESOURCES_FILE).write_text("".join(lines))
    with pytest.raises(RunFormatError, match=rf"{RESOURCES_FILE}:2: not a ResourceSample line: field rss_bytes"):
        load_run(folder)
    assert f"{RESOURCES_FILE}:2:" in report_error(folder, capsys)
    shutil.copy(saved.out / RESOURCES_FILE, folder / RESOURCES_FILE)  # type: ignore[operator]
    (folder / SERVER_FILE).write_text('{"t_ns": 1, "target": "mock", "event": "lunch"}\n')
    with pytest.raises(RunFormatError, match=rf"{SERVER_FILE}:1: not a ServerSample line: field event"):
        load_run(folder)


def test_a_damaged_loop_lag_line_names_the_file_and_line(saved: RunResult, tmp_path: Path) -> None:
    folder = copy_run(saved, tmp_path)
    assert (folder / LOOP_LAG_FILE).read_text().count("\n") >= 2, "the run sampled its loop lag"
    with (folder / LOOP_LAG_FILE).open("a") as f:
        f.write("[1, 2, 3]\n")
    with pytest.raises(RunFormatError, match=rf"{LOOP_LAG_FILE}:\d+: not a \[perf_counter_ns, lag_ns\] pair"):
        load_run(folder)


def test_a_folder_without_records_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RunFormatError, match=f"no {RECORDS_FILE} in"):
        load_run(tmp_path)
    assert f"no{RECORDS_FILE}in" in report_error(tmp_path, capsys)
