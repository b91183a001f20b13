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

# LLM latencies: first tokens from ~10 ms (GPU, short prompt) to minutes (a deep queue);
# token gaps from ~1 ms to seconds. The same buckets for every target, so panels compare.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5,
                10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0,
               120.0, 180.0, 300.0)
TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
                     0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

LABELS = ("target", "kind", "profile", "stage")


class LiveMetrics:
    """The exporter: a record sink plus an ``issued`` hook, on its own registry."""

    def __init__(self, profile: str, registry: CollectorRegistry | None = None) -> None:
        self.profile = profile
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("loadgen_requests", "Finished requests by outcome and error class",
                                [*LABELS, "outcome", "error_class"], registry=r)
        self.in_flight = Gauge("loadgen_requests_in_flight", "Requests sent and not finished", LABELS, registry=r)
        self.ttft = Histogram("loadgen_ttft_seconds", "Time to first token from the actual send (ok requests)",
                              LABELS, buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("loadgen_itl_seconds", "Gap between consecutive token-bearing chunks (ok requests)",
                             LABELS, buckets=TOKEN_GAP_BUCKETS, registry=r)
        self.tpot = Histogram("loadgen_tpot_seconds", "(E2E - TTFT) / (output tokens - 1) per ok request",
                              LABELS, buckets=TOKEN_GAP_BUCKETS, registry=r)
        self.e2e = Histogram("loadgen_e2e_seconds", "Actual send to last byte (ok requests)", LABELS,
                             buckets=E2E_BUCKETS, registry=r)
        self.send_lag = Histogram("loadgen_send_lag_seconds", "Actual minus intended send time (every request)",
                                  LABELS, buckets=LAG_BUCKETS, registry=r)
        self.output_tokens = Counter("loadgen_output_tokens", "Output tokens of ok requests", LABELS, registry=r)
        self.input_tokens = Counter("loadgen_input_tokens", "Prompt tokens of ok requests", LABELS, registry=r)
        self.loop_lag = Histogram("loadgen_loop_lag_seconds", "The load generator's own event-loop lag",
                                  ("profile",), buckets=LAG_BUCKETS, registry=r)
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
        self.send_lag.labels(*labels).observe(m.send_lag_ms(r) / 1e3)
        if not r.ok:
            return
        if (ttft := m.ttft_ms(r)) is not None:
            self.ttft.labels(*labels).observe(ttft / 1e3)
        if (tpot := m.tpot_ms(r)) is not None:
            self.tpot.labels(*labels).observe(tpot / 1e3)
        self.e2e.labels(*labels).observe(m.e2e_ms(r) / 1e3)
        itl = self.itl.labels(*labels)
        for gap in m.itl_gaps_ms(r):
            itl.observe(gap / 1e3)
        if r.output_tokens:
            self.output_tokens.labels(*labels).inc(r.output_tokens)
        if r.prompt_tokens:
            self.input_tokens.labels(*labels).inc(r.prompt_tokens)

    def loop_lag_sample(self, lag_ns: int) -> None:
        self.loop_lag.labels(self.profile).observe(lag_ns / 1e9)
