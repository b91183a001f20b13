"""``loadgen study`` against the synthetic server, whose service is known: a 2 × 2 grid (concurrency ×
output tokens) over two mock servers, one that serves a single request at a time ("naive") and one
that serves any number at once ("batched"), through the command line.

Checked: the grid expands to every cell, each a real run folder whose stage has the cell's values; every
speedup (and every heatmap value drawn from it) is the ratio of the two cells' means as read back from
the run folders' own summary.json files; table (c)'s columns; the files the command writes. And the
physics the mock fixes: at concurrency 1 both servers do the same work (speedup ≈ 1); at concurrency 4
the naive one serves the four requests one after another, so the batched one is ≈ 4× faster."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from loadgen.answers import study_report as render
from loadgen.answers.study import TABLE_C, StudyResult
from loadgen.cli import main
from loadgen.selftest import running_mock

REPS = 2


def study_file(tmp_path: Path, naive: str, batched: str, model_dir: Path) -> Path:
    data = {
        "name": "mock-2x2", "model": "mock", "seed": 3,
        "targets": [{"name": "naive", "kind": "openai-completions", "url": naive},
                    {"name": "batched", "kind": "openai-completions", "url": batched}],
        "prompts": {"input_tokens": 16, "output_tokens": 4, "count": 16, "tokenizer": str(model_dir)},
        "load": {"type": "concurrency", "concurrency": 1, "requests": 8},
        "study": {"repetitions": REPS, "reference": "naive",
                  "metrics": ["output_tokens_per_s", "e2e_ms.mean", "ttft_ms.p50"],
                  "axes": {"concurrency": [1, 4], "output_tokens": [4, 8]}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def summary_value(run: Path, target: str, stage: str, name: str) -> float:
    return float(json.loads((run / "summary.json").read_text())["targets"][target]["stages"][stage][name])


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> tuple[Path, StudyResult]:
    tmp = tmp_path_factory.mktemp("study")
    with running_mock(["--ttft-ms", "20", "--itl-ms", "10", "--max-concurrency", "1"], tmp, None) as naive, \
            running_mock(["--ttft-ms", "20", "--itl-ms", "10"], tmp, None) as batched:
        code = main(["study", str(study_file(tmp, naive, batched, model_dir)), "--out", str(tmp / "out")])
    assert code == 0
    return tmp / "out", StudyResult.model_validate_json((tmp / "out" / "study.json").read_text())


def test_the_grid_expands_to_every_cell_each_a_real_run(studied: tuple[Path, StudyResult]) -> None:
    out, result = studied
    keys = {"out4-c1", "out8-c1", "out4-c4", "out8-c4"}
    assert {(c.key, c.target) for c in result.cells} == {(k, t) for k in keys for t in ("naive", "batched")}
    for cell in result.cells:
        assert [r.rep for r in cell.reps] == list(range(REPS))
        assert [r.seed for r in cell.reps] == [3 + rep for rep in range(REPS)]
        for rep in cell.reps:
            run = Path(rep.out)
            assert run == out / "cells" / "grid" / cell.key / f"rep-{rep.rep}"
            stage = json.loads((run / "manifest.json").read_text())["profile"]["load"]
            assert (stage["concurrency"], stage["requests"], stage["name"]) == (cell.values["concurrency"], 8,
                                                                               cell.key)
            records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
            mine = [r for r in records if r["target"] == cell.target]
            assert len(mine) == 8 and all(r["output_tokens"] == cell.values["output_tokens"] for r in mine)
            assert rep.ok == 8 and rep.failed == 0
    assert result.cold_start is True and result.warmup == 0


def test_every_speedup_is_the_ratio_of_the_two_cells_summaries(studied: tuple[Path, StudyResult]) -> None:
    _, result = studied
    assert len(result.speedups) == 4
    for s in result.speedups:
        means = {}
        for target in ("batched", "naive"):
            cell = next(c for c in result.cells if c.key == s.key and c.target == target)
            means[target] = statistics.fmean(summary_value(Path(r.out), target, s.key, "output_tokens_per_s")
                                             for r in cell.reps)
        assert s.speedup == pytest.approx(means["batched"] / means["naive"], rel=1e-3)
    (hm,) = render.heatmaps(result)
    drawn = {(x, y): v for y, row in zip(hm.y, hm.z, strict=True) for x, v in zip(hm.x, row, strict=True)}
    assert drawn == {(s.values["concurrency"], f"out{s.values['output_tokens']:g}"): s.speedup
                     for s in result.speedups}
    by_c = {s.key: s.speedup for s in result.speedups}
    # one slot vs unlimited: equal at concurrency 1, the four requests served one by one at concurrency 4
    assert 0.8 < by_c["out8-c1"] < 1.25
    assert 3.0 < by_c["out8-c4"] < 4.5


def test_table_c_and_the_files(studied: tuple[Path, StudyResult]) -> None:
    out, result = studied
    rows = result.table_c["batched"]
    assert len(rows) == 4 and all(tuple(row) == TABLE_C for row in rows)
    for row in rows:
        s = next(s for s in result.speedups if s.values["concurrency"] == row["BatchSize"]
                 and s.values["output_tokens"] == row["MaxTokens"])
        assert row["PromptLen"] == 16
        assert (row["OptTokens"], row["NaiveTokens"], row["Speedup"]) == (s.target_mean, s.reference_mean, s.speedup)
    assert render.table_c(result, "batched").columns == list(TABLE_C)
    table_a = {(r["target"], r["batch"], r["output_tokens"]) for r in result.table_a}
    assert table_a == {(t, c, o) for t in ("naive", "batched") for c in (1, 4) for o in (4, 8)}
    with (out / "study.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 8 and {"output_tokens_per_s_ci_low", "speedup_output_tokens_per_s"} <= set(lines[0])
    page = (out / "study.html").read_text()
    assert page.count('<svg class="rig-chart"') >= 2 and 'class="rig-series' in page and "<script" not in page


def test_the_figures_as_png(studied: tuple[Path, StudyResult]) -> None:
    pytest.importorskip("matplotlib", reason="the PNG figures need matplotlib (the `plots` and `test` extras)")
    out, _ = studied
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "grid-speedup-batched.png" in pngs and "grid-output_tokens_per_s-vs-concurrency.png" in pngs
    with (out / "figures" / "grid-speedup-batched.png").open("rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
