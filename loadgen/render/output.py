"""What a run's output format is, for the ``OUTPUTS`` registry: a file name and the function that writes it.

Why a registry: ``api.write_outputs`` used to call each format by hand, so a new format meant an edit there. Now
each format's module registers an ``OutputFormat`` (``OUTPUTS.register("csv")(...)``) and ``write_outputs``
writes every registered one: a new format is one new file in ``loadgen/render/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadgen.observe.summary_blocks import Observed
from loadgen.record import RequestRecord
from loadgen.summary import Summary


class FinishedRun(Protocol):
    """What a format may read of a finished run (``loadgen.api.RunResult`` has it)."""

    records: list[RequestRecord]
    summary: Summary
    loop_lag: list[tuple[int, int]]
    observed: Observed


@dataclass(frozen=True)
class OutputFormat:
    """``file`` in the run folder, written by ``write(run, path)``; ``report``: only when the run asks for its
    report (report.html, the costly one: ``run(..., report=False)`` skips it)."""

    file: str
    write: Callable[[FinishedRun, Path], None]
    report: bool = False


def formats(registered: Sequence[tuple[str, OutputFormat]], report: bool) -> list[OutputFormat]:
    return [f for _, f in registered if report or not f.report]
