"""Summaries of a run: ``summary.json``, ``summary.csv`` and the console table.

All numbers come from ``loadgen.metrics`` applied to the records, so ``loadgen report DIR``
re-renders exactly what the run printed. Layout of ``summary.json``::

    {"manifest": {...},
     "targets": {NAME: {<metrics over all stages>, "stages": {STAGE: {<metrics>}}}}}

with <metrics> = {"requests": {"ok", "failed", "by_error"}, "ttft_ms", "ttft_intended_ms",
"ttfb_ms", "itl_ms", "tpot_ms", "e2e_ms", "send_lag_ms", "loop_lag_ms" (each {count,
mean, std, min, p50, p90, p95, p99, p999, max} or null), "output_tokens_per_s",
"input_tokens_per_s", "requests_per_s", "goodput_rps" (null without SLOs)}; with an
``agreement`` reference, each other target's all-stages block also has "agreement"
(``loadgen.agreement``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen import metrics as m
from loadgen.agreement import Tokenize, agreement
from loadgen.record import RequestRecord

DISTRIBUTIONS = ("ttft_ms", "ttft_intended_ms", "ttfb_ms", "itl_ms", "tpot_ms", "e2e_ms", "send_lag_ms",
                 "loop_lag_ms")


def _stats(s: m.Stats | None) -> dict[str, float] | None:
    return s.as_dict() if s is not None else None


def summarize(records: Sequence[RequestRecord], loop_lags_ms: Sequence[float],
              slo: dict[str, float | None]) -> dict[str, Any]:
    """The metrics block for one set of measured (non-warm-up) records."""
    records = m.measured(records)
    ok = [r for r in records if r.ok]
    has_slo = any(v is not None for v in slo.values())
    return {
        "requests": {"ok": len(ok), "failed": len(records) - len(ok), "by_error": m.errors_by_class(records)},
        "ttft_ms": _stats(m.per_request(records, m.ttft_ms)),
        "ttft_intended_ms": _stats(m.per_request(records, m.ttft_intended_ms)),
        "ttfb_ms": _stats(m.per_request(records, m.ttfb_ms)),
        "itl_ms": _stats(m.itl_stats(records)),
        "tpot_ms": _stats(m.per_request(records, m.tpot_ms)),
        "e2e_ms": _stats(m.per_request(records, m.e2e_ms)),
        "send_lag_ms": _stats(m.per_request(records, m.send_lag_ms, ok_only=False)),
        "loop_lag_ms": _stats(m.stats(loop_lags_ms)),
        "output_tokens_per_s": round(m.output_tokens_per_s(records), 3),
        "input_tokens_per_s": round(m.input_tokens_per_s(records), 3),
        "requests_per_s": round(m.requests_per_s(records), 3),
        "goodput_rps": round(m.goodput_rps(records, slo.get("ttft_ms"), slo.get("tpot_ms"), slo.get("e2e_ms")), 3)
        if has_slo else None,
    }


def build_summary(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]],
                  manifest: dict[str, Any], slo: dict[str, float | None], agreement_reference: str | None = None,
                  tokenize: Tokenize | None = None) -> dict[str, Any]:
    """Per target, over all stages and per stage. ``loop_lag``: (perf_counter_ns, lag ns) samples,
    attributed to a target/stage by the window its records span."""
    targets: dict[str, Any] = {}
    for target in dict.fromkeys(r.target for r in records):
        mine = [r for r in records if r.target == target and not r.warmup]
        block = summarize(mine, _lags_within(mine, loop_lag), slo)
        stages: dict[str, Any] = {}
        for stage in sorted({r.stage for r in mine}):
            in_stage = [r for r in mine if r.stage == stage]
            stages[in_stage[0].stage_name] = summarize(in_stage, _lags_within(in_stage, loop_lag), slo)
        block["stages"] = stages
        if agreement_reference is not None and target != agreement_reference:
            block["agreement"] = agreement(records, agreement_reference, target, tokenize)
        targets[target] = block
    return {"manifest": manifest, "targets": targets}


def _lags_within(records: Sequence[RequestRecord], loop_lag: Sequence[tuple[int, int]]) -> list[float]:
    if not records:
        return []
    start, end = min(r.sent_ns for r in records), max(r.end_ns for r in records)
    return [lag / 1e6 for t, lag in loop_lag if start <= t <= end]


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")


CSV_STATS = ("mean", "p50", "p90", "p99", "max")


def write_csv(summary: dict[str, Any], path: Path) -> None:
    """One row per target and stage (stage ``all`` = every stage together)."""
    header = ["target", "stage", "ok", "failed"] + [f"{d}_{s}" for d in DISTRIBUTIONS for s in CSV_STATS] + [
        "output_tokens_per_s", "input_tokens_per_s", "requests_per_s", "goodput_rps"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for target, block in summary["targets"].items():
            for stage, data in [("all", block), *block["stages"].items()]:
                row: list[Any] = [target, stage, data["requests"]["ok"], data["requests"]["failed"]]
                for d in DISTRIBUTIONS:
                    row += [(data[d] or {}).get(s, "") for s in CSV_STATS]
                row += [data["output_tokens_per_s"], data["input_tokens_per_s"], data["requests_per_s"],
                        data["goodput_rps"] if data["goodput_rps"] is not None else ""]
                writer.writerow(row)


def write_text(summary: dict[str, Any], path: Path) -> None:
    """The console table and notes as plain text (``report.txt``)."""
    with path.open("w") as f:
        print_table(summary, Console(file=f, width=200, color_system=None, force_terminal=False))


def _fmt(stats: dict[str, float] | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.1f}"


def print_table(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log file gets the whole table
    table = Table(title="Client-side measurements (ms; formulas in docs/metrics.md)")
    for column in ("target", "stage", "ok", "fail", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "TPOT p50",
                   "E2E p50", "E2E p99", "out tok/s", "req/s", "goodput"):
        table.add_column(column, justify="left" if column in ("target", "stage") else "right")
    for target, block in summary["targets"].items():
        stages = block["stages"]
        rows = list(stages.items()) if len(stages) > 1 else []
        for stage, data in [("all", block), *rows]:
            table.add_row(target, stage, str(data["requests"]["ok"]), str(data["requests"]["failed"]),
                          _fmt(data["ttft_ms"], "p50"), _fmt(data["ttft_ms"], "p99"),
                          _fmt(data["itl_ms"], "p50"), _fmt(data["itl_ms"], "p99"), _fmt(data["tpot_ms"], "p50"),
                          _fmt(data["e2e_ms"], "p50"), _fmt(data["e2e_ms"], "p99"),
                          f"{data['output_tokens_per_s']:.1f}", f"{data['requests_per_s']:.2f}",
                          "-" if data["goodput_rps"] is None else f"{data['goodput_rps']:.2f}")
    console.print(table)
    for target, block in summary["targets"].items():
        agree = block.get("agreement")
        if agree:
            console.print(f"{target} vs {agree['reference']}: {agree['exact']}/{agree['compared']} outputs identical, "
                          f"shared prefix {agree['shared_prefix_tokens']['mean']:.1f} {agree['unit']} on average "
                          f"(min {agree['shared_prefix_tokens']['min']}, "
                          f"{agree['shared_prefix_ratio_mean']:.0%} of the reference's output)")
        elif "agreement" in block:
            console.print(f"{target}: no outputs to compare with the reference (no ok request for a shared prompt)")
    for target, block in summary["targets"].items():
        errors = {k: v for k, v in block["requests"]["by_error"].items() if v}
        if errors:
            console.print(f"[red]{target}: errors by class {errors}[/red]")
        for name in ("send_lag_ms", "loop_lag_ms"):
            s = block[name]
            if s and s["p99"] > 5.0:
                console.print(f"[yellow]warning: {target} {name} p99 is {s['p99']:.1f} ms (> 5 ms): the client "
                              "was late, its timestamps carry that delay[/yellow]")
