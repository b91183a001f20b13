"""``report.html``: one self-contained file a colleague can open offline.

Why one file and no plotting library: reports get mailed, attached to tickets and opened years later on
machines without network access. The plots are SVG drawn by ``loadgen.render.svg`` from a bounded number of
points (CDFs from exact order statistics at fixed ranks, time series in bins), so the file weighs what it shows
(tens of kilobytes, not Plotly's 4.8 MB of JavaScript) and costs milliseconds to write. Every number comes from
the records through ``loadgen.metrics`` (the same functions as ``summary.json``); ``loadgen report DIR``
re-renders it.

Contents: the run's table; latency CDFs (TTFT, ITL, E2E) per target; output throughput over
time; latency against throughput across stages (the sweep curve); errors by class; the
client's own overhead (send lag, event-loop lag); output agreement; the engines' side
(``loadgen.render.engine_side``: resources over time, engine state beside the client's in-flight
count, where TTFT goes, and their table); the manifest. Each plot is a ``div.rig-plot`` with ``data-plot``
naming it, and script errors are collected into ``#rig-errors`` so a headless browser test can tell a broken
report from a working one. On ``load`` each cell gets ``data-cell-width``/``data-plot-width``; a plot wider than
its cell, and a title, legend or axis title that overlaps any other text or the plot area (measured with the
browser's own fonts), is reported in ``#rig-errors`` too.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

from loadgen import metrics as m
from loadgen.observe.summary_blocks import Observed
from loadgen.record import RequestRecord
from loadgen.registry import OUTPUTS
from loadgen.render import engine_side
from loadgen.render.output import OutputFormat
from loadgen.render.svg import Axis, BarChart, BoxChart, Rule, Series, XYChart
from loadgen.render.table import Table, summary_table, to_html, validity_banner
from loadgen.summary import Summary

REPORT_FILE = "report.html"  # in the run folder (the OUTPUTS registry writes it)

NICE_BINS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
PLOTS = ("ttft_cdf", "itl_cdf", "e2e_cdf", "throughput_time", "latency_throughput", "errors", "overhead",
         "resources_time", "server_time", "ttft_breakdown")
ERROR_CAPTURE = """
window.rigErrors = [];
window.addEventListener('error', e => { window.rigErrors.push(String(e.message)); report(); });
const consoleError = console.error;
console.error = (...a) => { window.rigErrors.push(a.map(String).join(' ')); report(); consoleError(...a); };
function report() {
  const el = document.getElementById('rig-errors');
  if (el) el.textContent = window.rigErrors.join('\\n');
}
"""


CHECKS = """
window.addEventListener('load', () => {
  const fail = message => { window.rigErrors.push(message); report(); };
  const guarded = ['rig-title', 'rig-legend', 'rig-axis-title', 'rig-point-label', 'rig-rule-label'];
  const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5
    && b.top < a.bottom - 0.5;
  document.querySelectorAll('.rig-plot').forEach(c => {
    const svg = c.querySelector('svg.rig-chart');
    const width = svg ? svg.getBoundingClientRect().width : 0;
    c.dataset.cellWidth = Math.round(c.clientWidth);
    c.dataset.plotWidth = Math.round(width);
    if (width > c.clientWidth + 1)
      fail(`plot ${c.dataset.plot} is wider than its cell (${width} > ${c.clientWidth} px)`);
    if (!svg) return;
    const texts = [...svg.querySelectorAll('.rig-text')].map(e => [e, e.getBoundingClientRect()]);
    const area = svg.querySelector('.rig-area');
    const areaBox = area ? area.getBoundingClientRect() : null;
    let checked = 0;
    texts.forEach(([e, box], i) => {
      const kind = guarded.find(k => e.classList.contains(k));
      if (!kind) return;
      checked += 1;
      texts.forEach(([f, other], j) => {
        if (j !== i && hit(box, other) && (j > i || !guarded.some(k => f.classList.contains(k))))
          fail(`plot ${c.dataset.plot}: ${kind} "${e.textContent}" overlaps "${f.textContent}"`);
      });
      const inside = kind === 'rig-point-label' || kind === 'rig-rule-label';
      if (areaBox && !inside && hit(box, areaBox))
        fail(`plot ${c.dataset.plot}: ${kind} "${e.textContent}" overlaps the plot area`);
    });
    c.dataset.textsChecked = checked;
  });
});
"""
CDF_POINTS = 200  # evenly spaced ranks of a CDF, plus its tail ranks (p90, p99, p99.9, ...) and its maximum


def cdf_points(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """The empirical CDF through exact order statistics: every sample when there are few, else the samples at
    ``CDF_POINTS`` evenly spaced ranks and at the tail ranks 1 − 10^−e (e = 1, 1.1, … up to the last sample), so
    the curve is the data's own values with a bounded number of points, its tail drawn as finely as the body."""
    data = sorted(values)
    n = len(data)
    if n <= 2 * CDF_POINTS:
        return data, [(i + 1) / n for i in range(n)]
    ranks = {round(k * (n - 1) / CDF_POINTS) for k in range(CDF_POINTS + 1)}
    e = 1.0
    while 10 ** -e >= 1 / n:
        ranks.add(math.ceil((1 - 10 ** -e) * n) - 1)
        e += 0.1
    chosen = sorted(ranks)
    return [data[i] for i in chosen], [(i + 1) / n for i in chosen]


def _by_target(records: Sequence[RequestRecord]) -> dict[str, list[RequestRecord]]:
    out: dict[str, list[RequestRecord]] = {}
    for r in m.measured(records):
        out.setdefault(r.target, []).append(r)
    return out


def latency_cdf(records: Sequence[RequestRecord], which: str) -> XYChart:
    names = {"ttft": "Time to first token", "itl": "Inter-token latency (every gap)", "e2e": "End-to-end latency"}
    chart = XYChart(f"{names[which]}: CDF per target", Axis("ms (log scale)", log=True),
                    Axis("fraction of gaps" if which == "itl" else "fraction of requests", fixed=(0.0, 1.0)))
    for target, mine in _by_target(records).items():
        ok = [r for r in mine if r.ok]
        if which == "itl":
            values = [g for r in ok for g in m.itl_gaps_ms(r)]
        else:
            fn = m.ttft_ms if which == "ttft" else m.e2e_ms
            values = [v for r in ok if (v := fn(r)) is not None]
        if values:
            xs, ys = cdf_points(values)
            chart.series.append(Series(target, xs, ys, step=len(xs) == len(values)))
    return chart


def throughput_over_time(records: Sequence[RequestRecord], bin_s: float | None = None) -> XYChart:
    """Output tokens per second in bins (the smallest of 0.1 … 10 s giving at most ~60 over the run),
    each token counted when its chunk arrived."""
    measured = m.measured(records)
    bins_by_target: dict[str, dict[int, int]] = {}
    if measured:
        origin = min(r.sent_ns for r in measured)
        span_s = (max(r.end_ns for r in measured) - origin) / 1e9
        bin_s = bin_s or next((b for b in NICE_BINS_S if b >= span_s / 60), NICE_BINS_S[-1])
        for target, mine in _by_target(records).items():
            bins = bins_by_target.setdefault(target, {})
            for r in mine:
                if r.ok:
                    start = r.sent_ns - origin
                    for offset, tokens in zip(r.chunk_offsets_ns, r.chunk_tokens, strict=False):
                        if tokens:
                            b = int((start + offset) / 1e9 / bin_s)
                            bins[b] = bins.get(b, 0) + tokens
    chart = XYChart(f"Output throughput over time ({bin_s or 1:g} s bins; a line where each target's stage "
                    "starts)", Axis("seconds since the first measured request"), Axis("tokens/s", zero=True),
                    rules=stage_starts(records))
    for target, bins in bins_by_target.items():
        if bins and bin_s:
            xs = list(range(min(bins), max(bins) + 1))
            chart.series.append(Series(target, [x * bin_s for x in xs], [bins.get(x, 0) / bin_s for x in xs]))
    return chart


def stage_starts(records: Sequence[RequestRecord]) -> list[Rule]:
    """A dotted vertical line, labelled "target stage", where each target's stage sent its first request:
    targets run one after another, so the curve's steps line up with them."""
    measured = m.measured(records)
    if not measured:
        return []
    origin = min(r.sent_ns for r in measured)
    starts: dict[tuple[str, str], int] = {}
    for r in measured:
        key = (r.target, r.stage_name)
        starts[key] = min(starts.get(key, r.sent_ns), r.sent_ns)
    return [Rule(f"{target} {stage}", x=(start - origin) / 1e9)
            for (target, stage), start in sorted(starts.items(), key=lambda kv: kv[1])]


def latency_vs_throughput(summary: Summary) -> XYChart:
    """One point per stage: output tok/s against TTFT p50 and TPOT p50 (the sweep curve)."""
    chart = XYChart("Latency against throughput (one point per stage)", Axis("output tokens/s"),
                    Axis("ms (log scale)", log=True))
    for target, block in summary.targets.items():
        stages = [(name, s) for name, s in block.stages.items() if s.stats("ttft_ms")]
        if not stages:
            continue
        x = [s.value("output_tokens_per_s") or 0.0 for _, s in stages]
        labels = [name for name, _ in stages]
        ttft = [s.stats("ttft_ms") for _, s in stages]
        tpot = [s.stats("tpot_ms") for _, s in stages]
        chart.series.append(Series(f"{target} TTFT p50", x, [t.p50 if t else None for t in ttft], markers=True,
                                   labels=labels))
        chart.series.append(Series(f"{target} TPOT p50", x, [t.p50 if t else None for t in tpot], markers=True,
                                   dash="dot", labels=labels))
    return chart


def errors_by_class(summary: Summary) -> BarChart:
    classes = sorted({c for b in summary.targets.values() for c in b.requests.by_error})
    series: list[tuple[str, list[float | None]]] = [
        (target, [float(block.requests.by_error.get(c, 0)) for c in classes] + [float(block.requests.ok)])
        for target, block in summary.targets.items()]
    failed = sum(b.requests.failed for b in summary.targets.values())
    return BarChart(f"Requests by outcome ({failed} failed)", "outcome", Axis("requests", zero=True),
                    [*classes, "ok"], series)


def overhead(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]]) -> BoxChart:
    """The client's own delays: send lag per request, event-loop lag samples."""
    groups = [(f"{target} send lag", [m.send_lag_ms(r) for r in mine]) for target, mine in _by_target(records).items()]
    if loop_lag:
        groups.append(("event-loop lag", [lag / 1e6 for _, lag in loop_lag]))
    return BoxChart("The load generator's own overhead (p99 above 5 ms means late timestamps; box p25–p75, "
                    "whiskers p1 and p99)", Axis("ms", zero=True), groups)


def _agreement(summary: Summary) -> str:
    rows = []
    for target, block in summary.targets.items():
        a = block.agreement
        if a:
            rows.append(f"<tr><td>{html.escape(target)}</td><td>{html.escape(a.reference)}</td>"
                        f"<td>{a.exact}/{a.compared}</td><td>{a.shared_prefix_tokens.mean:.1f} "
                        f"(min {a.shared_prefix_tokens.min}) {a.unit}</td>"
                        f"<td>{a.shared_prefix_ratio_mean:.0%}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Output agreement</h2><p>Each target's outputs against the reference's for the same prompt "
            "(docs/metrics.md).</p><table><thead><tr><th>target</th><th>reference</th><th>identical</th>"
            "<th>shared prefix</th><th>of the reference's output</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _banner(summary: Summary) -> str:
    """The validity verdict's reasons, above everything else, when a target's measurement is invalid."""
    lines = validity_banner(summary)
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return (f'<div class="rig-invalid" style="background:#fdd;border:2px solid #b00;padding:0.5em 1em">'
            f"<strong>The load generator could not keep up: these figures measure the client too</strong>"
            f"<ul>{items}</ul>Thresholds: docs/metrics.md, Validity.</div>")


def _engine_section(table: Table) -> str:
    """The engines' side as a table, with what each engine cannot give (nothing without observed engines)."""
    if not table.rows:
        return ""
    return (f"<h2>{html.escape(table.title)}</h2><p>Measured on the server: the engine's process tree or its own "
            "gauges (resources), its own metrics under one set of names (running, waiting, KV-cache use as "
            "mean / max; queue, prefill, decode as means per finished request). '-': the engine does not export "
            "it, or nothing measured it.</p>" + to_html(table))


def figures(records: Sequence[RequestRecord], summary: Summary, loop_lag: Sequence[tuple[int, int]],
            observed: Observed) -> dict[str, XYChart | BarChart | BoxChart]:
    """Every plot of the report, by its ``data-plot`` name (``PLOTS``)."""
    return {
        "ttft_cdf": latency_cdf(records, "ttft"), "itl_cdf": latency_cdf(records, "itl"),
        "e2e_cdf": latency_cdf(records, "e2e"), "throughput_time": throughput_over_time(records),
        "latency_throughput": latency_vs_throughput(summary), "errors": errors_by_class(summary),
        "overhead": overhead(records, loop_lag),
        "resources_time": engine_side.resources_over_time(records, observed),
        "server_time": engine_side.server_over_time(records, observed),
        "ttft_breakdown": engine_side.ttft_bars(summary),
    }


def render(records: Sequence[RequestRecord], summary: Summary,
           loop_lag: Sequence[tuple[int, int]] = (), observed: Observed | None = None) -> str:
    observed = observed or Observed()
    drawn = figures(records, summary, loop_lag, observed)
    plots = "".join(f'<div class="rig-plot" data-plot="{name}">{fig.svg(name)}</div>' for name, fig in drawn.items())
    engines = engine_side.engine_table(summary)
    manifest = summary.manifest.model_dump(mode="json")
    title = f"Load test report: {summary.manifest.profile.get('name', 'run')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script>{ERROR_CAPTURE}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child, td:nth-child(2) {{ text-align: left; }}
html {{ overflow-y: scroll; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }}
.rig-plot {{ min-width: 0; overflow: hidden; }}
pre {{ background: #f6f6f6; padding: 1em; overflow: auto; font-size: 12px; }}
#rig-errors:empty {{ display: none; }} #rig-errors {{ color: #b00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Client-side measurements by the load generator; formulas in docs/metrics.md. Latencies in ms,
throughput per second of wall-clock time over each target's or stage's window.</p>
<pre id="rig-errors"></pre>
{_banner(summary)}
{to_html(summary_table(summary))}
{_agreement(summary)}
{_engine_section(engines)}
<div class="grid">{plots}</div>
<h2>Manifest</h2><pre>{html.escape(json.dumps(manifest, indent=2, default=str))}</pre>
<script>{CHECKS}</script>
</body></html>
"""


def write(records: Sequence[RequestRecord], summary: Summary, loop_lag: Sequence[tuple[int, int]],
          path: Path, observed: Observed | None = None) -> None:
    path.write_text(render(records, summary, loop_lag, observed), encoding="utf-8")


OUTPUTS.register("html")(OutputFormat(REPORT_FILE, lambda run, path: write(
    run.records, run.summary, run.loop_lag, path, observed=run.observed), report=True))
