"""Live Prometheus metrics of a running load test, measured by the client.

Why the client's and not the servers': the servers' own metrics are not comparable (vLLM times
TTFT from arrival, Triton has no first-response histogram for a python or TensorRT-LLM
backend, the baseline measures in its own process), so the one fair live view is this
client's, with the same buckets for every target. Every value comes from the same functions
as ``summary.json`` (``loadgen.metrics``), converted to seconds, Prometheus's unit; warm-up
requests are exported too, under ``stage="warmup"``.

Labels: ``target`` (the profile's target name), ``kind`` (its API: openai-chat, ...),
``profile`` and ``stage`` (the stage label, e.g. ``c16``). Metrics:

- ``loadgen_requests_total{outcome="ok"|"error", error_class}``: finished requests;
- ``loadgen_requests_in_flight``: sent and not finished;
- ``loadgen_ttft_seconds``, ``loadgen_itl_seconds`` (one observation per token gap),
  ``loadgen_tpot_seconds``, ``loadgen_e2e_seconds``: histograms of successful requests;
- ``loadgen_send_lag_seconds``: actual − intended send time, every request;
- ``loadgen_output_tokens_total``, ``loadgen_input_tokens_total``: tokens of successful requests;
- ``loadgen_loop_lag_seconds``: the client's event-loop lag (histogram of the monitor's samples).
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from loadgen import metrics as m
from loadgen.record import RequestRecord

LABELS = ("target", "kind", "profile", "stage")


class LiveMetrics:
    """The exporter: a record sink plus an ``issued`` hook, on its own registry. Histograms are
    the registered distributions that name an ``exported`` form (``loadgen.metrics``)."""

    def __init__(self, profile: str, registry: CollectorRegistry | None = None) -> None:
        self.profile = profile
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("loadgen_requests", "Finished requests by outcome and error class",
                                [*LABELS, "outcome", "error_class"], registry=r)
        self.in_flight = Gauge("loadgen_requests_in_flight", "Requests sent and not finished", LABELS, registry=r)
        self.output_tokens = Counter("loadgen_output_tokens", "Output tokens of ok requests", LABELS, registry=r)
        self.input_tokens = Counter("loadgen_input_tokens", "Prompt tokens of ok requests", LABELS, registry=r)
        self.per_record: list[tuple[m.Distribution, Histogram]] = []
        self.loop_lag: Histogram | None = None
        for d in m.DISTRIBUTIONS:
            if d.exported is None:
                continue
            labels = ("profile",) if d.source == "loop_lag" else LABELS
            histogram = Histogram(d.exported.name, d.exported.help, labels, buckets=d.exported.buckets, registry=r)
            if d.source == "loop_lag":
                self.loop_lag = histogram
            else:
                self.per_record.append((d, histogram))
        self._server: WSGIServer | None = None

    def serve(self, host: str = "127.0.0.1", port: int = 9400) -> int:
        """Serve ``/metrics`` on a background thread; returns the port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issued(self, target: str, kind: str, stage: str) -> None:
        self.in_flight.labels(target, kind, self.profile, stage).inc()

    def __call__(self, r: RequestRecord) -> None:
        labels = (r.target, r.kind, self.profile, r.stage_name)
        self.in_flight.labels(*labels).dec()
        self.requests.labels(*labels, "ok" if r.ok else "error", r.error or "").inc()
        for d, histogram in self.per_record:
            if r.ok or not d.ok_only:
                child = histogram.labels(*labels)
                for value in d.samples(r):  # type: ignore[misc]
                    child.observe(value / 1e3)
        if r.ok and r.output_tokens:
            self.output_tokens.labels(*labels).inc(r.output_tokens)
        if r.ok and r.prompt_tokens:
            self.input_tokens.labels(*labels).inc(r.prompt_tokens)

    def loop_lag_sample(self, lag_ns: int) -> None:
        if self.loop_lag is not None:
            self.loop_lag.labels(self.profile).observe(lag_ns / 1e9)
