"""A run's progress on a terminal: one bar per target, advanced by measured records.

It observes a run through ``loadgen.api.Hooks`` (so the CLI and the demo show the same bars)
and is off when the output is not a terminal worth redrawing (``enabled=False``).
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from loadgen.api import Hooks
from loadgen.record import RequestRecord


class ProgressBar:
    def __init__(self, hooks: Hooks, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, refresh_per_second=4, transient=False)
        self.task: TaskID | None = None
        if enabled:
            hooks.on_target, hooks.on_record = self.on_target, self.on_record

    def on_target(self, name: str, total: int | None) -> None:
        self.task = self.progress.add_task(name, total=total)

    def on_record(self, record: RequestRecord) -> None:
        if self.task is not None and not record.warmup:
            self.progress.advance(self.task)

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.enabled:
            self.progress.stop()
