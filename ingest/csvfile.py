"""Read a legacy CSV as all-string columns, tolerating BOM, CRLF and ';' separators."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from ingest.errors import InputError

NULL_TOKENS = ["", "NA", "N/A", "NaN", "nan", "None", "none", "null", "NULL"]


def _sniff_separator(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline()
    if not header.strip():
        raise InputError(f"{path} is empty (no header line)", "re-export the file from its source")
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def read_csv_strings(path: Path, what: str, columns: list[str] | None = None) -> pl.DataFrame:
    """Every column (or only `columns`) as String; null tokens become null. Raises InputError on unusable files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}", "check --root / --data-root")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes)", "re-export the file from its source")
    separator = _sniff_separator(path)
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as handle:
        try:
            header = next(csv.reader(io.StringIO(handle.readline()), delimiter=separator))
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} file {path} is not UTF-8 text: {exc}", "save it as UTF-8 CSV") from exc
    names = [name.strip() for name in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(
            f"{what} file {path} has duplicated column(s): {', '.join(map(repr, duplicated))}",
            "remove or rename the repeated columns",
        )
    if any(not n for n in names):
        raise InputError(f"{what} file {path} has a column with an empty name", "name every column in the header")
    try:
        frame = pl.read_csv(
            path,
            separator=separator,
            infer_schema=False,
            null_values=NULL_TOKENS,
            encoding="utf8",
            new_columns=names,
            columns=None if columns is None else [n for n in names if n in columns],
        )
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{what} file {path} could not be parsed as CSV: {exc}", "check quoting and separators") from exc
    # Strip surrounding spaces and carriage returns left by odd exports.
    frame = frame.with_columns(pl.all().str.strip_chars(" \r\t"))
    return frame.with_columns(pl.when(pl.all() == "").then(None).otherwise(pl.all()).name.keep())
