"""Small helpers the data set readers share: rejection records, first-existing-file lookup, CSV rows with line numbers.

A reader never drops a bad line or a missing file silently: it records a rejection naming `file:line` (or the file)
and the problem, which `check-data` prints and a run lists among its failures.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Iterator

from harness.errors import DataError


def rejection(path: str | Path, problem: str, line: int | None = None, sample_id: str = "") -> dict[str, str]:
    """The record a reader keeps for an unusable line or file (the shape `SampleList.rejected` holds)."""
    where = f"{path}:{line}" if line is not None else str(path)
    return {"sample_id": sample_id, "path": where, "error": f"{where}: {problem}"}


def missing_file(path: str | Path, sample_id: str = "") -> dict[str, str]:
    return rejection(path, "file is missing", sample_id=sample_id)


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for c in candidates:
        if c.exists():
            return c
    return None


def read_text(path: Path) -> str:
    """A text annotation file as str; a UTF-8 byte-order mark (some re-saved copies carry one) is dropped."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"is not UTF-8 text ({exc})") from exc


CsvRecord = tuple[int, "dict[str, str] | None", "str | None"]


def csv_records(path: Path, required: Iterable[str] = ()) -> tuple[list[str], Iterator[CsvRecord]]:
    """(header, iterator of (line number, {column: value} or None, problem or None)) for a CSV with a header row,
    read with the csv module (quotes, embedded commas and line breaks handled). Columns are selected by name, never by
    position; the line number is the line on which the record starts. A record that cannot be split into the header's
    columns comes with its problem instead of its values, so the caller can reject it with its line."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(str(path), "is empty (expected a header row)", 1) from None
    except csv.Error as exc:
        raise DataError(str(path), f"header is not valid CSV ({exc})", 1) from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(str(path), f"header {header} lacks the column(s) {missing}", 1)

    def rows() -> Iterator[CsvRecord]:
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, f"is not valid CSV ({exc})"
                return
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                yield start, None, f"has {len(fields)} fields, the header {len(header)}: {fields}"
                continue
            yield start, dict(zip(header, fields)), None

    return header, rows()
