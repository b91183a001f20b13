"""loadgen.observe, pure parts: reading engine pages under one set of names, the ``server`` and ``resources``
blocks and the TTFT breakdown against hand-computed samples, the samples files' errors, and the docs
that must name every series."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadgen import metrics as m
from loadgen.observe.prom import From, parse, total
from loadgen.observe.resources import (
    MB,
    RESOURCES_FILE,
    Nvml,
    ResourceSample,
    gauges_from_dcgm,
    gauges_from_page,
    resources_block,
)
from loadgen.observe.samples import in_window, read_samples
from loadgen.observe.server_metrics import ENGINES, SERVER_FILE, ServerSample, detect, read_series, server_block, wanted
from loadgen.observe.summary_blocks import Observed, read_observed
from loadgen.observe.ttft_breakdown import ttft_breakdown
from loadgen.record import RequestRecord
from loadgen.summary import build_summary
from tests.unit.records import manifest

ROOT = Path(__file__).resolve().parents[2]

# Excerpts of the real pages (the local stack's engines, 2026-12-02), values edited by hand.
VLLM_PAGE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2"} 3.0
vllm:num_requests_waiting{engine="0",model_name="smollm2"} 5.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="smollm2",reason="capacity"} 5.0
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2"} 0.25
vllm:num_preemptions_total{engine="0",model_name="smollm2"} 2.0
vllm:prefix_cache_queries_total{engine="0",model_name="smollm2"} 400.0
vllm:prefix_cache_hits_total{engine="0",model_name="smollm2"} 100.0
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="smollm2"} 45.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="smollm2"} 0.5
vllm:request_queue_time_seconds_count{engine="0",model_name="smollm2"} 10.0
vllm:request_prefill_time_seconds_sum{engine="0",model_name="smollm2"} 1.0
vllm:request_prefill_time_seconds_count{engine="0",model_name="smollm2"} 10.0
vllm:request_decode_time_seconds_sum{engine="0",model_name="smollm2"} 8.0
vllm:request_decode_time_seconds_count{engine="0",model_name="smollm2"} 10.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="smollm2"} 1.6
vllm:time_to_first_token_seconds_count{engine="0",model_name="smollm2"} 10.0
process_cpu_seconds_total 10.45
process_resident_memory_bytes 7.70875392e+08
"""
TRITON_PAGE = """nv_inference_request_success{model="smollm2",version="1"} 40
nv_inference_request_failure{model="smollm2",version="1"} 5
nv_inference_queue_duration_us{model="smollm2",version="1"} 90000
nv_inference_pending_request_count{model="smollm2",version="1"} 2
nv_cpu_utilization 0.25
nv_cpu_memory_used_bytes 1e10
"""
TRTLLM_PAGE = TRITON_PAGE + """nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 7
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.5
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 60
nv_gpu_utilization{gpu_uuid="GPU-a"} 0.5
nv_gpu_utilization{gpu_uuid="GPU-b"} 1.0
nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 1e9
nv_gpu_memory_used_bytes{gpu_uuid="GPU-b"} 2e9
nv_energy_consumption{gpu_uuid="GPU-a"} 100
"""
HF_PAGE = """hf:num_requests_running{model_name="m"} 1.0
hf:num_requests_waiting{model_name="m"} 0.0
hf:request_queue_time_seconds_sum{model_name="m"} 2.0
hf:request_queue_time_seconds_count{model_name="m"} 4.0
"""


def series(page: str) -> tuple[str, dict[str, float]]:
    engine = detect(page)
    assert engine is not None
    return engine.name, read_series(engine, parse(page, wanted(engine)))


def test_each_engines_page_reads_under_one_set_of_names() -> None:
    name, vllm = series(VLLM_PAGE)
    assert name == "vllm" and vllm == {
        "running": 3.0, "waiting": 5.0, "kv_cache_usage": 0.25, "preemptions": 2.0, "prefix_cache_queries": 400.0,
        "prefix_cache_hits": 100.0, "queue_time_s_sum": 0.5, "queue_time_count": 10.0, "prefill_time_s_sum": 1.0,
        "prefill_time_count": 10.0, "decode_time_s_sum": 8.0, "decode_time_count": 10.0, "ttft_s_sum": 1.6,
        "ttft_count": 10.0}
    # Triton: µs to seconds; per request over success + failure; no running, prefill or KV cache
    assert series(TRITON_PAGE) == ("triton", {"waiting": 2.0, "queue_time_s_sum": 0.09, "queue_time_count": 45.0})
    name, trt = series(TRTLLM_PAGE)  # a TensorRT-LLM page is Triton's and more: the label filters pick one value
    assert name == "trtllm" and trt["running"] == 7.0 and trt["kv_cache_usage"] == 0.5 and trt["waiting"] == 2.0
    assert series(HF_PAGE) == ("hf", {"running": 1.0, "waiting": 0.0, "queue_time_s_sum": 2.0,
                                      "queue_time_count": 4.0})
    assert detect("mock_requests_total 3\n") is None and detect("# vllm:x in a comment only\n") is None
    assert {e.name for e in ENGINES} == {"hf", "vllm", "triton", "trtllm"}


def test_parse_keeps_only_the_wanted_samples_and_sums_label_sets() -> None:
    samples = parse(VLLM_PAGE, {"vllm:num_requests_waiting", "process_"})
    assert set(samples) == {"vllm:num_requests_waiting", "vllm:num_requests_waiting_by_reason",
                            "process_cpu_seconds_total", "process_resident_memory_bytes"}
    assert total(samples, From("vllm:num_requests_waiting")) == 5.0
    assert total(samples, From("vllm:num_requests_running")) is None  # not wanted, not read: absent, not 0
    two = parse('x{gpu="0"} 1\nx{gpu="1"} 2\n', {"x"})
    assert total(two, From("x")) == 3 and total(two, From("x", {"gpu": "1"}, scale=10)) == 20


def test_resource_gauges_from_each_kind_of_page() -> None:
    assert gauges_from_page(parse(VLLM_PAGE, {"process_"})) == {
        "metrics": {"cpu_s": 10.45, "rss_bytes": 770875392.0}}
    trt = gauges_from_page(parse(TRTLLM_PAGE, {"nv_"}))
    assert trt["metrics-host"] == {"cpu_percent": 25.0}  # Triton's host CPU: kept apart from a process's
    assert trt["metrics"] == {"gpu_mem_bytes": 3e9, "gpu_util_percent": 75.0, "energy_j": 100.0}
    assert gauges_from_page(parse(HF_PAGE, {"hf:", "process_", "nv_"})) == {}
    dcgm = ('DCGM_FI_DEV_FB_USED{gpu="0"} 1024\nDCGM_FI_DEV_FB_USED{gpu="1"} 1024\n'
            'DCGM_FI_DEV_POWER_USAGE{gpu="0"} 300\n')
    assert gauges_from_dcgm(parse(dcgm, {"DCGM_"})) == {"gpu_mem_bytes": 2048 * MB, "power_w": 300.0}


def server(t_s: float, stage: str | None = "c1", **values: float) -> ServerSample:
    return ServerSample(t_ns=int(t_s * 1e9), target="vllm", stage=stage, engine="vllm", values=values)


def test_server_block_means_gauges_and_differences_counters() -> None:
    samples = [
        server(0, running=1, waiting=4, queue_time_s_sum=1.0, queue_time_count=10, preemptions=3,
               prefix_cache_hits=10, prefix_cache_queries=100),
        server(1, running=3, waiting=0, queue_time_s_sum=1.6, queue_time_count=13),
        server(2, running=2, waiting=2, queue_time_s_sum=2.2, queue_time_count=16, preemptions=5,
               prefix_cache_hits=40, prefix_cache_queries=200),
    ]
    block = server_block(samples)
    assert block is not None and block.engine == "vllm" and block.samples == 3
    assert (block.running.mean, block.running.max) == (2.0, 3.0)
    assert (block.waiting.mean, block.waiting.max) == (2.0, 4.0)
    assert block.queue_time_ms == pytest.approx(200.0)  # (2.2 − 1.0) s / (16 − 10) requests
    assert block.preemptions == 2 and block.prefix_cache_hits == 30 and block.prefix_cache_hit_rate == 0.3
    # Not exported: null, never 0; a counter that went down (a restart): null
    assert block.kv_cache_usage is None and block.prefill_time_ms is None and block.decode_time_ms is None
    restarted = server_block([server(0, queue_time_s_sum=5, queue_time_count=50), server(1, queue_time_s_sum=0.1,
                                                                                         queue_time_count=1)])
    assert restarted is not None and restarted.queue_time_ms is None
    nothing_finished = server_block([server(0, queue_time_s_sum=1, queue_time_count=2)] * 2)
    assert nothing_finished is not None and nothing_finished.queue_time_ms is None
    failed = [ServerSample(t_ns=0, target="vllm", stage="c1", error="ConnectError: refused")]
    assert server_block(failed) is None


def resource(t_s: float, source: str = "process", stage: str | None = "c1", **fields: float) -> ResourceSample:
    return ResourceSample(t_ns=int(t_s * 1e9), target="vllm", stage=stage, source=source, **fields)


def test_resources_block_takes_each_figure_from_the_best_source() -> None:
    samples = [
        resource(0, cpu_s=10.0, rss_bytes=100 * MB), resource(1, cpu_s=10.5, rss_bytes=300 * MB),
        resource(2, cpu_s=12.5, rss_bytes=200 * MB),
        resource(0, "metrics", cpu_s=1.0, rss_bytes=50 * MB), resource(2, "metrics", cpu_s=1.1, rss_bytes=60 * MB),
    ]
    block = resources_block(samples, output_tokens=500)
    assert block is not None
    assert (block.cpu_percent.mean, block.cpu_percent.max) == (125.0, 200.0)  # 2.5 CPU-s over 2 s; 2 CPU-s in 1 s
    assert block.rss_mb == 300.0 and block.cpu_s == 2.5
    assert block.output_tokens_per_cpu_s == 200.0  # 500 tokens / 2.5 CPU-s
    assert block.sources == {"cpu_percent": "process", "rss_mb": "process"}
    # No GPU source: null, never 0; nor tokens per joule
    assert block.gpu_mem_mb is None and block.gpu_util_percent is None and block.energy_j is None
    assert block.output_tokens_per_j is None
    assert resources_block([], 10) is None


def test_cpu_max_is_not_a_clock_tick_over_a_few_milliseconds() -> None:
    """CPU times tick in 10 ms; a stage mark 5 ms after a periodic sample must not read as 200 %."""
    samples = [resource(0, cpu_s=1.0), resource(1, cpu_s=1.5), resource(1.005, cpu_s=1.51),
               resource(2, cpu_s=2.0)]
    block = resources_block(samples, output_tokens=10)
    assert block is not None and block.cpu_percent is not None
    assert block.cpu_percent.mean == 50.0 and block.cpu_percent.max == 50.0


def test_energy_from_the_counter_else_from_power_over_time() -> None:
    counter = [resource(0, "nvml", energy_j=1000.0, power_w=100.0, gpu_mem_bytes=2048 * MB, gpu_util_percent=50),
               resource(4, "nvml", energy_j=1800.0, power_w=300.0, gpu_mem_bytes=1024 * MB, gpu_util_percent=100)]
    block = resources_block(counter, output_tokens=400)
    assert block is not None and block.energy_j == 800.0 and block.output_tokens_per_j == 0.5
    assert block.gpu_mem_mb == 2048.0 and block.gpu_util_percent == 75.0
    assert block.sources == {"gpu_mem_mb": "nvml", "gpu_util_percent": "nvml", "energy_j": "nvml"}
    power = [resource(0, "dcgm", power_w=100.0), resource(4, "dcgm", power_w=300.0)]
    block = resources_block(power, output_tokens=400)
    assert block is not None and block.energy_j == 800.0  # trapezoid: (100 + 300) / 2 W × 4 s
    assert block.sources == {"energy_j": "dcgm (power × time)"}


def test_host_cpu_readings_are_used_only_without_a_process_counter() -> None:
    host = [resource(0, "metrics-host", cpu_percent=20.0), resource(1, "metrics-host", cpu_percent=40.0)]
    block = resources_block(host, output_tokens=10)
    assert block is not None and (block.cpu_percent.mean, block.cpu_percent.max) == (30.0, 40.0)
    assert block.cpu_s is None and block.output_tokens_per_cpu_s is None  # a host share is no CPU time
    assert block.sources == {"cpu_percent": "metrics-host"}


def rec(i: int, *, sent: float, first: float | None, intended: float | None = None, ok: bool = True,
        connect: float | None = None, tokens: int = 4, stage: str = "c1") -> RequestRecord:
    ms = 1_000_000
    return RequestRecord(
        target="vllm", kind="openai-completions", stage=0, stage_name=stage, index=i, prompt_id=str(i),
        intended_ns=int((intended if intended is not None else sent) * ms), sent_ns=int(sent * ms),
        first_token_ns=None if first is None else int(first * ms), end_ns=int(((first or sent) + 50) * ms),
        status=200 if ok else 500, error=None if ok else "http_5xx", output_tokens=tokens,
        connect_start_ns=None if connect is None else int((intended or sent) * ms),
        connect_ns=None if connect is None else int(((intended or sent) + connect) * ms))


def test_ttft_breakdown_adds_up_to_the_mean_ttft() -> None:
    records = [rec(0, intended=0, sent=3, first=103, connect=2),  # send lag 1, connect 2, TTFT 100
               rec(1, intended=0, sent=1, first=61),  # send lag 1, TTFT 60
               rec(2, sent=0, first=None, ok=False)]  # no first token: not counted
    block = server_block([server(0, queue_time_s_sum=0, queue_time_count=0, prefill_time_s_sum=0,
                                 prefill_time_count=0),
                          server(1, queue_time_s_sum=0.02, queue_time_count=2, prefill_time_s_sum=0.05,
                                 prefill_time_count=2)])
    b = ttft_breakdown(records, block)
    assert b is not None
    assert (b.ttft_ms, b.send_lag_ms, b.connect_ms) == (80.0, 1.0, 1.0)
    assert (b.queue_ms, b.prefill_ms, b.delivery_ms, b.unsplit_ms, b.missing) == (10.0, 25.0, 45.0, None, [])
    triton = server_block([server(0, queue_time_s_sum=0, queue_time_count=0),
                           server(1, queue_time_s_sum=0.02, queue_time_count=2)])
    b = ttft_breakdown(records, triton)  # no prefill time: the rest is not called delivery
    assert b is not None and b.queue_ms == 10.0 and b.prefill_ms is None
    assert b.delivery_ms is None and b.unsplit_ms == 70.0 and b.missing == ["prefill"]
    b = ttft_breakdown(records, None)
    assert b is not None and b.unsplit_ms == 80.0 and b.missing == ["queue", "prefill"]
    assert ttft_breakdown([records[2]], block) is None


def test_samples_are_attributed_to_their_stage_and_warmup_is_left_out() -> None:
    samples = [server(0, stage=None, running=9), server(1, stage="c1", running=1), server(2, stage="c4", running=4),
               ServerSample(t_ns=3, target="other", stage="c1", engine="hf", values={"running": 7})]
    assert [s.values["running"] for s in in_window(samples, "vllm", "c4")] == [4]
    assert [s.values["running"] for s in in_window(samples, "vllm")] == [1, 4]


def test_build_summary_puts_the_blocks_on_the_target_and_its_stages() -> None:
    records = [rec(0, sent=0, first=100, stage="c1"), rec(1, sent=2000, first=2100, stage="c4")]
    records[1] = records[1].model_copy(update={"stage": 1})
    observed = Observed(
        resources=[resource(0, stage="c1", cpu_s=1.0, rss_bytes=MB), resource(1, stage="c1", cpu_s=1.5, rss_bytes=MB),
                   resource(2, stage="c4", cpu_s=1.5, rss_bytes=2 * MB),
                   resource(3, stage="c4", cpu_s=3.5, rss_bytes=2 * MB)],
        server=[server(0, stage="c1", running=1), server(2, stage="c4", running=3)])
    summary = build_summary(records, [], manifest(), {}, observed=observed)
    target = summary.targets["vllm"]
    assert target.resources is not None and target.resources.cpu_s == 2.5 and target.resources.rss_mb == 2.0
    assert target.stages["c1"].resources.cpu_percent.mean == 50.0
    assert target.stages["c4"].resources.cpu_percent.mean == 200.0
    assert target.stages["c4"].server.running.mean == 3.0 and target.server.running.max == 3.0
    assert target.ttft_breakdown is not None and target.ttft_breakdown.ttft_ms == 100.0
    data = json.loads(summary.to_json())["targets"]["vllm"]
    assert {"resources", "server", "ttft_breakdown"} <= set(data) and "resources" in data["stages"]["c1"]
    # A target nobody observed keeps the layout it always had
    plain = json.loads(build_summary(records, [], manifest(), {}).to_json())["targets"]["vllm"]
    assert not {"resources", "server", "ttft_breakdown"} & set(plain)


def test_a_damaged_samples_line_names_the_file_line_and_field(tmp_path: Path) -> None:
    good = resource(0, cpu_s=1.0).model_dump_json(exclude_defaults=True)
    (tmp_path / RESOURCES_FILE).write_text(good + "\n" + good.replace('"cpu_s":1.0', '"cpu_s":"lots"') + "\n")
    with pytest.raises(ValueError, match=rf"{RESOURCES_FILE}:2: not a ResourceSample line: field cpu_s"):
        read_observed(tmp_path)
    (tmp_path / RESOURCES_FILE).write_text(good + "\n" + good[:20])  # cut short by a kill: skipped
    assert len(read_observed(tmp_path).resources) == 1
    (tmp_path / SERVER_FILE).write_text('{"t_ns": 1, "target": "x", "colour": "red"}\n')
    with pytest.raises(ValueError, match=rf"{SERVER_FILE}:1: .*field colour"):
        read_samples(tmp_path / SERVER_FILE, ServerSample)
    assert read_observed(tmp_path / "nowhere") == Observed([], [])


def test_the_docs_name_every_series_engine_and_derived_metric() -> None:
    observability = (ROOT / "docs" / "observability.md").read_text()
    table = observability[observability.index("| series |"):]
    names = {"running", "waiting", "kv_cache_usage", "queue_time_ms", "prefill_time_ms", "decode_time_ms",
             "server_ttft_ms", "prefix_cache_hits", "prefix_cache_hit_rate", "preemptions"}
    missing = [n for n in names if not re.search(rf"`{n}`", table)]
    assert missing == [], f"docs/observability.md's series table lacks {missing}"
    for field in ("cpu_percent", "rss_mb", "gpu_mem_mb", "gpu_util_percent", "energy_j", "server_metrics.jsonl",
                  "resources.jsonl", "metrics_url", "pid", "observe.dcgm_url"):
        assert f"`{field}`" in observability, field
    metrics_doc = (ROOT / "docs" / "metrics.md").read_text()
    assert [e.name for e in m.EFFICIENCY if f"`{e.name}`" not in metrics_doc] == []


class FakeNvml:
    """NVML's calls as nvidia-ml-py names them, for two boards; the second has no energy counter (NotSupported
    on older boards). Only the units and the combining are under test: no GPU here."""

    class NotSupported(Exception):
        pass

    def nvmlDeviceGetMemoryInfo(self, h: int) -> object:
        return type("Memory", (), {"used": (h + 1) * 1024 * MB})()

    def nvmlDeviceGetUtilizationRates(self, h: int) -> object:
        return type("Rates", (), {"gpu": 40 + 20 * h})()

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 150_000 + 50_000 * h  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if h == 1:
            raise self.NotSupported()
        return 5_000_000  # mJ


def test_nvml_readings_in_our_units_and_no_energy_unless_every_board_has_it() -> None:
    reading = Nvml(FakeNvml(), [0, 1]).read()
    assert reading == {"gpu_mem_bytes": 3072 * MB, "gpu_util_percent": 50.0, "power_w": 350.0, "energy_j": None}
    assert Nvml(FakeNvml(), [0]).read() == {"gpu_mem_bytes": 1024 * MB, "gpu_util_percent": 40.0, "power_w": 150.0,
                                             "energy_j": 5000.0}
