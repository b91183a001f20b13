"""The study's pure parts (loadgen/answers/study.py, study_config.py): the study file, grid expansion and
ties, how a cell changes the profile, the t interval, speedups, optima and the seed tables, computed on
hand-made repetitions; and every shipped study file in loadgen/studies/ loads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from loadgen.answers import study as st
from loadgen.answers.study_config import GridConfig, StudyError, StudySection, load_study, resolve_engine_targets
from loadgen.cli.study import study_path
from loadgen.config import Profile, TargetConfig

STUDIES = Path(__file__).resolve().parents[2] / "loadgen" / "studies"


def profile(**fields: Any) -> Profile:
    data: dict[str, Any] = {"model": "m", "targets": [{"name": "a", "kind": "openai-completions",
                                                        "url": "http://127.0.0.1:1"},
                                                       {"name": "b", "kind": "openai-completions",
                                                        "url": "http://127.0.0.1:2"}],
                            "prompts": {"input_tokens": 64, "output_tokens": 16},
                            "load": {"type": "concurrency", "concurrency": 2, "duration_s": 5}, **fields}
    return Profile.model_validate(data)


def test_t_quantiles_match_scipy_and_beyond_the_table_stay_close() -> None:
    for df in (1, 2, 5, 30, 31, 60, 1000):
        assert st.t975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=2e-3)
    with pytest.raises(ValueError):
        st.t975(0)


def test_ci_is_the_student_t_interval_by_hand() -> None:
    # values 10, 12, 14: mean 12, s = 2, n = 3 → half-width 4.3027 · 2 / √3
    c = st.ci([10.0, 12.0, None, 14.0])
    assert (c.mean, c.n) == (12.0, 3)
    assert c.high - 12.0 == pytest.approx(4.3027 * 2 / math.sqrt(3))
    assert c.low == pytest.approx(24.0 - c.high)
    one = st.ci([5.0])
    assert (one.mean, one.low, one.high) == (5.0, None, None)
    assert st.ci([None]).mean is None


def test_expand_is_the_cartesian_product_with_ties() -> None:
    grid = GridConfig(axes={"concurrency": [1, 4], "input_tokens": [32, 64], "targets": ["b"]},
                      tie={"requests": "concurrency", "output_tokens": "input_tokens"})
    plans = st.expand(grid, ["a", "b"])
    assert [p.key for p in plans] == ["in32-out32-c1-n1", "in64-out64-c1-n1", "in32-out32-c4-n4",
                                      "in64-out64-c4-n4"]
    assert plans[3].values == {"concurrency": 4, "input_tokens": 64, "requests": 4, "output_tokens": 64}
    assert all(p.targets == ["b"] for p in plans)
    assert grid.varied() == ["concurrency", "input_tokens"]


@pytest.mark.parametrize(("grid", "message"), [
    ({"axes": {"concurency": [1]}}, "unknown axis"),
    ({"axes": {"concurrency": [1, 1]}}, "repeats"),
    ({"axes": {"concurrency": [1.5]}}, "whole numbers"),
    ({"axes": {"concurrency": [1], "rate": [2]}}, "not both"),
    ({"axes": {"rate": [2]}, "tie": {"concurrency": "rate"}}, "not both"),
    ({"axes": {"concurrency": [1]}, "tie": {"requests": "input_tokens"}}, "not an axis"),
    ({"axes": {"concurrency": [1]}, "tie": {"concurrency": "concurrency"}}, "itself an axis"),
])
def test_bad_grids_are_refused_naming_the_problem(grid: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GridConfig.model_validate(grid)


def test_the_section_takes_one_form_and_known_metrics() -> None:
    section = StudySection.model_validate({"axes": {"concurrency": [1, 2]}, "tie": {"requests": "concurrency"}})
    assert [g.name for g in section.grids] == ["grid"] and section.grids[0].tie == {"requests": "concurrency"}
    with pytest.raises(ValueError, match="not both"):
        StudySection.model_validate({"axes": {"concurrency": [1]}, "grids": [{"axes": {"rate": [1]}}]})
    with pytest.raises(ValueError, match="give a statistic"):
        StudySection.model_validate({"axes": {"concurrency": [1]}, "metrics": ["ttft_ms"]})


def test_a_cell_changes_only_its_values_in_the_profile() -> None:
    base = profile(seed=7)
    plan = st.CellPlan(grid="g", key="in32-out8-r3-n10", values={"input_tokens": 32, "output_tokens": 8, "rate": 3,
                                                                 "requests": 10}, targets=["b"])
    cell = st.cell_profile(base, plan, rep=2)
    assert [t.name for t in cell.targets] == ["b"] and cell.seed == 9 and not cell.metrics.enabled
    assert (cell.prompts.input_tokens, cell.prompts.output_tokens) == (32, 8)
    stage = cell.resolved_stages()[0]
    assert (stage.type, stage.rate, stage.requests, stage.duration_s, stage.name) == ("rate", 3, 10, None, plan.key)
    assert base.prompts.input_tokens == 64 and base.resolved_stages()[0].type == "concurrency"  # the base is intact
    sharegpt = profile(prompts={"source": "sharegpt", "dataset": "x.json"})
    with pytest.raises(ValueError, match="no input_tokens"):
        st.cell_profile(sharegpt, plan, 0)


def test_speedup_direction_follows_the_metric() -> None:
    assert st.speedup_of(300.0, 100.0, "higher") == 3.0
    assert st.speedup_of(100.0, 300.0, "lower") == 3.0  # a third of the latency is 3× better
    assert st.speedup_of(None, 1.0, "higher") is None and st.speedup_of(1.0, 0.0, "higher") is None


def rep(index: int, tps: float, e2e: float, rss: float | None = None) -> st.Repetition:
    return st.Repetition(rep=index, seed=index, out=f"r{index}", seconds=1.0, ok=4, failed=0, valid=True,
                         values={"output_tokens_per_s": tps, "e2e_ms.mean": e2e},
                         resources={"rss_mb": rss, "gpu_mem_mb": None})


def made_result() -> st.StudyResult:
    grid = GridConfig(axes={"concurrency": [1, 16]}, tie={"requests": "concurrency"})
    result = st.StudyResult(name="s", started_at="t", warmup=0, cold_start=True, repetitions=2, reference="hf",
                            metrics=["output_tokens_per_s", "e2e_ms.mean"],
                            better={"output_tokens_per_s": "higher", "e2e_ms.mean": "lower"},
                            speedup_metric="output_tokens_per_s", grids=[grid],
                            fixed={"input_tokens": 32, "output_tokens": 64, "concurrency": 1, "rate": None,
                                   "requests": 1})
    values = {("c1-n1", "hf"): [(20, 3000), (22, 2900)], ("c16-n16", "hf"): [(21, 48000), (23, 47000)],
              ("c1-n1", "vllm"): [(80, 800), (90, 700)], ("c16-n16", "vllm"): [(1200, 900), (1300, 850)]}
    for (key, target), pairs in values.items():
        c = 1.0 if key == "c1-n1" else 16.0
        result.cells.append(st.Cell(grid="grid", key=key, values={"concurrency": c, "requests": c}, target=target,
                                    reps=[rep(i, tps, e2e, rss=100.0 + i) for i, (tps, e2e) in enumerate(pairs)]))
    st.finish(result)
    return result


def test_finish_gives_speedups_optima_and_the_seed_tables() -> None:
    result = made_result()
    (low, high) = [s for s in result.speedups if s.target == "vllm"]
    assert low.speedup == pytest.approx(85 / 21) and high.speedup == pytest.approx(1250 / 22)
    assert {(o.target, o.metric, o.key) for o in result.optima} == {
        ("hf", "output_tokens_per_s", "c16-n16"), ("hf", "e2e_ms.mean", "c1-n1"),
        ("vllm", "output_tokens_per_s", "c16-n16"), ("vllm", "e2e_ms.mean", "c1-n1")}
    (row,) = [r for r in result.table_c["vllm"] if r["BatchSize"] == 16]
    assert row == {"PromptLen": 32, "BatchSize": 16.0, "MaxTokens": 64, "OptTokens": 1250.0, "NaiveTokens": 22.0,
                   "Speedup": pytest.approx(1250 / 22)}
    a = {(r["target"], r["batch"]): r for r in result.table_a}
    assert a[("vllm", 16.0)]["mean_latency_ms"] == 875.0 and a[("vllm", 16.0)]["tokens_per_s"] == 1250.0
    assert a[("hf", 1.0)]["peak_rss_mb"] == 101.0 and a[("hf", 1.0)]["peak_gpu_mem_mb"] is None
    assert result.notes == []


def test_peak_memory_is_read_from_whatever_resources_the_summary_has() -> None:
    assert st._peak(12) == 12.0 and st._peak({"max": 5.0, "mean": 3.0}) == 5.0
    assert st._peak({"engine": {"peak": 7.0}, "other": 3.0}) == 7.0 and st._peak(None) is None


def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"model_dir": "m", "started_at": 0, "engines": {
        name: {"engine": name, "pid": 1, "argv0": "x", "log": "l", "ready_url": "u", "metrics_url": "u",
               "model": model, "urls": urls} for name, model, urls in (
            ("baseline", "smollm2", {"openai-completions": "http://127.0.0.1:9001"}),
            ("vllm", "smollm2", {"openai-completions": "http://127.0.0.1:9002"}),
            ("triton", "ensemble", {"triton-generate": "http://127.0.0.1:9003"}))}}))
    return path


def test_engine_targets_come_from_the_stack_state_file(tmp_path: Path) -> None:
    data = {"targets": [{"name": "hf", "engine": "baseline", "kind": "openai-completions"},
                        {"name": "t", "engine": "triton", "kind": "triton-generate", "model": "mine"}]}
    resolve_engine_targets(data, state_file(tmp_path))
    sampled = {"pid": 1, "metrics_url": "u"} if "pid" in TargetConfig.model_fields else {}
    assert data["targets"] == [{"name": "hf", "kind": "openai-completions", "url": "http://127.0.0.1:9001",
                                "model": "smollm2", **sampled},
                               {"name": "t", "kind": "triton-generate", "url": "http://127.0.0.1:9003",
                                "model": "mine", **sampled}]
    with pytest.raises(StudyError, match=r"python -m stack.local up"):
        resolve_engine_targets({"targets": [{"name": "x", "engine": "vllm"}]}, tmp_path / "missing.json")
    with pytest.raises(StudyError, match="not an engine serving triton-grpc"):
        resolve_engine_targets({"targets": [{"name": "x", "engine": "triton", "kind": "triton-grpc"}]},
                               state_file(tmp_path))


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_loads_and_expands(path: Path, tmp_path: Path) -> None:
    spec = load_study(path, [("study.repetitions", 1)], state_file(tmp_path))
    assert spec.study.repetitions == 1
    plans = [p for g in spec.study.grids for p in st.expand(g, [t.name for t in spec.profile.targets])]
    assert plans and all(st.cell_profile(spec.profile, p, 0) for p in plans)
    assert path.stem.endswith("-gpu") or all("127.0.0.1" in t.url for t in spec.profile.targets)
    assert study_path(path.stem) == path


def test_a_study_file_needs_its_section_and_one_stage(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\n")
    with pytest.raises(StudyError, match="study:"):
        load_study(path, [])
    path.write_text(json.dumps({"model": "m", "targets": [{"name": "a", "kind": "openai-completions",
                                                           "url": "http://127.0.0.1:1"}],
                                "sweep": {"type": "concurrency", "values": [1, 2], "requests": 4},
                                "study": {"axes": {"output_tokens": [4]}}}))
    with pytest.raises(StudyError, match="one `load`"):
        load_study(path, [])
    path.write_text(json.dumps({"model": "m", "targets": [{"name": "a", "kind": "openai-completions",
                                                           "url": "http://127.0.0.1:1"}],
                                "load": {"concurrency": 1, "requests": 2},
                                "study": {"reference": "z", "axes": {"output_tokens": [4]}}}))
    with pytest.raises(StudyError, match="reference 'z'"):
        load_study(path, [])


def test_a_frame_fits_the_means_only_when_an_interval_runs_far_past_them() -> None:
    from loadgen.answers.study_report import LineChart, Series, y_range

    wide = LineChart("n", "t", "x", "y", [Series("a", [1, 2], [10.0, 20.0], [-50.0, 15.0], [70.0, 25.0])])
    assert y_range(wide) == (0.0, 28.0)
    narrow = LineChart("n", "t", "x", "y", [Series("a", [1, 2], [10.0, 20.0], [9.0, 19.0], [11.0, 21.0])])
    assert y_range(narrow) is None
