"""``summary.csv``: one row per target and stage (stage ``all`` = every stage together), each stage followed by
its steady state (stage ``"<stage> steady"``, ``loadgen.verdicts.steady``).

Columns: target, stage, ok, failed, then ``<distribution>_<stat>`` for every registered
distribution and ``CSV_STATS``, then every registered aggregate.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from loadgen import metrics as m
from loadgen.registry import OUTPUTS
from loadgen.render.output import OutputFormat
from loadgen.summary import Summary, windows

CSV_FILE = "summary.csv"  # in the run folder (the OUTPUTS registry writes it)

CSV_STATS = ("mean", "p50", "p90", "p99", "max")


def header() -> list[str]:
    return ["target", "stage", "ok", "failed", *(f"{d.name}_{s}" for d in m.DISTRIBUTIONS for s in CSV_STATS),
            *(a.name for a in m.AGGREGATES)]


def write_csv(summary: Summary, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header())
        for target, block in summary.targets.items():
            for stage, data in windows(block):
                row: list[Any] = [target, stage, data.requests.ok, data.requests.failed]
                for d in m.DISTRIBUTIONS:
                    s = data.stats(d.name)
                    row += [getattr(s, stat) if s is not None else "" for stat in CSV_STATS]
                row += [v if (v := data.value(a.name)) is not None else "" for a in m.AGGREGATES]
                writer.writerow(row)


OUTPUTS.register("csv")(OutputFormat(CSV_FILE, lambda run, path: write_csv(run.summary, path)))
