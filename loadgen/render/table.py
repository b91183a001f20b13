"""The one summary table, in every format the rig writes: console, report.txt, markdown, HTML.

Why one: the table users compare engines by must say the same thing wherever it appears.
Columns come from the metric registry (a distribution's ``table`` statistics, an aggregate's
``table`` format); ``side_by_side`` is the same numbers pivoted, targets as rows and stages
as column groups, for the demo and the benchmarks.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from loadgen import metrics as m
from loadgen.registry import OUTPUTS
from loadgen.render.output import OutputFormat
from loadgen.summary import Metrics, Summary, windows
from loadgen.verdicts.validity import THRESHOLDS

TEXT_FILE = "report.txt"  # in the run folder (the OUTPUTS registry writes it)

TITLE = "Client-side measurements (ms; formulas in docs/metrics.md)"
LAG_WARNING_MS = THRESHOLDS.loop_lag_p99_ms


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    left: int = 2  # the first ``left`` columns are labels (left-aligned)


def _cells(block: Metrics) -> list[str]:
    cells = []
    for d in m.DISTRIBUTIONS:
        s = block.stats(d.name)
        cells += ["-" if s is None else f"{getattr(s, stat):.1f}" for stat in d.table]
    for a in m.AGGREGATES:
        if a.table:
            value = block.value(a.name)
            cells.append("-" if value is None else a.table.format(value))
    return cells


def metric_columns() -> list[str]:
    return [f"{d.title} {stat}" for d in m.DISTRIBUTIONS for stat in d.table] + [
        a.title for a in m.AGGREGATES if a.table]


def summary_table(summary: Summary, stages: Literal["always", "when_several"] = "always") -> Table:
    """One row per target over all its stages (``all``), then one per stage, each followed by its steady state
    (``"<stage> steady"``); with ``when_several``, a single stage's own row is left out (it is ``all``)."""
    priced = any(block.cost is not None for block in summary.targets.values())
    table = Table(TITLE, ["target", "stage", "ok", "fail", *metric_columns(), *(["$/Mtok out"] if priced else [])])
    for target, block in summary.targets.items():
        for stage, data in windows(block, stages=stages == "always" or len(block.stages) > 1):
            usd = data.cost.usd_per_mtok_output if data.cost is not None else None
            table.rows.append([target, stage, str(data.requests.ok), str(data.requests.failed), *_cells(data),
                               *(["-" if usd is None else f"{usd:.4g}"] if priced else [])])
    return table


def side_by_side(summary: Summary, columns: tuple[tuple[str, str, str | None], ...] = (
        ("tok/s", "output_tokens_per_s", None), ("TTFT p50", "ttft_ms", "p50"), ("ITL p50", "itl_ms", "p50"))
                 ) -> Table:
    """Targets as rows, each stage a group of ``columns`` (title, metric name, statistic or None)."""
    stages = list(dict.fromkeys(s for block in summary.targets.values() for s in block.stages))
    table = Table("side by side", ["target", *(f"{stage} {title}" for stage in stages for title, _, _ in columns)],
                  left=1)
    for target, block in summary.targets.items():
        row = [target]
        for stage in stages:
            data = block.stages.get(stage)
            for _, name, stat in columns:
                row.append(_one(data, name, stat))
        table.rows.append(row)
    return table


def _one(data: Metrics | None, name: str, stat: str | None) -> str:
    if data is None:
        return "-"
    if stat is None:
        value = data.value(name)
        return "-" if value is None else f"{value:.1f}"
    s = data.stats(name)
    return "-" if s is None else f"{getattr(s, stat):.1f}"


def notes(summary: Summary) -> list[tuple[str, str]]:
    """(style, line) under the table: an invalid measurement first, then output agreement, errors by class,
    saturated stages, a late client."""
    lines: list[tuple[str, str]] = [("bold red", line) for line in validity_banner(summary)]
    for target, block in summary.targets.items():
        a = block.agreement
        if a is not None:
            prefix = a.shared_prefix_tokens
            lines.append(("", f"{target} vs {a.reference}: {a.exact}/{a.compared} outputs identical, shared prefix "
                              f"{prefix.mean:.1f} {a.unit} on average (min {prefix.min}, "
                              f"{a.shared_prefix_ratio_mean:.0%} of the reference's output)"))
        elif "agreement" in block.model_fields_set:
            lines.append(("", f"{target}: no outputs to compare with the reference (no ok request for a shared "
                              "prompt)"))
    for target, block in summary.targets.items():
        errors = {k: v for k, v in block.requests.by_error.items() if v}
        if errors:
            lines.append(("red", f"{target}: errors by class {errors}"))
            lines += [("red", f"  first {cls}: {detail}") for cls, detail in (block.requests.first_error or {}).items()
                      if detail]
        lines += [("yellow", f"{target} stage {stage}: the server was saturated (docs/metrics.md, Saturation)")
                  for stage, data in block.stages.items() if data.saturated]
        for name in ("send_lag_ms", "loop_lag_ms"):
            s = block.stats(name)
            if s is not None and s.p99 > LAG_WARNING_MS:
                lines.append(("yellow", f"warning: {target} {name} p99 is {s.p99:.1f} ms (> {LAG_WARNING_MS:g} ms): "
                                        "the client was late, its timestamps carry that delay"))
    return lines + worker_lines(summary)


def worker_lines(summary: Summary) -> list[tuple[str, str]]:
    """One line per client process of a ``--workers N`` run (or shard of a merged one): its share, what it
    sent, its CPU and loop lag; a dead one in red with the requests it lost."""
    lines = []
    for w in summary.workers or []:
        where = f" on {w.host}" if w.host else ""
        cpu = f"{w.cpu_share:.0%}" if w.cpu_share is not None else "-"
        lag = f"{w.loop_lag_p99_ms:.2f} ms" if w.loop_lag_p99_ms is not None else "-"
        line = (f"worker {w.worker} (share {w.share}{where}): {w.requests} requests, CPU {cpu} of a core, "
                f"loop lag p99 {lag}")
        if w.died:
            lines.append(("bold red", f"{line}; DIED (exit code {w.exit_code}): {w.lost} requests in flight recorded "
                                      "as worker_lost"))
        else:
            lines.append(("", line))
    return lines


def validity_banner(summary: Summary) -> list[str]:
    """One line per target whose validity verdict is false (loadgen.verdicts.validity), with its reasons."""
    return [f"INVALID MEASUREMENT for {target}: {'; '.join(block.validity.reasons)}"
            for target, block in summary.targets.items() if block.validity is not None and not block.validity.valid]


def print_summary(summary: Summary, console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log file gets the whole table
    console.print(to_rich(summary_table(summary, stages="when_several")))
    for style, line in notes(summary):  # escaped: an error's text ("[SSL: CERTIFICATE_VERIFY_FAILED]") is not markup
        console.print(f"[{style}]{escape(line)}[/{style}]" if style else escape(line))


def to_rich(table: Table) -> RichTable:
    out = RichTable(title=table.title)
    for i, column in enumerate(table.columns):
        out.add_column(column, justify="left" if i < table.left else "right")
    for row in table.rows:
        out.add_row(*row)
    return out


def _plain_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None, force_terminal=False), buffer


def to_text(summary: Summary) -> str:
    """The console table and notes as plain text (``report.txt``)."""
    console, buffer = _plain_console()
    print_summary(summary, console)
    return buffer.getvalue()


def to_plain(table: Table) -> str:
    """Any table as plain text (the demo's comparison.txt)."""
    console, buffer = _plain_console()
    console.print(to_rich(table))
    return buffer.getvalue()


def to_markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    align = [":--" if i < table.left else "--:" for i in range(len(table.columns))]
    return "\n".join([line(table.columns), line(align), *(line(row) for row in table.rows)])


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


OUTPUTS.register("text")(OutputFormat(TEXT_FILE, lambda run, path: path.write_text(to_text(run.summary))))
