"""Grafana dashboards as code (``grafana-foundation-sdk``), rendered to ``grafana/dashboards/*.json``.

Why code: five dashboards share the same PromQL patterns (a quantile from a histogram, a rate per
target), and a query written once cannot drift between panels. The committed JSON is what Grafana's
file provider loads; a test regenerates it and fails when it differs from the code, and another
evaluates every query against a real Prometheus after a real run on the CPU engines.

Every panel says what it needs: ``cpu`` (the CPU stack exports it), ``gpu`` (DCGM, or torch on
CUDA) or ``trtllm`` (the TensorRT-LLM backend's ``nv_trt_llm_*`` metrics). The dashboard test
expects data from every ``cpu`` query and lists the others.

    python -m grafana.dashboards          # rewrite grafana/dashboards/*.json
    python -m grafana.dashboards --check  # exit 1 when the committed JSON is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # fixed uid, see provisioning/datasources
RATE = "$__rate_interval"
Needs = Literal["cpu", "gpu", "trtllm"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    needs: Needs = "cpu"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelSpec, ...]], ...]
    target_variable: bool = False
    tags: tuple[str, ...] = field(default=("llm-serving-rig",))


def quantiles(metric: str, by: str, selector: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> tuple[Query, ...]:
    """p50/p95/p99 of a Prometheus histogram over the rate window, one series per ``by`` value."""
    legend_by = "".join(f"{{{{{label}}}}} " for label in by.split(", ") if label)
    return tuple(Query(f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) "
                       f"(rate({metric}_bucket{selector}[{RATE}])))", f"{legend_by}p{round(q * 100)}")
                 for q in qs)


T = '{target=~"$target"}'
ENGINE_JOBS = '{job!="loadgen"}'  # every scrape job but the load generator's is an engine (or DCGM)
# What the engines cost (docs/observability.md, "Resources"): the gauges each engine exports itself; the
# report's resources block adds the process tree (vLLM's engine core included) when the rig started it.
RESOURCES = (
    PanelSpec("Engine CPU (cores)", "short", (Query(
        f"sum by (job) (rate(process_cpu_seconds_total{ENGINE_JOBS}[{RATE}]))", "{{job}}"),),
              description="process_cpu_seconds_total of each engine's serving process (vLLM: its API server, "
                          "not its engine core; Triton exports none: see host CPU)."),
    PanelSpec("Engine resident memory", "bytes", (Query(
        f"sum by (job) (process_resident_memory_bytes{ENGINE_JOBS})", "{{job}}"),),
              description="process_resident_memory_bytes of each engine's serving process."),
    PanelSpec("Host CPU utilization (Triton's nv_cpu_utilization)", "percentunit", (Query(
        "avg by (job) (nv_cpu_utilization)", "{{job}}"),),
              description="The whole host as Triton sees it, not Triton's own share."),
    PanelSpec("Output tokens per engine CPU-second", "short", (Query(
        f'sum by (target) (rate(loadgen_output_tokens_total{T}[{RATE}])) / on (target) label_replace(sum by '
        f'(job) (rate(process_cpu_seconds_total{ENGINE_JOBS}[{RATE}])), "target", "$1", "job", "(.+)")',
        "{{target}}"),),
              description="Client-side output tokens/s over the engine's CPU-seconds/s, for targets named "
                          "after their engine's scrape job (the stack's are)."),
    PanelSpec("GPU memory used", "bytes", (Query("sum by (gpu) (DCGM_FI_DEV_FB_USED) * 1048576", "GPU {{gpu}}"),),
              needs="gpu", description="DCGM reports MiB; shown in bytes. Every process on the GPU counts."),
    PanelSpec("GPU power", "watt", (
        Query("sum by (gpu) (DCGM_FI_DEV_POWER_USAGE)", "GPU {{gpu}} W"),), needs="gpu",
              description="Energy per run: the report's resources block (energy_j, output tokens per joule)."),
)
LOADGEN = DashboardSpec(
    uid="llm-serving-comparison", title="LLM serving comparison (client-side)", target_variable=True,
    description="The load generator's own measurements, the same buckets for every target: the one fair "
                "comparison across engines. Formulas: docs/metrics.md.",
    rows=(
        ("Latency", (
            PanelSpec("Time to first token", "s", quantiles("loadgen_ttft_seconds", "target", T),
                      description="From the actual send to the first token-bearing chunk."),
            PanelSpec("Inter-token latency", "s", quantiles("loadgen_itl_seconds", "target", T),
                      description="Every gap between consecutive token-bearing chunks."),
            PanelSpec("End-to-end latency", "s", quantiles("loadgen_e2e_seconds", "target", T)),
            PanelSpec("Time per output token", "s", quantiles("loadgen_tpot_seconds", "target", T),
                      description="(E2E − TTFT) / (output tokens − 1), per request."),
        )),
        ("Throughput and errors", (
            PanelSpec("Output tokens/s", "short", (Query(
                f"sum by (target) (rate(loadgen_output_tokens_total{T}[{RATE}]))", "{{target}}"),)),
            PanelSpec("Requests/s by outcome", "reqps", (Query(
                f"sum by (target, outcome) (rate(loadgen_requests_total{T}[{RATE}]))", "{{target}} {{outcome}}"),)),
            PanelSpec("Errors by class", "short", (Query(
                f'sum by (target, error_class) (increase(loadgen_requests_total{{target=~"$target", '
                f'outcome="error"}}[{RATE}]))', "{{target}} {{error_class}}"),)),
            PanelSpec("Requests in flight", "short", (Query(
                f"sum by (target) (loadgen_requests_in_flight{T})", "{{target}}"),)),
        )),
        ("The load generator itself", (
            PanelSpec("Send lag p99 (actual − intended send)", "s",
                      quantiles("loadgen_send_lag_seconds", "target", T, qs=(0.99,))),
            PanelSpec("Event-loop lag p99", "s", quantiles("loadgen_loop_lag_seconds", "", qs=(0.99,)),
                      description="Above 5 ms the client's timestamps are late."),
        )),
        ("Engine resources", RESOURCES),
    ))

VLLM = DashboardSpec(
    uid="llm-vllm", title="vLLM", description="vLLM's own V1 metrics (vllm:*). Server-side TTFT starts at "
    "arrival in the engine, not at the client's send: compare engines with the serving-comparison dashboard.",
    rows=(
        ("Scheduler", (
            PanelSpec("Requests running / waiting", "short", (
                Query("sum(vllm:num_requests_running)", "running"),
                Query("sum(vllm:num_requests_waiting)", "waiting"))),
            PanelSpec("KV-cache usage", "percentunit", (Query("avg(vllm:kv_cache_usage_perc)", "used"),)),
            PanelSpec("Preemptions/s", "short", (Query(f"sum(rate(vllm:num_preemptions_total[{RATE}]))",
                                                       "preemptions"),)),
            PanelSpec("Prompt and generation tokens/s", "short", (
                Query(f"sum(rate(vllm:prompt_tokens_total[{RATE}]))", "prompt"),
                Query(f"sum(rate(vllm:generation_tokens_total[{RATE}]))", "generation"))),
        )),
        ("Latency (server-side)", (
            PanelSpec("Time to first token", "s", quantiles("vllm:time_to_first_token_seconds", "")),
            PanelSpec("Inter-token latency", "s", quantiles("vllm:inter_token_latency_seconds", "")),
            PanelSpec("End-to-end latency", "s", quantiles("vllm:e2e_request_latency_seconds", "")),
            PanelSpec("Queue time", "s", quantiles("vllm:request_queue_time_seconds", "")),
        )),
    ))

TRITON = DashboardSpec(
    uid="llm-triton", title="Triton / TensorRT-LLM", description="Triton's nv_inference_* metrics and the "
    "TensorRT-LLM backend's nv_trt_llm_* gauges. For a decoupled model, request duration covers execute() "
    "only and errors inside a stream count as success: use the client-side dashboard for latency.",
    rows=(
        ("Triton", (
            PanelSpec("Pending requests", "short", (Query("sum by (model) (nv_inference_pending_request_count)",
                                                          "{{model}}"),)),
            PanelSpec("Success / failure per second", "reqps", (
                Query(f"sum by (model) (rate(nv_inference_request_success[{RATE}]))", "{{model}} success"),
                Query(f"sum by (model) (rate(nv_inference_request_failure[{RATE}]))", "{{model}} failure"))),
            PanelSpec("Queue and compute time per request", "µs", (
                Query(f"sum by (model) (rate(nv_inference_queue_duration_us[{RATE}])) / sum by (model) "
                      f"(rate(nv_inference_request_success[{RATE}]))", "{{model}} queue"),
                Query(f"sum by (model) (rate(nv_inference_compute_infer_duration_us[{RATE}])) / sum by (model) "
                      f"(rate(nv_inference_request_success[{RATE}]))", "{{model}} compute"))),
            PanelSpec("Executions per second", "short", (
                Query(f"sum by (model) (rate(nv_inference_exec_count[{RATE}]))", "{{model}}"),)),
        )),
        ("TensorRT-LLM", (
            PanelSpec("Active / scheduled / context requests", "short", (Query(
                'sum by (request_type) (nv_trt_llm_request_metrics{request_type=~"active|scheduled|context"})',
                "{{request_type}}"),), needs="trtllm"),
            PanelSpec("KV-cache blocks", "short", (Query(
                'sum by (kv_cache_block_type) (nv_trt_llm_kv_cache_block_metrics'
                '{kv_cache_block_type=~"used|free|max"})', "{{kv_cache_block_type}}"),), needs="trtllm"),
            PanelSpec("In-flight batching: generation / paused requests", "short", (Query(
                'sum by (inflight_batcher_specific_metric) (nv_trt_llm_inflight_batcher_metrics'
                '{inflight_batcher_specific_metric=~"generation_requests|paused_requests"})',
                "{{inflight_batcher_specific_metric}}"),), needs="trtllm",
                      description="The backend's label values (custom_metrics_reporter.cc, inflight batcher)."),
            PanelSpec("In-flight batching: context tokens per iteration", "short", (Query(
                'sum(nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric="total_context_tokens"})',
                "context tokens"),), needs="trtllm"),
        )),
    ))

BASELINE = DashboardSpec(
    uid="llm-baseline", title="Baseline (Transformers + FastAPI)", description="servers.hf's own metrics "
    "(hf:*, vLLM's names under the hf: prefix; servers/hf/README.md).",
    rows=(
        ("Scheduler", (
            PanelSpec("Requests running / waiting", "short", (
                Query("sum(hf:num_requests_running)", "running"), Query("sum(hf:num_requests_waiting)", "waiting"))),
            PanelSpec("Requests by outcome per second", "reqps", (Query(
                f"sum by (outcome) (rate(hf:requests_total[{RATE}]))", "{{outcome}}"),)),
            PanelSpec("Prompt and generation tokens/s", "short", (
                Query(f"sum(rate(hf:prompt_tokens_total[{RATE}]))", "prompt"),
                Query(f"sum(rate(hf:generation_tokens_total[{RATE}]))", "generation"))),
            PanelSpec("GPU memory (torch)", "bytes", (
                Query("max(hf:gpu_memory_allocated_bytes)", "allocated"),
                Query("max(hf:gpu_memory_peak_bytes)", "peak")), needs="gpu"),
        )),
        ("Latency (server-side)", (
            PanelSpec("Time to first token", "s", quantiles("hf:time_to_first_token_seconds", "")),
            PanelSpec("Inter-token latency", "s", quantiles("hf:inter_token_latency_seconds", "")),
            PanelSpec("End-to-end latency", "s", quantiles("hf:e2e_request_latency_seconds", "")),
            PanelSpec("Queue time", "s", quantiles("hf:request_queue_time_seconds", "")),
        )),
        ("Continuous batching (--scheduler continuous; flat with the naive scheduler)", (
            PanelSpec("Sequences per decode step", "short", quantiles("hf:batch_size", "")),
            PanelSpec("KV-cache budget reserved", "percentunit", (
                Query("max(hf:kv_cache_usage_perc)", "reserved"),)),
            PanelSpec("Admission wait", "s", quantiles("hf:admission_wait_seconds", "")),
        )),
    ))

GPU = DashboardSpec(
    uid="llm-gpu", title="GPU (DCGM)", description="NVIDIA DCGM exporter: one series per GPU.",
    rows=(
        ("GPU", (
            PanelSpec("Utilisation", "percent", (Query("avg by (gpu) (DCGM_FI_DEV_GPU_UTIL)", "GPU {{gpu}}"),),
                      needs="gpu"),
            PanelSpec("Framebuffer used", "bytes", (Query("sum by (gpu) (DCGM_FI_DEV_FB_USED) * 1048576",
                                                          "GPU {{gpu}}"),),
                      needs="gpu", description="DCGM reports MiB; shown in bytes."),
            PanelSpec("Power", "watt", (Query("sum by (gpu) (DCGM_FI_DEV_POWER_USAGE)", "GPU {{gpu}}"),),
                      needs="gpu"),
            PanelSpec("Memory-copy utilisation", "percent", (Query("avg by (gpu) (DCGM_FI_DEV_MEM_COPY_UTIL)",
                                                                   "GPU {{gpu}}"),), needs="gpu"),
        )),
    ))

DASHBOARDS = (LOADGEN, VLLM, TRITON, BASELINE, GPU)


def build(spec: DashboardSpec) -> dict:
    board = (gd.Dashboard(spec.title).uid(spec.uid).description(spec.description).tags(list(spec.tags))
             .refresh("5s").time("now-30m", "now").timezone("browser").editable())
    if spec.target_variable:
        board = board.with_variable(
            gd.QueryVariable("target").label("Target").datasource(DATASOURCE)
            .query("label_values(loadgen_requests_total, target)").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True).all_value(".*"))
    for row_title, panels in spec.rows:
        board = board.with_row(gd.Row(row_title))
        for p in panels:
            needs = "" if p.needs == "cpu" else f" Needs {'a GPU' if p.needs == 'gpu' else 'TensorRT-LLM'}."
            panel = (timeseries.Panel().title(p.title).description((p.description + needs).strip())
                     .datasource(DATASOURCE).unit(p.unit).height(8).span(p.width))
            for i, q in enumerate(p.queries):
                panel = panel.with_target(gp.Dataquery().expr(q.expr).legend_format(q.legend)
                                          .ref_id(chr(ord("A") + i)).datasource(DATASOURCE))
            board = board.with_panel(panel)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render(spec: DashboardSpec) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True) + "\n"


def all_queries() -> list[tuple[str, str, Query, Needs]]:
    """(dashboard uid, panel title, query, needs) for every query of every dashboard."""
    return [(d.uid, p.title, q, p.needs) for d in DASHBOARDS for _, panels in d.rows for p in panels
            for q in p.queries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.dashboards", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed JSON, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for spec in DASHBOARDS:
        path = OUT / f"{spec.uid}.json"
        text = render(spec)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale (run python -m grafana.dashboards): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
