"""``loadgen compare``'s output: the same table as markdown (for a CI log or a pull request) and HTML.

Why through ``loadgen.render.table.Table``: one table renderer for every format the rig writes.
"""

from __future__ import annotations

import html

from loadgen.answers.compare import Comparison, Row
from loadgen.render.table import Table, to_html, to_markdown

COLUMNS = ["target", "stage", "metric", "A", "B", "B − A", "B − A %", "95% CI of B − A", "verdict"]


def _num(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}%" if pct else f"{value:.3g}" if abs(value) >= 100 else f"{value:.2f}"


def _row(r: Row) -> list[str]:
    ci = "-" if r.ci_low is None or r.ci_high is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
    return [r.target, r.stage, f"{r.metric} ({r.better} is better)", _num(r.a), _num(r.b), _num(r.diff),
            _num(r.diff_pct, pct=True), ci, r.verdict]


def comparison_table(comp: Comparison) -> Table:
    return Table(f"B against A: {comp.resamples} bootstrap resamples of the requests, seed {comp.seed}", COLUMNS,
                 [_row(r) for r in comp.rows], left=3)


def _lines(comp: Comparison) -> list[str]:
    lines = [f"A: {comp.run_a}", f"B: {comp.run_b}"]
    lines += [f"note: {n}" for n in comp.notes]
    if comp.rules:
        held = comp.failed_rules
        lines.append(f"--fail-if held with significance: {', '.join(held)}" if held else
                     f"no --fail-if rule held with significance ({', '.join(comp.rules)})")
    return lines


def to_markdown_report(comp: Comparison) -> str:
    return "\n".join([f"## {comparison_table(comp).title}", "", *(f"- {line}" for line in _lines(comp)), "",
                      to_markdown(comparison_table(comp)), ""])


def to_html_report(comp: Comparison) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _lines(comp))
    title = html.escape(comparison_table(comp).title)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadgen compare</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}</style></head><body>
<h1>{title}</h1><ul>{items}</ul>{to_html(comparison_table(comp))}
<p>Difference B − A; the interval is the percentile bootstrap of the difference (loadgen/answers/compare.py,
docs/metrics.md). A verdict is better or worse only when the interval excludes 0.</p></body></html>
"""
