"""``records.jsonl``: one line per request, written the moment the request ends.

A killed run therefore loses only the requests that were in flight. Lines are flushed
to the OS at once (not fsynced: a process crash loses nothing, a power cut may).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from loadgen.record import RequestRecord

RECORDS_FILE = "records.jsonl"
LOOP_LAG_FILE = "loop_lag.jsonl"


class JsonlSink:
    """records.jsonl. A write that fails (a full disk: ENOSPC) is not a traceback per request: the file is cut back
    to its last complete record, ``error`` says what failed in one line, ``on_failure`` (the runner's stop) is
    called once, and later records are not written (issue 29)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Unbuffered: each record is one write (as before: a flush per record), and after a failed write no
        # buffered remainder is left to be written, half a record, when the file is closed.
        self._file: IO[bytes] = path.open("ab", buffering=0)
        self._good = self._file.tell()  # the end of the last complete record
        self.written = 0
        self.error: str | None = None
        self.on_failure: Callable[[], None] | None = None

    def __call__(self, record: RequestRecord) -> None:
        self._append(record.model_dump_json(exclude_defaults=False) + "\n")

    def write_line(self, line: bytes) -> None:
        """A record already serialised by another process (``loadgen.scaling.coordinator``), as one line."""
        self._append(line.decode())

    def _append(self, text: str) -> None:
        if self.error is not None:
            return
        encoded = text.encode("utf-8")
        rest = memoryview(encoded)
        try:
            while rest:  # a short write (the disk filling up) is followed by one that fails
                done = self._file.write(rest)
                if not done:
                    raise OSError(errno.ENOSPC, "nothing written")
                rest = rest[done:]
        except OSError as exc:
            self._failed(exc)
            return
        self._good += len(encoded)
        self.written += 1

    def _failed(self, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "error")
        self.error = f"cannot write {self.path}: {name}, {exc.strerror or exc}"
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._good)  # no half record left at the end
        if self.on_failure is not None:
            self.on_failure()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # what could not be flushed is already said in ``error``
            self._file.close()


def read_records(path: Path, notify: Callable[[str], None] | None = None) -> Iterator[RequestRecord]:
    """Every record of a records.jsonl. The last line of a killed run may be cut short (no newline):
    it is skipped, since that request never finished being written, and ``notify`` is told so; any other bad
    line is an error naming the file and line."""
    with path.open(encoding="utf-8") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield RequestRecord.model_validate_json(line)
        except ValueError as exc:
            if number == len(lines) and not line.endswith("\n"):
                if notify is not None:
                    notify(f"{path}: skipped 1 line, the last ({number}): cut short, a request whose record was "
                           "never finished (the run was killed, or its disk was full)")
                return
            raise ValueError(f"{path}:{number}: not a request record: {exc}") from exc


def write_pairs(pairs: Sequence[tuple[int, int]], path: Path) -> None:
    """Samples as one ``[a, b]`` JSON pair of integers a line (loop_lag.jsonl, cpu.jsonl)."""
    path.write_text("".join(f"[{a},{b}]\n" for a, b in pairs))


def read_pairs(path: Path, meaning: str) -> list[tuple[int, int]]:
    """What ``write_pairs`` wrote; an absent file (a run from before that file existed) gives no samples.
    A bad line raises ValueError naming the file, the line and what the pair should be (``meaning``)."""
    if not path.exists():
        return []
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            a, b = json.loads(line)
            if not (isinstance(a, int) and isinstance(b, int)):
                raise ValueError("not two integers")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a {meaning} pair: {exc}") from exc
        pairs.append((a, b))
    return pairs
