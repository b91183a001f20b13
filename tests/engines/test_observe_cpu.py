"""The server's side of a run against the REAL engines on CPU (the baseline, vLLM, Triton; ``stack.local``
starts them and gives each target its ``pid`` and ``metrics_url``): every engine's resources come from its
process tree, each engine's own metrics are read under one set of names at the stage boundaries, and the
TTFT breakdown says what each engine cannot split."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.api import RunResult, load_run, run
from loadgen.config import Profile
from loadgen.observe.samples import in_window
from loadgen.observe.server_metrics import ServerSample
from stack.local import StackState

STAGES = {"c1": 3, "c4": 8}  # concurrency stage label → requests


@pytest.fixture(scope="module")
def observed_run(stack: StackState, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    targets = [e.target() for e in stack.engines.values()]  # each engine's main API, with its pid and metrics URL
    assert all(t["pid"] and t["metrics_url"] for t in targets)
    profile = Profile.model_validate({
        "name": "observe", "targets": targets, "warmup": 2,
        "prompts": {"input_tokens": 32, "output_tokens": 16, "count": 8, "tokenizer": str(model_dir)},
        "stages": [{"type": "concurrency", "concurrency": 1, "requests": STAGES["c1"]},
                   {"type": "concurrency", "concurrency": 4, "requests": STAGES["c4"]}],
        # Gauges (running, KV-cache usage) are instantaneous: at the default 1 s a 3-request stage of ~1.5 s may be
        # sampled only at its boundaries and between requests, when vLLM holds no blocks. Sample while they run.
        "observe": {"interval_s": 0.1},
        "metrics": {"enabled": False}})
    result = run(profile, tmp_path_factory.mktemp("observe") / "out")
    assert not result.interrupted
    assert all(r.ok for r in result.records), {(r.target, r.error, r.error_detail) for r in result.records if not r.ok}
    return result


def test_every_engine_has_cpu_and_rss_from_its_process_tree(observed_run: RunResult) -> None:
    for name, target in observed_run.summary.targets.items():
        for window, block in [("all", target), *target.stages.items()]:
            res = block.resources
            assert res is not None, (name, window)
            assert res.rss_mb is not None and res.rss_mb > 50, (name, window, res)  # a model is loaded
            assert res.cpu_percent is not None and res.cpu_percent.mean > 0 and res.cpu_percent.max > 0, (name, res)
            assert res.sources["rss_mb"] == res.sources["cpu_percent"] == "process"
            assert res.gpu_mem_mb is None and res.energy_j is None and res.output_tokens_per_j is None  # no GPU
        assert target.resources.output_tokens_per_cpu_s is not None and target.resources.output_tokens_per_cpu_s > 0
    # vLLM's tree holds its engine core too: more than the API server's own process_resident_memory_bytes
    vllm = [s for s in observed_run.observed.resources if s.target == "vllm" and s.stage is not None]
    own = max(s.rss_bytes or 0 for s in vllm if s.source == "metrics")
    tree = max(s.rss_bytes or 0 for s in vllm if s.source == "process")
    assert own > 0 and tree > 1.5 * own, (tree, own)


def test_vllm_and_the_baseline_report_their_scheduler_per_stage(observed_run: RunResult) -> None:
    vllm = observed_run.summary.targets["vllm"]
    for window, block in [("all", vllm), *vllm.stages.items()]:
        server = block.server
        assert server is not None and server.engine == "vllm", window
        assert server.kv_cache_usage is not None and server.kv_cache_usage.max > 0, (window, server)
        assert server.queue_time_ms is not None and server.prefill_time_ms is not None, (window, server)
        assert server.running is not None and server.preemptions is not None
        assert server.prefix_cache_hit_rate is not None  # vLLM counts prefix-cache queries and hits
    assert engine_concurrency(in_window(observed_run.observed.server, "vllm", "c4")) >= 1.5, "no batching at c4"
    baseline = observed_run.summary.targets["baseline"].stages["c4"].server
    assert baseline is not None and baseline.engine == "hf"
    assert baseline.queue_time_ms is not None and baseline.prefill_time_ms is not None
    assert baseline.prefix_cache_hit_rate is None and baseline.preemptions is None  # the baseline has neither


def engine_concurrency(samples: list[ServerSample]) -> float:
    """Little's law on the engine's own counters: seconds of prefill and decode the engine spent on the
    window's requests over the window's wall time, i.e. how many requests it ran at once on average. The
    ``running`` gauge is instantaneous and, on a 2-core machine where the engines starve the sampler, a
    handful of scrapes can all fall between batches; the counters cannot miss the work."""
    first, last = samples[0], samples[-1]
    busy = sum(last.values[f"{k}_s_sum"] - first.values[f"{k}_s_sum"] for k in ("prefill_time", "decode_time"))
    return busy / ((last.t_ns - first.t_ns) / 1e9)


def queue_count(samples: list[ServerSample]) -> float:
    points = [s.values["queue_time_count"] for s in samples if "queue_time_count" in s.values]
    return points[-1] - points[0]


@pytest.mark.parametrize("engine", ["vllm", "baseline", "triton"])
def test_the_stage_boundaries_count_exactly_the_stages_requests(observed_run: RunResult, engine: str) -> None:
    """The engine's own request count between a stage's start and end marks is the stage's requests: the
    warm-up and the other stages are outside, the stage's last request inside."""
    for stage, requests in STAGES.items():
        samples = in_window(observed_run.observed.server, engine, stage)
        assert samples[0].event == "stage_start" and samples[-1].event == "stage_end"
        assert queue_count(samples) == requests, (engine, stage, [s.values for s in samples])


def test_the_ttft_breakdown_says_what_each_engine_cannot_split(observed_run: RunResult) -> None:
    for name, missing in (("baseline", []), ("vllm", []), ("triton", ["prefill"])):
        for stage, block in observed_run.summary.targets[name].stages.items():
            b = block.ttft_breakdown
            assert b is not None and b.missing == missing, (name, stage, b)
            assert b.queue_ms is not None and b.send_lag_ms >= 0
            parts = [b.queue_ms, b.prefill_ms or 0.0, b.delivery_ms if not missing else b.unsplit_ms]
            assert sum(p for p in parts if p is not None) == pytest.approx(b.ttft_ms, abs=0.01)


def test_a_rebuild_from_the_files_gives_the_same_blocks(observed_run: RunResult) -> None:
    assert observed_run.out is not None
    rebuilt = load_run(observed_run.out, rebuild=True)
    assert rebuilt.summary.to_json() == observed_run.summary.to_json()
