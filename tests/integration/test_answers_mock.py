"""The answers (loadgen/answers) against the synthetic server, whose timings and capacity are known:
the validity verdict of a real run, the saturation stop, a known shift found by ``compare`` (and its
exit status), and ``search`` finding the mock's capacity within its resolution."""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadgen import api
from loadgen.answers.search import SLO, search
from loadgen.answers.search_report import answer_lines
from loadgen.cli import main
from loadgen.config import Profile, with_prices
from loadgen.cpu import CPU_FILE
from loadgen.selftest import running_mock


def mock(tmp_path: Path, *args: str) -> AbstractContextManager[str]:
    """The synthetic server on a free port (the selftest's own starter), logging into ``tmp_path``."""
    return running_mock(list(args), tmp_path, None)


def profile(url: str, tmp_path: Path, output_tokens: int, **fields: Any) -> Profile:
    dataset = tmp_path / "prompts.json"
    dataset.write_text(json.dumps([{"id": str(i), "conversations": [{"from": "human", "value": f"question {i}"}]}
                                   for i in range(16)]))
    data: dict[str, Any] = {
        "model": "mock", "targets": [{"name": "mock", "kind": "openai-completions", "url": url}],
        "prompts": {"source": "sharegpt", "dataset": str(dataset), "output_tokens": output_tokens},
        "metrics": {"enabled": False}, **fields}
    return Profile.model_validate(data)


def test_a_run_carries_its_validity_verdict_and_cpu_samples(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "10", "--itl-ms", "2") as url:
        result = api.run(profile(url, tmp_path, 6, load={"type": "rate", "rate": 20, "requests": 30,
                                                         "arrival": "constant"}), out=tmp_path / "run", report=True)
    v = result.summary.targets["mock"].validity
    assert v is not None and v.cpu_share is not None and 0 < v.cpu_share < 1.5
    assert v.achieved_ratio is not None and v.send_lag_p99_ms is not None and v.loop_lag_p99_ms is not None
    assert v.valid == (v.reasons == [])
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())["targets"]["mock"]["validity"]
    assert saved == v.model_dump()
    assert api.load_run(tmp_path / "run", rebuild=True).summary.targets["mock"].validity == v
    (tmp_path / "run" / CPU_FILE).unlink()  # a run from before the sampler: no CPU share, still loads
    old = api.load_run(tmp_path / "run", rebuild=True).summary.targets["mock"].validity
    assert old is not None and old.cpu_share is None and old.send_lag_p99_ms == v.send_lag_p99_ms


def test_stop_on_saturation_ends_an_overloaded_stage_only(tmp_path: Path) -> None:
    """One slot, 45 ms a request: capacity 22 req/s. At 40 req/s for 20 s the queue grows ~0.8 s each
    second; the rule needs 3 windows of 2 s, so the stage ends after ~6-8 s of the 20. At 10 req/s (under
    capacity) TTFT stays flat and the stage runs to its end."""
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "5", "--max-concurrency", "1") as url:
        over = api.run(profile(url, tmp_path, 6, stages=[
            {"type": "rate", "rate": 40, "duration_s": 20, "arrival": "constant", "stop_on_saturation": True},
            {"type": "rate", "rate": 10, "duration_s": 6, "arrival": "constant", "stop_on_saturation": True}]),
            out=tmp_path / "sat", report=False)
    stages = over.summary.targets["mock"].stages
    assert stages["r40"].saturated is True and stages["r10"].saturated is False
    sent = [r for r in over.records if r.stage_name == "r40"]
    assert 150 < len(sent) < 500  # 800 were scheduled; it stopped after 4-12 s
    # all of the stage's 6 s were sent (60 arrivals; the summed float offsets may let a 61st in before 6.0)
    assert len([r for r in over.records if r.stage_name == "r10"]) in (60, 61)


def run_against(tmp_path: Path, name: str, ttft_ms: str) -> Path:
    with mock(tmp_path, "--ttft-ms", ttft_ms, "--itl-ms", "2") as url:
        api.run(profile(url, tmp_path, 6, load={"type": "concurrency", "concurrency": 2, "requests": 80}),
                out=tmp_path / name, report=False)
    return tmp_path / name


def test_compare_finds_a_known_shift_and_gates_on_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TTFT 20 ms against 30 ms on the mock: +50%, a few tenths of a ms of noise."""
    a, b = run_against(tmp_path, "a", "20"), run_against(tmp_path, "b", "30")
    rule = ["--fail-if", "ttft_ms.p50>+10%", "--metric", "ttft_ms.p50", "--metric", "output_tokens_per_s"]
    assert main(["compare", str(a), str(b), *rule, "--allow-invalid", "--out", str(tmp_path / "ab")]) == 1
    report = json.loads((tmp_path / "ab" / "compare.json").read_text())
    ttft = next(r for r in report["rows"] if r["metric"] == "ttft_ms.p50")
    assert ttft["verdict"] == "worse" and ttft["ci_low_pct"] > 10 and ttft["diff"] == pytest.approx(10, abs=2)
    assert "ttft_ms.p50>+10%" in (tmp_path / "ab" / "compare.md").read_text()
    assert "<table>" in (tmp_path / "ab" / "compare.html").read_text()
    assert main(["compare", str(b), str(a), *rule, "--allow-invalid"]) == 0  # B faster: the rule does not hold
    assert "| better |" in capsys.readouterr().out


def test_compare_and_search_can_use_the_steady_state(tmp_path: Path) -> None:
    """``compare --steady`` compares the requests sent inside each stage's steady window (fewer, the same shift);
    ``search --steady`` judges each step on its window, and says so in search.json."""
    a, b = run_against(tmp_path, "a", "20"), run_against(tmp_path, "b", "30")
    steady_a = json.loads((a / "summary.json").read_text())["targets"]["mock"]["stages"]["c2"]["steady"]
    assert steady_a["reached"] and 0.5 < steady_a["share"] <= 1 and steady_a["metrics"]["requests"]["ok"] < 80
    args = ["--metric", "ttft_ms.p50", "--allow-invalid"]
    assert main(["compare", str(a), str(b), *args, "--steady", "--out", str(tmp_path / "steady")]) == 0
    row = json.loads((tmp_path / "steady" / "compare.json").read_text())["rows"][0]
    assert row["verdict"] == "worse" and row["diff"] == pytest.approx(10, abs=2)
    assert row["a"] == pytest.approx(steady_a["metrics"]["ttft_ms"]["p50"], abs=0.01)  # the window's requests
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "2") as url:
        base = profile(url, tmp_path, 6, load={"type": "rate", "rate": 20, "duration_s": 2, "arrival": "constant"})
        base = with_prices(base, ["mock=3.6"])
        found = search(base, SLO.parse("ttft_p99_ms=500"), tmp_path / "search", max_steps=2, steady=True)
        assert main(["run", "--target", f"mock=openai-completions@{url}", "--model", "mock", "--rate", "5",
                     "--requests", "4", "--price-per-hour", "nope=1", "--no-progress", "--no-metrics"]) == 2
    t = found.targets["mock"]
    assert found.steady and all(step.passed for step in t.steps)
    # $3.60 an hour is $0.001 a second: the cost at capacity is that over the steady window's output tokens/s
    cost = t.cost_at_answer()
    assert cost is not None and cost.price_per_hour == 3.6 and cost.usd_per_mtok_output is not None
    summary = json.loads((Path(t.steps[-1].out) / "summary.json").read_text())
    steady_out = summary["targets"]["mock"]["stages"][next(iter(summary["targets"]["mock"]["stages"]))]["steady"]
    assert cost.usd_per_mtok_output == pytest.approx(1e-3 / steady_out["metrics"]["output_tokens_per_s"] * 1e6,
                                                     rel=1e-3)
    assert "per million output tokens (at $3.6/h)" in " ".join(answer_lines(found))


def test_a_search_stops_when_the_server_stops_answering(tmp_path: Path) -> None:
    """Issue 29, item 12: the server dies mid-search. The step whose requests cannot connect stops the search, which
    claims no capacity (the failing step measured the dead server, not a load), and says so."""
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "2") as url:
        base = profile(url, tmp_path, 6, load={"type": "rate", "rate": 4, "duration_s": 2, "arrival": "constant"})
        steps: list[str] = []

        def kill_after_two(line: str) -> None:
            steps.append(line)
            if len(steps) == 2:
                for proc in psutil.Process().children(recursive=True):
                    if "servers.mock" in " ".join(proc.cmdline()):
                        proc.kill()

        found = search(base, SLO.parse("ttft_p99_ms=500"), tmp_path / "search", max_steps=8, notify=kill_after_two)
    t = found.targets["mock"]
    assert [s.passed for s in t.steps] == [True, True, False] and t.steps[-1].unreachable
    assert t.stopped is not None and "stopped answering" in t.stopped and "could not connect" in t.stopped
    assert t.answer is None and t.lo == 8 and not t.converged
    assert "search STOPPED" in answer_lines(found)[0] and "no capacity is claimed" in answer_lines(found)[0]


def test_compare_refuses_an_invalid_run_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = run_against(tmp_path, "a", "20")
    bad = tmp_path / "bad"
    shutil.copytree(a, bad)
    summary = json.loads((bad / "summary.json").read_text())
    summary["targets"]["mock"]["validity"] = {"valid": False, "reasons": ["send lag p99 9.00 ms > 1 ms"]}
    (bad / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(a), str(bad), "--metric", "ttft_ms.p50"]) == 2
    assert "send lag p99 9.00 ms" in capsys.readouterr().err
    assert main(["compare", str(a), str(bad), "--metric", "ttft_ms.p50", "--allow-invalid"]) == 0
    assert main(["compare", str(a), str(tmp_path / "nowhere")]) == 2


def test_search_finds_the_mocks_capacity_within_its_resolution(tmp_path: Path) -> None:
    """Two slots, 50 ms to the first token and 10 ms for each of 10 more: S = 150 ms, capacity μ = 2/S =
    13.33 req/s. With constant arrivals nothing waits below μ; above it the wait grows (λ/μ − 1)·t, so over
    a 4 s step the TTFT p99 (limit 150 ms = 50 ms + 100 ms slack) fails once λ > μ·(1 + 0.1/4) = 1.025μ.
    Bisection ends with lo ≤ 1.025μ < hi and (hi − lo)/lo ≤ 5%, so lo ≥ 1.025μ/1.05 > 0.97μ."""
    capacity = 2 / 0.150
    with mock(tmp_path, "--ttft-ms", "50", "--itl-ms", "10", "--max-concurrency", "2") as url:
        base = profile(url, tmp_path, 11, warmup=2,
                       load={"type": "rate", "rate": 4, "duration_s": 4, "arrival": "constant"})
        found = search(base, SLO.parse("ttft_p99_ms=150"), tmp_path / "search", resolution=0.05, max_steps=10)
    t = found.targets["mock"]
    assert t.converged and t.answer is not None and t.hi is not None
    assert capacity * 0.97 <= t.answer <= capacity * 1.05, (t.answer, [(s.load, s.passed) for s in t.steps])
    assert (t.hi - t.answer) / t.answer <= 0.05
    saved = json.loads((tmp_path / "search" / "search.json").read_text())
    assert saved["targets"]["mock"]["answer"] == t.answer
    assert all(Path(s.out, "summary.json").exists() for s in t.steps)


def test_the_search_command_writes_its_files_and_refuses_bad_input(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with mock(tmp_path, "--ttft-ms", "10", "--itl-ms", "2") as url:
        data = profile(url, tmp_path, 6, load={"type": "rate", "rate": 20, "duration_s": 1}).model_dump(mode="json")
        path = tmp_path / "profile.yaml"
        path.write_text(json.dumps(data))  # JSON is YAML
        out = tmp_path / "search"
        assert main(["search", str(path), "--slo", "ttft_p99_ms=500", "--max-steps", "2", "--out", str(out)]) == 0
        assert main(["search", str(path), "--slo", "ttft_ms=500"]) == 2
        assert main(["search", str(path), "--slo", "ttft_p99_ms=500", "--resolution", "2"]) == 2
    printed = capsys.readouterr()
    assert "highest rate meeting the SLO = 40" in printed.out and "NOT converged" in printed.out
    assert "expected key=value pairs with keys ttft_p99_ms" in printed.err
    page = (out / "search.html").read_text()
    assert '<svg class="rig-chart"' in page and "SLO ttft_ms ≤ 500 ms" in page and 'class="rig-series' in page
    steps = json.loads((out / "search.json").read_text())["targets"]["mock"]["steps"]
    assert [s["load"] for s in steps] == [20, 40] and all(s["passed"] for s in steps)
