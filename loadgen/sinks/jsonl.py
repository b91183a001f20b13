"""``records.jsonl``: one line per request, written the moment the request ends.

A killed run therefore loses only the requests that were in flight. Lines are flushed
to the OS at once (not fsynced: a process crash loses nothing, a power cut may).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from loadgen.record import RequestRecord

RECORDS_FILE = "records.jsonl"
LOOP_LAG_FILE = "loop_lag.jsonl"


class JsonlSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self.written = 0

    def __call__(self, record: RequestRecord) -> None:
        self._file.write(record.model_dump_json(exclude_defaults=False) + "\n")
        self._file.flush()
        self.written += 1

    def write_line(self, line: bytes) -> None:
        """A record already serialised by another process (``loadgen.scaling.coordinator``), as one line."""
        self._file.write(line.decode())
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        self._file.close()


def read_records(path: Path) -> Iterator[RequestRecord]:
    """Every record of a records.jsonl. The last line of a killed run may be cut short (no newline):
    it is skipped, since that request never finished being written; any other bad line is an error
    naming the file and line."""
    with path.open(encoding="utf-8") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield RequestRecord.model_validate_json(line)
        except ValueError as exc:
            if number == len(lines) and not line.endswith("\n"):
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
