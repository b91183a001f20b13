"""``loadgen study``'s output: ``study.csv``, ``study.html`` and PNG figures for docs.

Why figure specs first: each figure (a metric against an axis, a speedup heatmap) is computed once as
plain data (``LineChart``, ``Heatmap``) and then drawn twice — as inline SVG into the self-contained HTML
page (``loadgen.render.svg``, like report.html: no script, no download) and by matplotlib into PNG
files, whose Agg backend draws offline in-process, the same on every machine. matplotlib is optional
(``pip install 'llm-serving-rig[plots]'``): without it the HTML and CSV are written and the PNGs are
skipped with a notice.
"""

from __future__ import annotations

import csv
import html
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.answers.study import RESOURCE_KEYS, SHORT, TABLE_C, Cell, StudyResult
from loadgen.answers.study_config import NUMERIC_AXES, GridConfig
from loadgen.render.svg import Axis, HeatChart, XYChart
from loadgen.render.svg import Series as Line
from loadgen.render.table import Table, to_html, to_markdown

STUDY_CSV = "study.csv"
STUDY_HTML = "study.html"
FIGURES = "figures"


@dataclass
class Series:
    name: str
    x: list[float]
    y: list[float | None]
    low: list[float | None]
    high: list[float | None]
    best: int | None = None  # index of the optimum point (highest, or lowest for a lower-is-better metric)


@dataclass
class LineChart:
    name: str
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = False


@dataclass
class Heatmap:
    name: str
    title: str
    x_label: str
    y_label: str
    x: list[float]
    y: list[str]
    z: list[list[float | None]]


# -- figure specs -----------------------------------------------------------------------------

def _others(cell: Cell, grid: GridConfig, axis: str) -> str:
    return " ".join(f"{SHORT[a]}{cell.values[a]:g}" for a in grid.varied() if a != axis)


def _best(y: list[float | None], better: str) -> int | None:
    scored = [(v, i) for i, v in enumerate(y) if v is not None]
    if not scored:
        return None
    return (max(scored) if better == "higher" else min(scored))[1]


def _series(cells: list[Cell], axis: str, value: Callable[[Cell], tuple[float | None, float | None, float | None]],
            name: str, better: str) -> Series:
    cells = sorted(cells, key=lambda c: c.values[axis])
    points = [value(c) for c in cells]
    y = [p[0] for p in points]
    return Series(name, [c.values[axis] for c in cells], y, [p[1] for p in points], [p[2] for p in points],
                  _best(y, better))


def y_range(chart: LineChart) -> tuple[float, float] | None:
    """A frame fitted to the means when an interval reaches far past them (two repetitions give t = 12.7 and
    intervals wider than the curves): from 0 to 1.4 × the largest mean; the bars run off the frame, the
    numbers stay in study.json and study.csv. None: the default frame shows everything."""
    means = [y for s in chart.series for y in s.y if y is not None]
    ends = [v for s in chart.series for v in (*s.low, *s.high) if v is not None]
    if not means or min(means) < 0:
        return None
    top = 1.4 * max(means)
    return (0.0, top) if ends and (max(ends) > top or min(ends) < 0) else None


def _log_x(grid: GridConfig, axis: str) -> bool:
    """A log axis when the values span a factor of 8 or more (doublings: 1, 2, 4, ... 32 read evenly)."""
    values = [float(v) for v in grid.axes[axis]]
    return max(values) / min(values) >= 8


def line_charts(result: StudyResult) -> list[LineChart]:
    """Each metric against each varied axis of each grid: one line per target (and per value of the other
    varied axes), the mean with its interval; and, with a reference, the speedup against each axis."""
    charts = []
    for grid in result.grids:
        cells = [c for c in result.cells if c.grid == grid.name]
        for axis, metric in itertools.product(grid.varied(), result.metrics):
            chart = LineChart(f"{grid.name}-{metric}-vs-{axis}", f"{grid.name}: {metric} against {axis}", axis,
                              metric, log_x=_log_x(grid, axis))
            groups: dict[str, list[Cell]] = {}
            for c in cells:
                groups.setdefault(f"{c.target} {_others(c, grid, axis)}".strip(), []).append(c)
            for label, members in groups.items():
                chart.series.append(_series(members, axis, lambda c, m=metric: (
                    c.stats[m].mean, c.stats[m].low, c.stats[m].high), label, result.better[metric]))
            charts.append(chart)
        charts += _speedup_lines(result, grid)
    return charts


def _speedup_lines(result: StudyResult, grid: GridConfig) -> list[LineChart]:
    points = [s for s in result.speedups if s.grid == grid.name]
    if not points:
        return []
    charts = []
    for axis in grid.varied():
        chart = LineChart(f"{grid.name}-speedup-vs-{axis}", f"{grid.name}: speedup in {result.speedup_metric} over "
                          f"{result.reference} against {axis}", axis, "speedup (×)",
                          log_x=_log_x(grid, axis))
        groups: dict[str, list[Any]] = {}
        for s in points:
            others = " ".join(f"{SHORT[a]}{s.values[a]:g}" for a in grid.varied() if a != axis)
            groups.setdefault(f"{s.target} {others}".strip(), []).append(s)
        for label, members in groups.items():
            members.sort(key=lambda s: s.values[axis])
            y = [s.speedup for s in members]
            chart.series.append(Series(label, [s.values[axis] for s in members], y, [None] * len(y),
                                       [None] * len(y), _best(y, "higher")))
        charts.append(chart)
    return charts


def heatmaps(result: StudyResult) -> list[Heatmap]:
    """Speedup of each target over the reference: x = the first varied axis (concurrency when varied), y = the
    combinations of the others; one heatmap per grid and target."""
    maps = []
    for grid in result.grids:
        varied = grid.varied()
        if not varied:
            continue
        x_axis = "concurrency" if "concurrency" in varied else varied[0]
        rest = [a for a in varied if a != x_axis]
        for target in dict.fromkeys(s.target for s in result.speedups if s.grid == grid.name):
            points = {s.key: s for s in result.speedups if s.grid == grid.name and s.target == target}
            xs = sorted({s.values[x_axis] for s in points.values()})
            ys = sorted({tuple(s.values[a] for a in rest) for s in points.values()})
            z = [[next((s.speedup for s in points.values() if s.values[x_axis] == x and
                        tuple(s.values[a] for a in rest) == y), None) for x in xs] for y in ys]
            labels = [" ".join(f"{SHORT[a]}{v:g}" for a, v in zip(rest, y, strict=True)) or "-" for y in ys]
            maps.append(Heatmap(f"{grid.name}-speedup-{target}", f"{grid.name}: {target} ÷ {result.reference}, "
                                f"{result.speedup_metric}", x_axis, " × ".join(rest) or "", xs, labels, z))
    return maps


# -- SVG (the HTML page) ----------------------------------------------------------------------

def svg_line(chart: LineChart) -> XYChart:
    frame = y_range(chart)
    return XYChart(chart.title, Axis(chart.x_label, log=chart.log_x), Axis(chart.y_label, fixed=frame), [
        Line(s.name, s.x, s.y, markers=True, low=s.low if any(v is not None for v in s.low) else None,
             high=s.high if any(v is not None for v in s.high) else None, best=s.best) for s in chart.series])


def svg_heatmap(hm: Heatmap) -> HeatChart:
    return HeatChart(hm.title, hm.x_label, hm.y_label, [f"{v:g}" for v in hm.x], hm.y, hm.z, unit="×")


# -- matplotlib (PNG) -------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_line(chart: LineChart, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for s in chart.series:
        xs = [x for x, y in zip(s.x, s.y, strict=True) if y is not None]
        ys = [y for y in s.y if y is not None]
        lows = [y - lo if lo is not None else 0 for y, lo in zip(s.y, s.low, strict=True) if y is not None]
        highs = [h - y if h is not None else 0 for y, h in zip(s.y, s.high, strict=True) if y is not None]
        line = ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label=s.name)
        if s.best is not None and s.y[s.best] is not None:
            ax.plot([s.x[s.best]], [s.y[s.best]], marker="*", markersize=14, color=line[0].get_color())
    if chart.log_x:
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
    if (frame := y_range(chart)) is not None:
        ax.set_ylim(*frame)
    ticks = sorted({x for s in chart.series for x in s.x})
    ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.set_title(chart.title, fontsize=10)
    ax.set_xlabel(chart.x_label)
    ax.set_ylabel(chart.y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def png_heatmap(hm: Heatmap, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(hm.x), 1.4 + 0.6 * len(hm.y)), dpi=110)
    z = [[float("nan") if v is None else v for v in row] for row in hm.z]
    image = ax.imshow(z, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(hm.x)), [f"{v:g}" for v in hm.x])
    ax.set_yticks(range(len(hm.y)), hm.y)
    low, high = image.get_clim()
    for (i, j), v in ((ij, hm.z[ij[0]][ij[1]]) for ij in itertools.product(range(len(hm.y)), range(len(hm.x)))):
        if v is not None:  # dark text on the bright (high) end of viridis, white on the dark end
            bright = high > low and (v - low) / (high - low) > 0.6
            ax.text(j, i, f"{v:.2f}×", ha="center", va="center", color="black" if bright else "white", fontsize=8)
    fig.colorbar(image, ax=ax, label="×")
    ax.set_title(hm.title, fontsize=9)
    ax.set_xlabel(hm.x_label)
    ax.set_ylabel(hm.y_label)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_pngs(result: StudyResult, out: Path) -> list[Path]:
    """Every figure as ``out/figures/NAME.png``; raises ImportError when matplotlib is not installed."""
    _pyplot()
    folder = out / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in line_charts(result):
        png_line(chart, folder / f"{chart.name}.png")
        written.append(folder / f"{chart.name}.png")
    for hm in heatmaps(result):
        png_heatmap(hm, folder / f"{hm.name}.png")
        written.append(folder / f"{hm.name}.png")
    return written


# -- tables -----------------------------------------------------------------------------------

def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"


def table_a(result: StudyResult) -> Table:
    extra = list(dict.fromkeys(k for row in result.table_a for k in row if k in NUMERIC_AXES))
    table = Table("(a) single vs batch: mean over repetitions", ["grid", "target", "batch", *extra,
                  "mean latency (ms)", "tokens/s", "peak RSS (MB)", "peak GPU memory (MB)"], left=2)
    for row in result.table_a:
        table.rows.append([row["grid"], row["target"], _num(row["batch"]), *(_num(row.get(a)) for a in extra),
                           _num(row["mean_latency_ms"]), _num(row["tokens_per_s"]), _num(row["peak_rss_mb"], 0),
                           _num(row["peak_gpu_mem_mb"], 0)])
    return table


def table_c(result: StudyResult, target: str) -> Table:
    table = Table(f"(c) {target} against {result.reference}: output tokens/s, mean over repetitions",
                  list(TABLE_C), left=0)
    for row in result.table_c.get(target, []):
        table.rows.append([_num(row[c], 2 if c == "Speedup" else 1) for c in TABLE_C])
    return table


def _ci(cell: Cell, metric: str) -> str:
    s = cell.stats.get(metric)
    if s is None or s.mean is None:
        return "-"
    return _num(s.mean, 2) + ("" if s.low is None else f" [{_num(s.low, 2)}, {_num(s.high, 2)}]")


def cells_table(result: StudyResult) -> Table:
    table = Table("every cell: mean [95% t interval] over repetitions", ["grid", "cell", "target", "reps",
                  *result.metrics], left=3)
    for c in result.cells:
        table.rows.append([c.grid, c.key, c.target, str(len(c.reps)), *(_ci(c, m) for m in result.metrics)])
    return table


def optima_table(result: StudyResult) -> Table:
    table = Table("optimum points (best mean per grid, target and metric)", ["grid", "target", "metric", "cell",
                  "mean"], left=4)
    for o in result.optima:
        table.rows.append([o.grid, o.target, f"{o.metric} ({result.better[o.metric]} is better)", o.key,
                           _num(o.mean, 2)])
    return table


def tables(result: StudyResult) -> list[Table]:
    found = [optima_table(result)]
    if result.table_a:
        found.append(table_a(result))
    found += [table_c(result, t) for t in result.table_c]
    return [*found, cells_table(result)]


def to_markdown_report(result: StudyResult) -> str:
    return "\n\n".join(f"### {t.title}\n\n{to_markdown(t)}" for t in tables(result)) + "\n"


# -- files ------------------------------------------------------------------------------------

def write_csv(result: StudyResult, path: Path) -> None:
    """One row per cell and target: axis values, repetitions, each metric's mean and interval, peak memory,
    and the speedup over the reference."""
    axes = [a for a in NUMERIC_AXES if any(a in c.values for c in result.cells)]
    speed = {(s.grid, s.key, s.target): s.speedup for s in result.speedups}
    header = ["grid", "cell", "target", *axes, "repetitions"]
    header += [f"{m}{suffix}" for m in result.metrics for suffix in ("", "_ci_low", "_ci_high")]
    header += ["peak_rss_mb", "peak_gpu_mem_mb", f"speedup_{result.speedup_metric}"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for c in result.cells:
            row: list[Any] = [c.grid, c.key, c.target, *(c.values.get(a, "") for a in axes), len(c.reps)]
            for m in result.metrics:
                s = c.stats[m]
                row += ["" if v is None else round(v, 4) for v in (s.mean, s.low, s.high)]
            row += ["" if c.peak.get(k) is None else c.peak[k] for k in RESOURCE_KEYS]
            value = speed.get((c.grid, c.key, c.target))
            writer.writerow([*row, "" if value is None else round(value, 4)])


def _lines(result: StudyResult) -> list[str]:
    lines = [f"{len(result.cells)} cells × {result.repetitions} repetition(s), {result.seconds:g} s",
             f"warm-up: {result.warmup} request(s) per target and run"
             + (" — figures from a cold start, as users meet them" if result.cold_start else ""),
             "interval: Student's t over repetitions (none for one repetition); loadgen/answers/study.py"]
    if result.reference:
        lines.append(f"speedup: {result.speedup_metric} of each target over {result.reference} at the same cell")
    if result.interrupted:
        lines.append("INTERRUPTED: the study stopped early; the cells hold what finished")
    return lines + [f"note: {n}" for n in result.notes]


def render(result: StudyResult) -> str:
    figures = [svg_line(c) for c in line_charts(result)] + [svg_heatmap(h) for h in heatmaps(result)]
    plots = "".join(f'<div class="rig-plot" id="plot-{i}">{f.svg(f"plot-{i}")}</div>' for i, f in enumerate(figures))
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _lines(result))
    body = "".join(f"<h2>{html.escape(t.title)}</h2>{to_html(t)}" for t in tables(result))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Study: {html.escape(result.name)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse;
font-size: 13px; }} th, td {{ border: 1px solid #ccc; padding: 3px 8px; }}</style></head><body>
<h1>Study: {html.escape(result.name)}</h1><ul>{items}</ul>{body}{plots}
<p>Every cell is a run folder under cells/ (<code>loadgen report cells/GRID/CELL/rep-N</code> renders it);
docs/studies.md.</p></body></html>
"""


def write(result: StudyResult, out: Path, png: bool = True) -> list[str]:
    """study.csv, study.html and (with ``png``) the PNG figures; returns notices (PNGs skipped)."""
    write_csv(result, out / STUDY_CSV)
    (out / STUDY_HTML).write_text(render(result), encoding="utf-8")
    if not png:
        return []
    try:
        write_pngs(result, out)
    except ImportError:
        return ["PNG figures skipped: matplotlib is not installed (pip install 'llm-serving-rig[plots]')"]
    return []
