"""``report.html``: one self-contained file a colleague can open offline.

Why one file with the plotting library inside: reports get mailed, attached to tickets and
opened years later on machines without network access, so Plotly's JavaScript is embedded
(~4.8 MB) instead of fetched from a CDN. Every number comes from the records through
``loadgen.metrics`` (the same functions as ``summary.json``); ``loadgen report DIR`` re-renders it.

Contents: the run's table; latency CDFs (TTFT, ITL, E2E) per target; output throughput over
time; latency against throughput across stages (the sweep curve); errors by class; the
client's own overhead (send lag, event-loop lag); output agreement; the engines' side
(``loadgen.render.engine_side``: resources over time, engine state beside the client's in-flight
count, where TTFT goes, and their table); the manifest. Each plot
is a ``div.rig-plot`` with ``data-plot`` naming it, and script errors are collected into
``#rig-errors`` so a headless browser test can tell a broken report from a working one. Once every
plot is drawn and resized, each cell gets ``data-cell-width``/``data-plot-width`` and a plot wider
than its cell is reported in ``#rig-errors`` too.

Plotly draws each plot while the page is still being parsed. The grid's column tracks therefore must
not depend on how many cells exist yet (``auto-fill``; with ``auto-fit`` the first plot, alone in its
row, was drawn the whole row wide and clipped), and the page always has its scrollbar (no width change
when the page grows); on ``load`` every plot is resized once more before the widths are checked.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from loadgen import metrics as m
from loadgen.observe.summary_blocks import Observed
from loadgen.record import RequestRecord
from loadgen.registry import OUTPUTS
from loadgen.render import engine_side
from loadgen.render.output import OutputFormat
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


WIDTH_CHECK = """
window.addEventListener('load', () => {
  const cells = [...document.querySelectorAll('.rig-plot')];
  Promise.all(cells.map(c => c.querySelector('.js-plotly-plot')).filter(p => p).map(p => Plotly.Plots.resize(p)))
    .then(() => cells.forEach(c => {
      const svg = c.querySelector('svg.main-svg');
      const width = svg ? svg.getBoundingClientRect().width : 0;
      c.dataset.cellWidth = Math.round(c.clientWidth);
      c.dataset.plotWidth = Math.round(width);
      if (width > c.clientWidth + 1) {
        window.rigErrors.push(`plot ${c.dataset.plot} is wider than its cell (${width} > ${c.clientWidth} px)`);
        report();
      }
    }));
});
"""


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]


def _layout(fig: go.Figure, title: str, x: str, y: str, log_x: bool = False) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=380, autosize=True,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"orientation": "h", "y": -0.2})
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def _by_target(records: Sequence[RequestRecord]) -> dict[str, list[RequestRecord]]:
    out: dict[str, list[RequestRecord]] = {}
    for r in m.measured(records):
        out.setdefault(r.target, []).append(r)
    return out


def latency_cdf(records: Sequence[RequestRecord], which: str) -> go.Figure:
    fig = go.Figure()
    for target, mine in _by_target(records).items():
        ok = [r for r in mine if r.ok]
        if which == "itl":
            values = [g for r in ok for g in m.itl_gaps_ms(r)]
        else:
            fn = m.ttft_ms if which == "ttft" else m.e2e_ms
            values = [v for r in ok if (v := fn(r)) is not None]
        if values:
            xs, ys = _cdf(values)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=target, line={"shape": "hv"}))
    names = {"ttft": "Time to first token", "itl": "Inter-token latency (every gap)", "e2e": "End-to-end latency"}
    return _layout(fig, f"{names[which]}: CDF per target", "ms (log scale)", "fraction of requests" if which != "itl"
                   else "fraction of gaps", log_x=True)


def throughput_over_time(records: Sequence[RequestRecord], bin_s: float | None = None) -> go.Figure:
    """Output tokens per second in bins (the smallest of 0.1 … 10 s giving at most ~60 over the run),
    each token counted when its chunk arrived."""
    fig = go.Figure()
    measured = m.measured(records)
    if measured:
        origin = min(r.sent_ns for r in measured)
        span_s = (max(r.end_ns for r in measured) - origin) / 1e9
        bin_s = bin_s or next((b for b in NICE_BINS_S if b >= span_s / 60), NICE_BINS_S[-1])
        for target, mine in _by_target(records).items():
            bins: dict[int, int] = {}
            for r in mine:
                if not r.ok:
                    continue
                for offset, tokens in zip(r.chunk_offsets_ns, r.chunk_tokens, strict=False):
                    if tokens:
                        b = int((r.sent_ns + offset - origin) / 1e9 / bin_s)
                        bins[b] = bins.get(b, 0) + tokens
            if bins:
                xs = list(range(min(bins), max(bins) + 1))
                fig.add_trace(go.Scatter(x=[x * bin_s for x in xs], y=[bins.get(x, 0) / bin_s for x in xs],
                                         mode="lines", name=target))
    mark_starts(fig, records)
    return _layout(fig, f"Output throughput over time ({bin_s or 1:g} s bins; a line where each target's stage "
                   "starts)", "seconds since the first measured request", "tokens/s")


def mark_starts(fig: go.Figure, records: Sequence[RequestRecord]) -> None:
    """A dotted vertical line, labelled "target stage", where each target's stage sent its first request:
    targets run one after another, so the curve's steps line up with them."""
    measured = m.measured(records)
    if not measured:
        return
    origin = min(r.sent_ns for r in measured)
    starts: dict[tuple[str, str], int] = {}
    for r in measured:
        key = (r.target, r.stage_name)
        starts[key] = min(starts.get(key, r.sent_ns), r.sent_ns)
    for (target, stage), start in sorted(starts.items(), key=lambda kv: kv[1]):
        fig.add_vline(x=(start - origin) / 1e9, line={"dash": "dot", "width": 1, "color": "#888"},
                      annotation={"text": f"{target} {stage}", "textangle": -90, "font": {"size": 10}},
                      annotation_position="top right")


def latency_vs_throughput(summary: Summary) -> go.Figure:
    """One point per stage: output tok/s against TTFT p50 and TPOT p50 (the sweep curve)."""
    fig = go.Figure()
    for target, block in summary.targets.items():
        stages = [(name, s) for name, s in block.stages.items() if s.stats("ttft_ms")]
        if not stages:
            continue
        x = [s.value("output_tokens_per_s") for _, s in stages]
        labels = [name for name, _ in stages]
        ttft = [s.stats("ttft_ms") for _, s in stages]
        tpot = [s.stats("tpot_ms") for _, s in stages]
        fig.add_trace(go.Scatter(x=x, y=[t.p50 if t else None for t in ttft], mode="lines+markers+text",
                                 text=labels, textposition="top center", name=f"{target} TTFT p50"))
        fig.add_trace(go.Scatter(x=x, y=[t.p50 if t else None for t in tpot], mode="lines+markers",
                                 text=labels, name=f"{target} TPOT p50", line={"dash": "dot"}))
    fig = _layout(fig, "Latency against throughput (one point per stage)", "output tokens/s", "ms (log scale)")
    fig.update_yaxes(type="log")
    return fig


def errors_by_class(summary: Summary) -> go.Figure:
    fig = go.Figure()
    classes = sorted({c for b in summary.targets.values() for c in b.requests.by_error})
    for target, block in summary.targets.items():
        by = block.requests.by_error
        fig.add_trace(go.Bar(x=[*classes, "ok"], y=[by.get(c, 0) for c in classes] + [block.requests.ok],
                             name=target))
    failed = sum(b.requests.failed for b in summary.targets.values())
    return _layout(fig, f"Requests by outcome ({failed} failed)", "outcome", "requests")


def overhead(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]]) -> go.Figure:
    """The client's own delays: send lag per request, event-loop lag samples."""
    fig = go.Figure()
    for target, mine in _by_target(records).items():
        fig.add_trace(go.Box(y=[m.send_lag_ms(r) for r in mine], name=f"{target} send lag", boxpoints=False))
    if loop_lag:
        fig.add_trace(go.Box(y=[lag / 1e6 for _, lag in loop_lag], name="event-loop lag", boxpoints=False))
    fig = _layout(fig, "The load generator's own overhead (p99 above 5 ms means late timestamps)", "", "ms")
    return fig


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


def _div(fig: go.Figure, name: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}", default_width="100%",
                       config={"responsive": True})


def figures(records: Sequence[RequestRecord], summary: Summary, loop_lag: Sequence[tuple[int, int]],
            observed: Observed) -> dict[str, go.Figure]:
    """Every plot of the report, by its ``data-plot`` name (``PLOTS``)."""
    side = engine_side
    return {
        "ttft_cdf": latency_cdf(records, "ttft"), "itl_cdf": latency_cdf(records, "itl"),
        "e2e_cdf": latency_cdf(records, "e2e"), "throughput_time": throughput_over_time(records),
        "latency_throughput": latency_vs_throughput(summary), "errors": errors_by_class(summary),
        "overhead": overhead(records, loop_lag),
        "resources_time": _layout(side.resources_over_time(records, observed),
                                  "Engine resources over time (CPU % of one core; RSS and GPU memory, MB)",
                                  "seconds since the first measured request", "CPU %"),
        "server_time": _layout(side.server_over_time(records, observed),
                               "Engine running / waiting requests and the client's requests in flight",
                               "seconds since the first measured request", "requests"),
        "ttft_breakdown": _layout(side.ttft_bars(summary), "Where TTFT goes (means per stage, from the intended "
                                  "send)", "target and stage", "ms"),
    }


def render(records: Sequence[RequestRecord], summary: Summary,
           loop_lag: Sequence[tuple[int, int]] = (), observed: Observed | None = None) -> str:
    observed = observed or Observed()
    drawn = figures(records, summary, loop_lag, observed)
    plots = "".join(f'<div class="rig-plot" data-plot="{name}">{_div(fig, name)}</div>' for name, fig in drawn.items())
    engines = engine_side.engine_table(summary)
    manifest = summary.manifest.model_dump(mode="json")
    title = f"Load test report: {summary.manifest.profile.get('name', 'run')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script>{ERROR_CAPTURE}</script>
<script>{get_plotlyjs()}</script>
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
<script>{WIDTH_CHECK}</script>
</body></html>
"""


def write(records: Sequence[RequestRecord], summary: Summary, loop_lag: Sequence[tuple[int, int]],
          path: Path, observed: Observed | None = None) -> None:
    path.write_text(render(records, summary, loop_lag, observed), encoding="utf-8")


OUTPUTS.register("html")(OutputFormat(REPORT_FILE, lambda run, path: write(
    run.records, run.summary, run.loop_lag, path, observed=run.observed), report=True))
