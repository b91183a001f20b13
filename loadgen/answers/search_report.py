"""``loadgen search``'s output: the steps table and ``search.html`` (the latency curve per target, with the
SLO limits and the load found).

Why a page of its own: a search is many runs; its answer is the curve across them, which no single
run's report.html holds. Self-contained like report.html (inline SVG, ``loadgen.render.svg``).
"""

from __future__ import annotations

import html
from pathlib import Path

from loadgen.answers.search import SearchResult, TargetSearch
from loadgen.render.svg import Axis, Rule, Series, XYChart
from loadgen.render.table import Table, to_html

SEARCH_HTML = "search.html"


def steps_table(found: SearchResult) -> Table:
    limits = list(found.slo.limits())
    table = Table(f"SLO search over {found.over}: {', '.join(f'{k} ≤ {v:g}' for k, v in found.slo.limits().items())}"
                  f" (p99, ms){f', goodput ≥ {found.goodput:.0%}' if found.goodput else ''}",
                  ["target", "step", found.over, *(f"{n} p99" for n in limits), "goodput", "$/Mtok out", "ok",
                   "fail", "saturated", "valid", "SLO"])
    for target, t in found.targets.items():
        for s in t.steps:
            price = s.cost.usd_per_mtok_output if s.cost is not None else None
            table.rows.append([target, str(s.index), f"{s.load:g}",
                               *("-" if (v := s.p99_ms.get(n)) is None else f"{v:.1f}" for n in limits),
                               "-" if s.goodput is None else f"{s.goodput:.1%}",
                               "-" if price is None else f"{price:.3g}", str(s.requests_ok),
                               str(s.requests_failed), "yes" if s.saturated else "", {True: "", False: "NO",
                                                                                      None: "?"}[s.valid],
                               "pass" if s.passed else "fail: " + "; ".join(s.why)])
    return table


def answer_lines(found: SearchResult) -> list[str]:
    lines = []
    for target, t in found.targets.items():
        if t.stopped is not None:
            passed = f"the loads up to {t.lo:g} passed; " if t.lo is not None else ""
            lines.append(f"{target}: search STOPPED: {t.stopped}; {passed}no capacity is claimed ({len(t.steps)} "
                         f"steps, {t.seconds:g} s)")
            continue
        if t.answer is None:
            lines.append(f"{target}: the SLO failed at every {found.over} tried (lowest {t.hi:g}); {t.seconds:g} s")
            continue
        bracket = f"capacity in [{t.lo:g}, {t.hi:g})" if t.hi is not None else "no failing load found yet"
        state = "" if t.converged else " — NOT converged: raise --max-steps"
        invalid = sum(1 for s in t.steps if s.valid is False)
        cost = t.cost_at_answer()
        priced = (f"; at it ${cost.usd_per_mtok_output:.4g} per million output tokens "
                  f"(at ${cost.price_per_hour:g}/h)" if cost is not None and cost.usd_per_mtok_output else "")
        lines.append(f"{target}: highest {found.over} meeting the SLO = {t.answer:g} ({bracket}, resolution "
                     f"{found.resolution:.0%}, {len(t.steps)} steps, {t.seconds:g} s){state}{priced}"
                     + (f"; {invalid} step(s) had an invalid client (see valid)" if invalid else ""))
    return lines


def curve(found: SearchResult, t: TargetSearch) -> XYChart:
    steps = sorted(t.steps, key=lambda s: s.load)
    chart = XYChart(f"{t.target}: p99 latency against {found.over} (× = failed step)", Axis(found.over),
                    Axis("ms (log scale)", log=True))
    for name, limit in found.slo.limits().items():
        chart.series.append(Series(f"{name} p99", [s.load for s in steps], [s.p99_ms.get(name) for s in steps],
                                   markers=True, failed=[not s.passed for s in steps]))
        chart.rules.append(Rule(f"SLO {name} ≤ {limit:g} ms", y=limit))
    if t.answer is not None:
        chart.rules.append(Rule(f"found {t.answer:g}", x=t.answer, colour="green"))
    return chart


def render(found: SearchResult) -> str:
    plots = "".join(f'<div class="rig-plot" id="plot-{i}">{curve(found, t).svg(f"plot-{i}")}</div>'
                    for i, t in enumerate(found.targets.values()))
    answers = "".join(f"<li>{html.escape(line)}</li>" for line in answer_lines(found))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SLO search: {html.escape(found.profile)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse;
font-size: 13px; }} th, td {{ border: 1px solid #ccc; padding: 3px 8px; }}</style></head><body>
<h1>SLO search: {html.escape(found.profile)}</h1><ul>{answers}</ul>{plots}
{to_html(steps_table(found))}
<p>Bracketing then bisection; each step is a full run in its own folder (loadgen/answers/search.py,
docs/capacity.md).</p></body></html>
"""


def write(found: SearchResult, out: Path) -> None:
    (out / SEARCH_HTML).write_text(render(found), encoding="utf-8")
