"""Prometheus metrics of the baseline server, named like vLLM's V1 metrics under ``hf:``.

Why vLLM's names: a dashboard written for ``vllm:time_to_first_token_seconds`` works for
this server by swapping the prefix, so one template serves both. Definitions follow
vLLM's too (times are measured inside the server, from the moment the HTTP handler
accepted the request); every metric is documented in ``servers/hf/README.md``.

These are server-side views. The load generator's own client-side measurements are the
only ones comparable across engines.

The registry also carries prometheus-client's process collector (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, as vLLM's page has them): a load generator that did not start
this server (a remote target) reads its CPU and memory from there (``loadgen.observe``).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from servers.hf.sequence import Sequence

# The ``*_created`` timestamp series double the scrape size and no dashboard reads them.
disable_created_metrics()

PREFIX = "hf:"

# Latency buckets in seconds; wide enough for a 135M model on 2 CPU cores and a 7B on a GPU.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
               1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)

ADMISSION_BUCKETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
OUTCOMES = ("ok", "cancelled", "timeout", "stalled", "error", "rejected", "invalid")


class _CudaMemoryCollector(Collector):
    """Reads torch's CUDA allocator counters at scrape time (peak since start, current)."""

    def __init__(self, model_name: str, device: str) -> None:
        self._model_name = model_name
        self._device = device

    def collect(self) -> Iterable[GaugeMetricFamily]:
        import torch

        peak = GaugeMetricFamily(f"{PREFIX}gpu_memory_peak_bytes",
                                 "Peak GPU memory allocated by torch since the server started",
                                 labels=["model_name", "device"])
        current = GaugeMetricFamily(f"{PREFIX}gpu_memory_allocated_bytes",
                                    "GPU memory currently allocated by torch",
                                    labels=["model_name", "device"])
        peak.add_metric([self._model_name, self._device], float(torch.cuda.max_memory_allocated(self._device)))
        current.add_metric([self._model_name, self._device], float(torch.cuda.memory_allocated(self._device)))
        yield peak
        yield current


class ServerMetrics:
    """All series of one server instance, in its own registry (tests run several per process)."""

    def __init__(self, model_name: str, device: str = "cpu") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # this process's CPU seconds and RSS (Linux /proc)
        self.model_name = model_name
        labels = ["model_name"]

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(PREFIX + name, doc, labels, buckets=buckets, registry=self.registry)

        self.ttft = histogram("time_to_first_token_seconds",
                              "Request arrival to first generated token (includes queue time)", TTFT_BUCKETS)
        self.itl = histogram("inter_token_latency_seconds",
                             "Time between consecutive generated tokens of one request", ITL_BUCKETS)
        self.e2e = histogram("e2e_request_latency_seconds",
                             "Request arrival to its last token (or to its cancellation)", REQUEST_BUCKETS)
        self.queue_time = histogram("request_queue_time_seconds",
                                    "Request arrival to the start of its generation", REQUEST_BUCKETS)
        self.prefill_time = histogram("request_prefill_time_seconds",
                                      "Start of generation to first token (the prompt's forward pass)",
                                      REQUEST_BUCKETS)
        self.decode_time = histogram("request_decode_time_seconds",
                                     "First token to last token", REQUEST_BUCKETS)
        # The continuous scheduler's own series (the naive one runs batches of one, with no budget).
        self.batch_size = histogram("batch_size", "Sequences in one decode step (continuous scheduler)",
                                    BATCH_BUCKETS)
        self.admission_wait = histogram("admission_wait_seconds",
                                        "Time a request stood first in line, refused for want of a batch row or "
                                        "KV-cache blocks, before admission (continuous scheduler)", ADMISSION_BUCKETS)
        self.kv_cache_usage = Gauge(PREFIX + "kv_cache_usage_perc",
                                    "Share of the KV-cache token budget reserved by admitted sequences, 0-1 "
                                    "(continuous scheduler)", labels, registry=self.registry)
        self.running = Gauge(PREFIX + "num_requests_running", "Requests being generated now", labels,
                             registry=self.registry)
        self.waiting = Gauge(PREFIX + "num_requests_waiting", "Requests queued, not yet started", labels,
                             registry=self.registry)
        self.prompt_tokens = Counter(PREFIX + "prompt_tokens", "Prompt tokens of started requests", labels,
                                     registry=self.registry)
        self.generation_tokens = Counter(PREFIX + "generation_tokens", "Generated tokens", labels,
                                         registry=self.registry)
        self.request_success = Counter(PREFIX + "request_success",
                                       "Finished requests by finish reason (stop, length, abort)",
                                       [*labels, "finished_reason"], registry=self.registry)
        self.requests = Counter(PREFIX + "requests",
                                "Requests by outcome: ok, cancelled (client went away), timeout (ended at "
                                "--request-timeout-s), stalled (stream ended: its client stopped reading), "
                                "error (server fault), rejected (queue full), invalid (bad input)",
                                [*labels, "outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.requests.labels(model_name, outcome)
        for reason in ("stop", "length", "abort"):
            self.request_success.labels(model_name, reason)
        self.running.labels(model_name).set(0)
        self.kv_cache_usage.labels(model_name).set(0)
        self.batch_size.labels(model_name)  # exported (empty) with either scheduler, so dashboards find them
        self.admission_wait.labels(model_name)
        self.waiting.labels(model_name).set(0)
        if device.startswith("cuda"):
            self.registry.register(_CudaMemoryCollector(model_name, device))

    # Hooks called by schedulers (from the generation thread; prometheus-client is thread-safe).
    def set_queue_depths(self, running: int, waiting: int) -> None:
        self.running.labels(self.model_name).set(running)
        self.waiting.labels(self.model_name).set(waiting)

    def on_step(self, batch_size: int) -> None:
        self.batch_size.labels(self.model_name).observe(batch_size)

    def set_kv_cache_usage(self, usage: float) -> None:
        self.kv_cache_usage.labels(self.model_name).set(usage)

    def on_admitted(self, blocked_s: float) -> None:
        self.admission_wait.labels(self.model_name).observe(blocked_s)

    def on_scheduled(self, seq: Sequence) -> None:
        assert seq.scheduled is not None
        self.queue_time.labels(self.model_name).observe(seq.scheduled - seq.arrival)
        self.prompt_tokens.labels(self.model_name).inc(len(seq.prompt_ids))

    def on_token(self, seq: Sequence, previous_token: float | None) -> None:
        assert seq.last_token is not None
        if previous_token is None:
            self.ttft.labels(self.model_name).observe(seq.last_token - seq.arrival)
        else:
            self.itl.labels(self.model_name).observe(seq.last_token - previous_token)
        self.generation_tokens.labels(self.model_name).inc()

    def on_finished(self, seq: Sequence) -> None:
        assert seq.finished is not None and seq.finish_reason is not None
        name = self.model_name
        if seq.finish_reason == "error":
            self.requests.labels(name, "error").inc()
            return
        if seq.finish_reason == "abort":
            # The server ended these, not the client: an operator needs them apart from clients that left.
            outcome = "timeout" if seq.deadline_exceeded else "stalled" if seq.stream_stalled else "cancelled"
            self.requests.labels(name, outcome).inc()
        else:
            self.requests.labels(name, "ok").inc()
        self.request_success.labels(name, seq.finish_reason).inc()
        self.e2e.labels(name).observe(seq.finished - seq.arrival)
        if seq.scheduled is not None and seq.first_token is not None:
            self.prefill_time.labels(name).observe(seq.first_token - seq.scheduled)
            self.decode_time.labels(name).observe(seq.finished - seq.first_token)

    def on_client_error(self, status: int) -> None:
        """A request answered with a 4xx before it reached the scheduler."""
        self.requests.labels(self.model_name, "rejected" if status == 429 else "invalid").inc()
