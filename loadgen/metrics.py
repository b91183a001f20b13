"""Every metric the rig reports, as pure functions of request records, and the one table of them.

One definition each, formula in the docstring (and in docs/metrics.md, with the names
vLLM's benchmark, AIPerf and GuideLLM use). Times inside records are integer
nanoseconds of ``perf_counter_ns``; metrics are returned in milliseconds or per second.
Per-request metrics return ``None`` when the record lacks what they need (a failed
request has no TTFT); aggregate metrics use successful, non-warm-up requests only.

``DISTRIBUTIONS`` and ``AGGREGATES`` at the end are the registry: summary.json, summary.csv,
the console and HTML tables and the live exporter loop over them, so a new metric is one
function and one descriptor here (and its row in docs/metrics.md, which a test checks).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from loadgen.record import ERROR_CLASSES, RequestRecord

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


# -- per-request metrics ---------------------------------------------------------------------

def ttft_ms(r: RequestRecord) -> float | None:
    """Time to first token: first output-bearing chunk − actual send.
    A role-only or usage-only chunk is not a token; output of any channel (content,
    reasoning, tool calls) is."""
    return None if r.first_token_ns is None else (r.first_token_ns - r.sent_ns) / NS_PER_MS


def ttft_intended_ms(r: RequestRecord) -> float | None:
    """TTFT from the intended send time: first output-bearing chunk − intended send.
    Includes any delay before sending (client overload, in-flight cap), so it does not hide
    queueing the way latency from the actual send does (coordinated omission)."""
    return None if r.first_token_ns is None else (r.first_token_ns - r.intended_ns) / NS_PER_MS


def ttfb_ms(r: RequestRecord) -> float | None:
    """Time to first byte: response status line and headers received − actual send."""
    return None if r.first_byte_ns is None else (r.first_byte_ns - r.sent_ns) / NS_PER_MS


def e2e_ms(r: RequestRecord) -> float:
    """End-to-end latency: last byte of the response (or the error) − actual send."""
    return (r.end_ns - r.sent_ns) / NS_PER_MS


def tpot_ms(r: RequestRecord) -> float | None:
    """Time per output token after the first: (E2E − TTFT) / (output tokens − 1).
    ``output tokens`` is the server's usage count when it reports one. Undefined for one token."""
    ttft = ttft_ms(r)
    if ttft is None or not r.output_tokens or r.output_tokens < 2:
        return None
    return (e2e_ms(r) - ttft) / (r.output_tokens - 1)


def itl_gaps_ms(r: RequestRecord) -> list[float]:
    """Inter-token latency samples of one request: the gap between consecutive chunks that
    carry output tokens (chunk i's arrival − chunk i−1's arrival). One sample per gap, not
    per token: a chunk carrying k tokens is one gap (see ``chunk_tokens``)."""
    if len(r.chunk_offsets_ns) != len(r.chunk_tokens):
        raise ValueError(f"record {r.index}: {len(r.chunk_offsets_ns)} chunk offsets, {len(r.chunk_tokens)} counts")
    times = list(itertools.compress(r.chunk_offsets_ns, [n > 0 for n in r.chunk_tokens]))
    # C-level iteration (map over operator functions): this runs over every gap of every request.
    return list(map(operator.truediv, map(operator.sub, times[1:], times), itertools.repeat(NS_PER_MS)))


def connect_ms(r: RequestRecord) -> float | None:
    """Connection setup of a request that opened a new connection: connect_ns − connect_start_ns
    (TCP connect, and the TLS handshake on https). None when a pooled connection was reused (and
    for gRPC, whose one channel connects on its own). Not part of TTFT, which starts at the write."""
    if r.connect_ns is None or r.connect_start_ns is None:
        return None
    return (r.connect_ns - r.connect_start_ns) / NS_PER_MS


def send_lag_ms(r: RequestRecord) -> float:
    """Send lag: actual send − intended send − connection setup (``connect_ms``, when the request
    opened a connection): how late the client itself was. Setup is shown apart, in ``connect_ms``;
    ``ttft_intended_ms`` still includes both."""
    setup = (r.connect_ns - r.connect_start_ns) if r.connect_ns is not None and r.connect_start_ns is not None else 0
    return (r.sent_ns - r.intended_ns - setup) / NS_PER_MS


def meets_slo(r: RequestRecord, ttft: float | None, tpot: float | None, e2e: float | None) -> bool:
    """A successful request whose TTFT, TPOT and E2E are each within the given limit
    (a limit that is None is not checked; an undefined TPOT passes its limit)."""
    if not r.ok:
        return False
    t = ttft_ms(r)
    if ttft is not None and (t is None or t > ttft):
        return False
    p = tpot_ms(r)
    if tpot is not None and p is not None and p > tpot:
        return False
    return not (e2e is not None and e2e_ms(r) > e2e)


# -- distributions ---------------------------------------------------------------------------

class Stats(BaseModel):
    """mean, standard deviation (population), min, max and percentiles of one metric."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float

    def rounded(self, digits: int = 4) -> Stats:
        return Stats.model_validate({k: round(v, digits) if isinstance(v, float) else v
                                     for k, v in self.model_dump().items()})


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): rank = q/100 · (n − 1)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = q / 100.0 * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


_present = functools.partial(operator.is_not, None)  # v is not None, at C speed (filter)


def stats(values: Iterable[float | None]) -> Stats | None:
    data = sorted(filter(_present, values))
    if not data:
        return None
    n = len(data)
    mean = math.fsum(data) / n
    deviations = list(map(operator.sub, data, itertools.repeat(mean)))  # C-level: this sees every ITL gap
    var = math.fsum(map(operator.mul, deviations, deviations)) / n
    return Stats(count=n, mean=mean, std=math.sqrt(var), min=data[0], max=data[-1],
                 p50=percentile(data, 50), p90=percentile(data, 90), p95=percentile(data, 95),
                 p99=percentile(data, 99), p999=percentile(data, 99.9))


# -- aggregates over a set of records --------------------------------------------------------

def measured(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """Records that count: warm-up requests excluded."""
    return [r for r in records if not r.warmup]


def window_s(records: Sequence[RequestRecord]) -> float:
    """Measurement window: last response end − first actual send, over the given records."""
    if not records:
        return 0.0
    return (max(r.end_ns for r in records) - min(r.sent_ns for r in records)) / NS_PER_S


def output_tokens_per_s(records: Sequence[RequestRecord]) -> float:
    """Output throughput: Σ output tokens of successful requests / window."""
    w = window_s(records)
    return sum(r.output_tokens or 0 for r in records if r.ok) / w if w > 0 else 0.0


def input_tokens_per_s(records: Sequence[RequestRecord]) -> float:
    """Input throughput: Σ prompt tokens of successful requests / window."""
    w = window_s(records)
    return sum(r.prompt_tokens or 0 for r in records if r.ok) / w if w > 0 else 0.0


def requests_per_s(records: Sequence[RequestRecord]) -> float:
    """Request throughput: successful requests / window."""
    w = window_s(records)
    return sum(1 for r in records if r.ok) / w if w > 0 else 0.0


def goodput_rps(records: Sequence[RequestRecord], ttft: float | None, tpot: float | None,
                e2e: float | None) -> float:
    """Goodput: successful requests meeting every SLO / window (vLLM bench's definition)."""
    w = window_s(records)
    return sum(1 for r in records if meets_slo(r, ttft, tpot, e2e)) / w if w > 0 else 0.0


def good_token_share(records: Sequence[RequestRecord], ttft: float | None, tpot: float | None,
                     e2e: float | None) -> float | None:
    """Share of the successful requests' output tokens that belong to requests meeting every SLO limit: times a
    window's output tokens per second, the goodput tokens per second the cost of a good token is priced on
    (``loadgen.cost``). None when nothing was produced."""
    produced = sum(r.output_tokens or 0 for r in records if r.ok)
    if not produced:
        return None
    return sum(r.output_tokens or 0 for r in records if meets_slo(r, ttft, tpot, e2e)) / produced


def cached_share(records: Sequence[RequestRecord]) -> float | None:
    """Cached share of prompt tokens: Σ cached_tokens / Σ prompt_tokens over the successful requests
    whose server reported ``usage.prompt_tokens_details.cached_tokens``; None when none did.
    Near 0 means every prefill was computed; a run that repeats prompts against a warm prefix
    cache shows here how much of its input throughput the cache served."""
    reported = [r for r in records if r.ok and r.cached_tokens is not None and r.prompt_tokens]
    if not reported:
        return None
    return sum(r.cached_tokens or 0 for r in reported) / sum(r.prompt_tokens or 0 for r in reported)


def errors_by_class(records: Iterable[RequestRecord]) -> dict[str, int]:
    counts = Counter(r.error for r in records if r.error is not None)
    return {cls: counts.get(cls, 0) for cls in ERROR_CLASSES}


def first_errors(records: Iterable[RequestRecord]) -> dict[str, str]:
    """The first failed request's ``error_detail`` of each error class that occurred (why, not only how many:
    ``CERTIFICATE_VERIFY_FAILED`` behind a ``connect`` count), cut to 200 characters."""
    found: dict[str, str] = {}
    for r in sorted((r for r in records if r.error is not None), key=lambda r: r.sent_ns):
        found.setdefault(r.error, (r.error_detail or "")[:200])  # type: ignore[arg-type]
    return found


def ok_or_all(records: Iterable[RequestRecord], ok_only: bool) -> list[RequestRecord]:
    return [r for r in records if r.ok or not ok_only]


# -- the registry ----------------------------------------------------------------------------

# Live-exporter buckets (seconds). LLM latencies: first tokens from ~10 ms (GPU, short prompt)
# to minutes (a deep queue); token gaps from ~1 ms to seconds. The same for every target.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5,
                10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0,
               120.0, 180.0, 300.0)
TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
                     0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _single(metric: Callable[[RequestRecord], float | None]) -> Callable[[RequestRecord], list[float]]:
    def samples(r: RequestRecord) -> list[float]:
        value = metric(r)
        return [] if value is None else [value]

    samples.__doc__ = metric.__doc__
    return samples


@dataclass(frozen=True)
class Exported:
    """How a distribution appears on the live ``/metrics``: a histogram in seconds."""

    name: str
    help: str
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class Distribution:
    """A metric with samples per request (or, ``source="loop_lag"``, the client's loop-lag samples),
    summarized as ``Stats`` in ms. ``table``: the statistics shown in the console and HTML tables.
    ``better``: which way is an improvement (``loadgen compare``'s verdict); every latency and lag is lower."""

    name: str
    title: str
    samples: Callable[[RequestRecord], list[float]] | None
    ok_only: bool = True
    source: Literal["records", "loop_lag"] = "records"
    table: tuple[str, ...] = ()
    exported: Exported | None = None
    unit: str = "ms"
    better: Literal["lower", "higher"] = "lower"


@dataclass(frozen=True)
class Aggregate:
    """One number per target and stage, from its measured records and the profile's SLO limits
    (None where undefined). ``table``: its column's format in the tables, or None for no column.
    ``better``: which way is an improvement (``loadgen compare``); throughputs and shares are higher."""

    name: str
    title: str
    compute: Callable[[Sequence[RequestRecord], dict[str, float | None]], float | None]
    unit: str
    table: str | None = None
    better: Literal["lower", "higher"] = "higher"


def _goodput(records: Sequence[RequestRecord], slo: dict[str, float | None]) -> float | None:
    if all(v is None for v in slo.values()):
        return None
    return goodput_rps(records, slo.get("ttft_ms"), slo.get("tpot_ms"), slo.get("e2e_ms"))


DISTRIBUTIONS: tuple[Distribution, ...] = (
    Distribution("ttft_ms", "TTFT", _single(ttft_ms), table=("p50", "p99"),
                 exported=Exported("loadgen_ttft_seconds", "Time to first token from the actual send (ok requests)",
                                   TTFT_BUCKETS)),
    Distribution("ttft_intended_ms", "TTFT from intended", _single(ttft_intended_ms)),
    Distribution("ttfb_ms", "TTFB", _single(ttfb_ms)),
    Distribution("itl_ms", "ITL", itl_gaps_ms, table=("p50", "p99"),
                 exported=Exported("loadgen_itl_seconds", "Gap between consecutive token-bearing chunks (ok requests)",
                                   TOKEN_GAP_BUCKETS)),
    Distribution("tpot_ms", "TPOT", _single(tpot_ms), table=("p50",),
                 exported=Exported("loadgen_tpot_seconds", "(E2E - TTFT) / (output tokens - 1) per ok request",
                                   TOKEN_GAP_BUCKETS)),
    Distribution("e2e_ms", "E2E", _single(e2e_ms), table=("p50", "p99"),
                 exported=Exported("loadgen_e2e_seconds", "Actual send to last byte (ok requests)", E2E_BUCKETS)),
    Distribution("send_lag_ms", "send lag", _single(send_lag_ms), ok_only=False,
                 exported=Exported("loadgen_send_lag_seconds", "Actual minus intended send time (every request)",
                                   LAG_BUCKETS)),
    Distribution("loop_lag_ms", "loop lag", None, source="loop_lag",
                 exported=Exported("loadgen_loop_lag_seconds", "The load generator's own event-loop lag",
                                   LAG_BUCKETS)),
    # Last: summary.csv's earlier columns keep their places (files only grow).
    Distribution("connect_ms", "connect", _single(connect_ms), ok_only=False, table=("p99",)),
)

AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("output_tokens_per_s", "out tok/s", lambda rs, slo: output_tokens_per_s(rs), "tokens/s", "{:.1f}"),
    Aggregate("input_tokens_per_s", "in tok/s", lambda rs, slo: input_tokens_per_s(rs), "tokens/s"),
    Aggregate("requests_per_s", "req/s", lambda rs, slo: requests_per_s(rs), "requests/s", "{:.2f}"),
    Aggregate("goodput_rps", "goodput", _goodput, "requests/s", "{:.2f}"),
    Aggregate("cached_share", "cached", lambda rs, slo: cached_share(rs), "ratio"),
)


def registered_names() -> list[str]:
    return [d.name for d in DISTRIBUTIONS] + [a.name for a in AGGREGATES]


# -- efficiency: the client's tokens over the engine's resources (loadgen.observe.resources) ----------

def output_tokens_per_cpu_s(output_tokens: int, cpu_s: float | None) -> float | None:
    """Output tokens per engine CPU-second: Σ output tokens of the window's successful requests / the
    engine's CPU time over the window (user + system of its process tree, or its own
    ``process_cpu_seconds_total``). None when no source measured the engine's CPU time."""
    return round(output_tokens / cpu_s, 3) if cpu_s else None


def output_tokens_per_j(output_tokens: int, energy_j: float | None) -> float | None:
    """Output tokens per joule: Σ output tokens of the window's successful requests / the GPUs' energy over
    the window (the energy counter's increase, else power integrated over time). None without a GPU source."""
    return round(output_tokens / energy_j, 6) if energy_j else None


@dataclass(frozen=True)
class Efficiency:
    """A figure of a ``resources`` block derived from the client's output tokens and one resource figure
    (``per``: the block's field it divides by)."""

    name: str
    title: str
    compute: Callable[[int, float | None], float | None]
    per: str
    unit: str


EFFICIENCY: tuple[Efficiency, ...] = (
    Efficiency("output_tokens_per_cpu_s", "out tok per CPU-s", output_tokens_per_cpu_s, "cpu_s", "tokens/CPU-second"),
    Efficiency("output_tokens_per_j", "out tok per J", output_tokens_per_j, "energy_j", "tokens/joule"),
)
