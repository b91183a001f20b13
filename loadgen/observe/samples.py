"""The two samples files of a run (``resources.jsonl``, ``server_metrics.jsonl``): one JSON object a line.

Why one line per sample, written as it is taken: like ``records.jsonl``, a killed run keeps what
was sampled, and ``loadgen report DIR`` rebuilds the ``resources``/``server`` blocks from the files
alone. Every line carries the target, the stage it was taken in and why it was taken (periodic, or
at a stage's start or end), so a window's samples are found without any other file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

Event = Literal["sample", "stage_start", "stage_end"]


class Sample(BaseModel):
    """What every sample line has: when (``perf_counter_ns`` of the run's process, the records' clock),
    which target was being loaded, in which stage (None: before the first stage, i.e. warm-up), and why."""

    model_config = ConfigDict(extra="forbid")
    t_ns: int
    target: str
    stage: str | None = None
    event: Event = "sample"


S = TypeVar("S", bound=Sample)


class SampleFile:
    """Appends samples to one file as they are taken (flushed at once; not fsynced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.failed = False

    def write(self, sample: Sample) -> None:
        """Append one sample; once a write fails (a full disk) the file takes no more: the samples stay in memory
        and the run's own stop says why (``JsonlSink``), never a traceback from the sampling thread."""
        if self.failed:
            return
        try:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(sample.model_dump_json(exclude_defaults=True) + "\n")
            self._file.flush()
        except OSError:
            self.failed = True

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()


def read_samples(path: Path, model: type[S]) -> list[S]:
    """Every sample of a file; an absent file (a run from before it existed, or one that sampled
    nothing) gives none. A last line cut short by a kill is skipped; any other bad line raises
    ValueError naming the file, the line and the field."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            found.append(model.model_validate_json(line))
        except ValidationError as exc:
            if number == len(lines) and not line.endswith("\n"):
                break
            problems = "; ".join(f"field {'.'.join(str(p) for p in e['loc']) or '(line)'}: {e['msg']}"
                                 for e in exc.errors()[:3])
            raise ValueError(f"{path}:{number}: not a {model.__name__} line: {problems}") from exc
    return found


def in_window(samples: Iterable[S], target: str, stage: str | None = None) -> list[S]:
    """The samples of ``target`` taken during stage ``stage`` (its start and end marks included), or,
    with ``stage=None``, during any stage (warm-up left out); in time order."""
    return sorted((s for s in samples if s.target == target and s.stage is not None
                   and (stage is None or s.stage == stage)), key=lambda s: s.t_ns)


def first_last_delta(points: Sequence[tuple[int, float]]) -> float | None:
    """last − first of a cumulative counter's (t_ns, value) points; None with fewer than two points or
    when it went down (the process restarted: the difference means nothing)."""
    if len(points) < 2:
        return None
    delta = points[-1][1] - points[0][1]
    return delta if delta >= 0 else None
