"""The report's server side: engine resources over time, engine state beside the client's in-flight
count, where TTFT goes, and one table of the ``resources``/``server`` blocks.

Why a module of its own: these read the engines' samples (``loadgen.observe``) as well as the
records, and ``html.py`` stays the page's layout. Time axes use the same origin as the throughput
plot (the first measured send), so the plots line up with it; warm-up samples are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadgen import metrics as m
from loadgen.observe.resources import MB, PREFERENCE, ResourceSample, cpu_rates
from loadgen.observe.summary_blocks import Observed
from loadgen.observe.ttft_breakdown import PARTS
from loadgen.record import RequestRecord
from loadgen.render.svg import Axis, BarChart, Series, XYChart
from loadgen.render.table import Table
from loadgen.summary import Metrics, Summary

MAX_POINTS = 600
PART_NAMES = {"send_lag_ms": "client send lag", "connect_ms": "connect", "queue_ms": "server queue",
              "prefill_ms": "prefill", "delivery_ms": "delivery", "unsplit_ms": "not split by the engine"}


def origin_ns(records: Sequence[RequestRecord]) -> int | None:
    measured = m.measured(records)
    return min(r.sent_ns for r in measured) if measured else None


def _s(t_ns: int, origin: int) -> float:
    return (t_ns - origin) / 1e9


def _source_points(samples: list[ResourceSample], figure: str, name: str) -> list[tuple[int, float]]:
    """The (t_ns, value) points of the first source (in ``PREFERENCE`` order) that has ``name``."""
    for source in PREFERENCE[figure]:
        points = [(s.t_ns, v) for s in samples if s.source == source and (v := getattr(s, name)) is not None]
        if points:
            return points
    return []


def _cpu_points(samples: list[ResourceSample]) -> list[tuple[int, float]]:
    """CPU % between consecutive samples of the cumulative counter, else instantaneous readings."""
    return cpu_rates(_source_points(samples, "cpu", "cpu_s")) or _source_points(samples, "cpu", "cpu_percent")


def thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most ``MAX_POINTS`` of a series' samples, evenly spaced by index, the last one kept."""
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / (MAX_POINTS - 1)
    return [points[int(k * step)] for k in range(MAX_POINTS - 1)] + [points[-1]]


def resources_over_time(records: Sequence[RequestRecord], observed: Observed) -> XYChart:
    """Per target: engine CPU % (left axis), RSS and GPU memory in MB (right axis)."""
    chart = XYChart("Engine resources over time (CPU % of one core; RSS and GPU memory, MB)",
                    Axis("seconds since the first measured request"), Axis("CPU %", zero=True),
                    y2=Axis("MB", zero=True))
    origin = origin_ns(records)
    if origin is None:
        return chart
    for target in dict.fromkeys(s.target for s in observed.resources):
        mine = sorted((s for s in observed.resources if s.target == target and s.stage is not None),
                      key=lambda s: s.t_ns)
        for label, points, right, dash in (
                ("CPU %", _cpu_points(mine), False, "solid"),
                ("RSS MB", [(t, v / MB) for t, v in _source_points(mine, "rss", "rss_bytes")], True, "dash"),
                ("GPU mem MB", [(t, v / MB) for t, v in _source_points(mine, "gpu_mem", "gpu_mem_bytes")], True,
                 "dot")):
            if points:
                points = thin(points)
                chart.series.append(Series(f"{target} {label}", [_s(t, origin) for t, _ in points],
                                           [v for _, v in points], dash=dash, right_axis=right))
    return chart


def in_flight_steps(records: Sequence[RequestRecord], origin: int) -> tuple[list[float], list[int]]:
    """The client's requests in flight over time: a step at every send and every end, or, past ``MAX_POINTS``
    steps, the highest count in each of ``MAX_POINTS // 2`` equal time bins (the peaks stay visible)."""
    events = sorted([(r.sent_ns, 1) for r in records] + [(r.end_ns, -1) for r in records])
    xs, ys, level = [], [], 0
    for t, step in events:
        level += step
        xs.append(_s(t, origin))
        ys.append(level)
    if len(xs) <= MAX_POINTS:
        return xs, ys
    bins = MAX_POINTS // 2
    width = (xs[-1] - xs[0]) / bins or 1.0
    peaks: dict[int, int] = {}
    for x, y in zip(xs, ys, strict=True):
        b = min(int((x - xs[0]) / width), bins - 1)
        peaks[b] = max(peaks.get(b, 0), y)
    return [xs[0] + b * width for b in sorted(peaks)], [peaks[b] for b in sorted(peaks)]


def server_over_time(records: Sequence[RequestRecord], observed: Observed) -> XYChart:
    """Per target: the engine's running and waiting requests beside the client's in-flight count."""
    chart = XYChart("Engine running / waiting requests and the client's requests in flight",
                    Axis("seconds since the first measured request"), Axis("requests", zero=True))
    origin = origin_ns(records)
    if origin is None:
        return chart
    measured = m.measured(records)
    for target in dict.fromkeys(r.target for r in measured):
        xs, ys = in_flight_steps([r for r in measured if r.target == target], origin)
        chart.series.append(Series(f"{target} client in flight", xs, ys, step=True, dash="dot"))
        mine = sorted((s for s in observed.server if s.target == target and s.stage is not None),
                      key=lambda s: s.t_ns)
        for name, dash in (("running", "solid"), ("waiting", "dash")):
            points = thin([(s.t_ns, s.values[name]) for s in mine if name in s.values])
            if points:
                chart.series.append(Series(f"{target} engine {name}", [_s(t, origin) for t, _ in points],
                                           [v for _, v in points], step=True, dash=dash))
    return chart


def ttft_bars(summary: Summary) -> BarChart:
    """One stacked bar per target and stage: the mean TTFT from the intended send, split into its parts."""
    bars = [(f"{target} {stage}", block.ttft_breakdown) for target, t in summary.targets.items()
            for stage, block in t.stages.items() if block.ttft_breakdown is not None]
    series: list[tuple[str, list[float | None]]] = []
    for part in PARTS:
        values = [getattr(b, part) for _, b in bars]
        if any(v is not None for v in values):
            series.append((PART_NAMES[part], values))
    return BarChart("Where TTFT goes (means per stage, from the intended send)", "target and stage",
                    Axis("ms", zero=True), [label for label, _ in bars], series, stacked=True)


def _gauge(block: Metrics, name: str) -> str:
    g = getattr(block.server, name) if block.server is not None else None
    return "-" if g is None else f"{g.mean:.2f} / {g.max:.2f}"


def _number(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def engine_table(summary: Summary) -> Table:
    """Per target and stage: the ``resources`` and ``server`` blocks, and what the engine does not export."""
    table = Table("The engines' side (docs/observability.md)", [
        "target", "stage", "engine", "CPU % mean/max", "RSS MB", "GPU mem MB", "GPU util %", "energy J",
        "tok/CPU-s", "tok/J", "running mean/max", "waiting mean/max", "KV use mean/max", "queue ms",
        "prefill ms", "decode ms", "prefix hits", "preempt", "TTFT not split"])
    for target, t in summary.targets.items():
        for stage, block in [("all", t), *t.stages.items()]:
            res, srv, ttft = block.resources, block.server, block.ttft_breakdown
            if res is None and srv is None:
                continue
            cpu = res.cpu_percent if res is not None else None
            table.rows.append([
                target, stage, srv.engine or "?" if srv is not None else "-",
                "-" if cpu is None else f"{cpu.mean:.0f} / {cpu.max:.0f}",
                *(_number(getattr(res, f, None)) for f in ("rss_mb", "gpu_mem_mb", "gpu_util_percent", "energy_j",
                                                           "output_tokens_per_cpu_s", "output_tokens_per_j")),
                _gauge(block, "running"), _gauge(block, "waiting"), _gauge(block, "kv_cache_usage"),
                *(_number(getattr(srv, f, None), "{:.2f}") for f in ("queue_time_ms", "prefill_time_ms",
                                                                     "decode_time_ms", "prefix_cache_hit_rate",
                                                                     "preemptions")),
                ", ".join(ttft.missing) if ttft is not None and ttft.missing else "-"])
    return table
