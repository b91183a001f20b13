"""What the mock actually did, in Prometheus text format, without prometheus-client.

Why not the library: the mock observes one value per token write, tens of thousands per
second on one core; a bisect and two additions per observation keep it off the hot path.
"""

from __future__ import annotations

from bisect import bisect_left

BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
           0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
OUTCOMES = ("ok", "http_500", "http_429", "dropped", "stalled", "malformed", "error_event", "client_gone")


class Histogram:
    __slots__ = ("count", "counts", "name", "sum")

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, help_text: str) -> list[str]:
        lines = [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, n in zip(BUCKETS, self.counts, strict=False):
            cumulative += n
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.sum!r}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class MockMetrics:
    def __init__(self) -> None:
        self.ttft = Histogram("mock_ttft_seconds")
        self.itl = Histogram("mock_itl_seconds")
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.tokens = 0

    def render(self) -> bytes:
        lines = self.ttft.render("Request fully received to its first token chunk handed to the transport")
        lines += self.itl.render("Gap between consecutive token chunk writes of one request")
        lines += ["# HELP mock_requests_total Requests by what the mock did with them",
                  "# TYPE mock_requests_total counter"]
        lines += [f'mock_requests_total{{outcome="{k}"}} {v}' for k, v in self.outcomes.items()]
        lines += ["# HELP mock_tokens_total Tokens written", "# TYPE mock_tokens_total counter",
                  f"mock_tokens_total {self.tokens}"]
        return ("\n".join(lines) + "\n").encode()
