"""Engine metrics under one set of names: ``server_metrics.jsonl`` and the ``server`` block.

Why one set of names: the baseline (``hf:``), vLLM (``vllm:``) and Triton/TensorRT-LLM (``nv_``)
each export their scheduler's state under their own names and units; a comparison needs them side
by side. ``ENGINES`` maps each engine's samples to the canonical series below (seconds, ratios 0–1,
counts); a series an engine does not export is simply absent from its samples, and null in its
``server`` block — never a zero. docs/observability.md has the table of who exports what.

Gauges (``running``, ``waiting``, ``kv_cache_usage``) are summarized over a stage by their mean and
max over the samples; histograms and counters by their increase between the stage's first and last
sample (its start and end marks), so ``queue_time_ms`` is the mean queue time of the requests the
engine finished during the stage: Δsum / Δcount.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from loadgen.observe.prom import From, Samples, sum_of, total
from loadgen.observe.samples import Sample, first_last_delta

SERVER_FILE = "server_metrics.jsonl"

GAUGES = ("running", "waiting", "kv_cache_usage")
# Histograms: (sum in seconds, count) pairs; the block shows Δsum/Δcount in ms.
TIMES = {"queue_time_ms": "queue_time", "prefill_time_ms": "prefill_time", "decode_time_ms": "decode_time",
         "server_ttft_ms": "ttft"}
COUNTERS = ("prefix_cache_hits", "prefix_cache_queries", "preemptions")


def _histogram(prefix: str, name: str) -> dict[str, tuple[From, ...]]:
    return {f"{name.split('request_')[-1].removesuffix('_seconds')}_s_sum": (From(f"{prefix}{name}_sum"),),
            f"{name.split('request_')[-1].removesuffix('_seconds')}_count": (From(f"{prefix}{name}_count"),)}


def _vllm_like(prefix: str) -> dict[str, tuple[From, ...]]:
    """vLLM's V1 names; the baseline exports the same ones under ``hf:`` (servers/hf/metrics.py)."""
    series = {"running": (From(f"{prefix}num_requests_running"),),
              "waiting": (From(f"{prefix}num_requests_waiting"),),
              "kv_cache_usage": (From(f"{prefix}kv_cache_usage_perc"),),
              "ttft_s_sum": (From(f"{prefix}time_to_first_token_seconds_sum"),),
              "ttft_count": (From(f"{prefix}time_to_first_token_seconds_count"),)}
    for name in ("request_queue_time_seconds", "request_prefill_time_seconds", "request_decode_time_seconds"):
        series.update(_histogram(prefix, name))
    return series


_TRITON = {
    "waiting": (From("nv_inference_pending_request_count"),),
    # Cumulative µs over every request; per request over the finished ones (success + failure).
    "queue_time_s_sum": (From("nv_inference_queue_duration_us", scale=1e-6),),
    "queue_time_count": (From("nv_inference_request_success"), From("nv_inference_request_failure")),
}


@dataclass(frozen=True)
class Engine:
    """How to recognise an engine's page (a line starting with ``marker``) and read its series."""

    name: str
    marker: str
    series: dict[str, tuple[From, ...]]


ENGINES: tuple[Engine, ...] = (  # first match wins: TensorRT-LLM pages also have Triton's nv_inference_*
    Engine("trtllm", "nv_trt_llm_", {
        **_TRITON,
        "running": (From("nv_trt_llm_request_metrics", {"request_type": "active"}),),
        "kv_cache_usage": (From("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "fraction"}),)}),
    Engine("triton", "nv_inference_", _TRITON),
    Engine("vllm", "vllm:", {
        **_vllm_like("vllm:"),
        "prefix_cache_hits": (From("vllm:prefix_cache_hits_total"),),
        "prefix_cache_queries": (From("vllm:prefix_cache_queries_total"),),
        "preemptions": (From("vllm:num_preemptions_total"),)}),
    Engine("hf", "hf:", _vllm_like("hf:")),
)


def detect(text: str) -> Engine | None:
    """The engine whose marker starts a line of the page; None for a page of none of them."""
    page = "\n" + text
    return next((e for e in ENGINES if f"\n{e.marker}" in page), None)


def wanted(engine: Engine) -> set[str]:
    return {f.sample for sources in engine.series.values() for f in sources}


def read_series(engine: Engine, samples: Samples) -> dict[str, float]:
    """The canonical series present on the page (absent ones left out)."""
    values = {}
    for name, sources in engine.series.items():
        value = sum_of(samples, sources) if len(sources) > 1 else total(samples, sources[0])
        if value is not None:
            values[name] = value
    return values


class ServerSample(Sample):
    """One scrape of a target's ``/metrics``: the canonical series found (``values``), the engine the
    page belongs to, or the reason the scrape failed (``error``; then no values)."""

    engine: str | None = None
    values: dict[str, float] = Field(default_factory=dict)
    error: str | None = None


class GaugeStats(BaseModel):
    """Mean and max of a gauge over the samples of a window."""

    mean: float
    max: float


class ServerBlock(BaseModel):
    """The engine's own view of one target and stage (null: the engine does not export it).
    Times are means per request the engine finished in the window, in ms; ``kv_cache_usage`` is 0–1;
    ``prefix_cache_hits`` and ``preemptions`` are increases over the window (tokens, events)."""

    model_config = ConfigDict(extra="forbid")
    engine: str | None
    samples: int
    running: GaugeStats | None = None
    waiting: GaugeStats | None = None
    kv_cache_usage: GaugeStats | None = None
    queue_time_ms: float | None = None
    prefill_time_ms: float | None = None
    decode_time_ms: float | None = None
    server_ttft_ms: float | None = None
    prefix_cache_hits: float | None = None
    prefix_cache_hit_rate: float | None = None
    preemptions: float | None = None


def _points(samples: list[ServerSample], name: str) -> list[tuple[int, float]]:
    return [(s.t_ns, s.values[name]) for s in samples if name in s.values]


def mean_time_ms(samples: list[ServerSample], base: str) -> float | None:
    """Δ(sum of seconds) / Δcount over the window, in ms; None when nothing finished or not exported."""
    spent, count = first_last_delta(_points(samples, f"{base}_s_sum")), first_last_delta(_points(samples,
                                                                                                  f"{base}_count"))
    if spent is None or not count:
        return None
    return round(spent / count * 1000, 4)


def server_block(samples: list[ServerSample]) -> ServerBlock | None:
    """The ``server`` block of one window's samples (``samples.in_window``); None when no scrape worked."""
    good = [s for s in samples if s.error is None and s.engine is not None]
    if not good:
        return None
    block = ServerBlock(engine=good[-1].engine, samples=len(good))
    for name in GAUGES:
        values = [v for _, v in _points(good, name)]
        if values:
            setattr(block, name, GaugeStats(mean=round(sum(values) / len(values), 4), max=round(max(values), 4)))
    for field, base in TIMES.items():
        setattr(block, field, mean_time_ms(good, base))
    hits = first_last_delta(_points(good, "prefix_cache_hits"))
    queries = first_last_delta(_points(good, "prefix_cache_queries"))
    block.prefix_cache_hits = hits
    block.prefix_cache_hit_rate = round(hits / queries, 4) if hits is not None and queries else None
    block.preemptions = first_last_delta(_points(good, "preemptions"))
    return block
