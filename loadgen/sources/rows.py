"""Reading a source's input file row by row, with errors that name the file, the line and the field.

Why one module: every file-based source (traces, conversations) must stop a run before its
first request on a malformed row, with a message the user can act on (``trace.csv:17: field
'ContextTokens': not an integer: 'abc'``), never a traceback. JSON arrays are read item by
item with the line each item starts on, so a ShareGPT file's errors have line numbers too.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from loadgen.tokens import PromptError

_DECODER = json.JSONDecoder()


EXCERPT = 200  # characters of a file's content an error may quote


def excerpt(text: str) -> str:
    """``text`` cut for an error message: a binary file's "header" or a 100 KB cell is not quoted whole."""
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}… ({len(text):,} characters)"


def row_error(path: Path, line: int, field: str, problem: str) -> PromptError:
    return PromptError(f"{path}:{line}: field {excerpt(field)!r}: {excerpt(problem)}")


def read_text(path: Path) -> str:
    """A data file's text; refused at once when it is not UTF-8 text (a binary file, a NUL byte)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read {path}: {excerpt(str(exc))}") from exc
    if "\x00" in text:
        raise PromptError(f"cannot read {path}: not a text file (it holds NUL bytes)")
    return text


class _Lines:
    """Line numbers of character positions, counted incrementally (positions only grow)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-empty line of a JSON Lines file."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            yield number, _object(path, number, line)


def _object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise row_error(path, number, "(line)", f"not JSON: {exc}") from exc
    except RecursionError:
        raise row_error(path, number, "(line)", "nested too deeply to be a row") from None
    if not isinstance(obj, dict):
        raise row_error(path, number, "(line)", f"expected a JSON object, found {type(obj).__name__}")
    return obj


def json_items(path: Path) -> Iterator[tuple[int, Any]]:
    """(line the item starts on, item) of a JSON array file; a file that is not an array is read
    as JSON Lines."""
    text = read_text(path)
    i = _skip_space(text, 0)
    if not text.startswith("[", i):
        yield from jsonl_objects(path)
        return
    lines = _Lines(text)
    i = _skip_space(text, i + 1)
    while i < len(text) and text[i] != "]":
        try:
            item, end = _DECODER.raw_decode(text, i)
        except ValueError as exc:
            # the line the broken item starts on; the JSON error says where inside it
            raise row_error(path, lines.at(i), "(item)", f"not JSON: {exc}") from exc
        except RecursionError:
            raise row_error(path, lines.at(i), "(item)", "nested too deeply to be an item") from None
        yield lines.at(i), item
        i = _skip_space(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_space(text, i + 1)
        elif i >= len(text) or text[i] != "]":
            raise row_error(path, lines.at(min(i, len(text))), "(item)", "expected ',' or ']' after an item")
    if i >= len(text):
        raise row_error(path, lines.at(len(text)), "(file)", "the JSON array is not closed with ']'")


def csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with a header line that has every ``required`` column."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = reader.fieldnames or []
    for column in required:
        if column not in header:
            raise row_error(path, 1, column, f"missing column (the header has {', '.join(header) or 'nothing'})")
    for row in reader:
        if None in row or any(row.get(c) is None for c in required):
            raise row_error(path, reader.line_num, "(line)", f"expected {len(header)} columns")
        yield reader.line_num, row


def integer(path: Path, line: int, field: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an integer ≥ ``minimum`` (a JSON number, or a CSV cell's text)."""
    try:
        number = int(value) if not isinstance(value, bool) and not isinstance(value, float) else None
    except (TypeError, ValueError):
        number = None
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        raise row_error(path, line, field, f"not an integer: {value!r}")
    if number < minimum:
        raise row_error(path, line, field, f"must be at least {minimum}, found {number}")
    return number


def real(path: Path, line: int, field: str, value: Any) -> float:
    """``value`` as a finite number (a JSON number, or a CSV cell's text)."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number or number in (float("inf"), float("-inf")):
        raise row_error(path, line, field, f"not a number: {value!r}")
    return number
