"""Read a legacy CSV as all-string columns, tolerating BOM, CRLF and ';' separators."""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import polars as pl

from morphlake.ingest.errors import InputError

NULL_TOKENS = ["", "NA", "N/A", "NaN", "nan", "None", "none", "null", "NULL"]
# pandas' `to_csv()` writes the index as a first column with an empty header; read back and saved
# again it is called `Unnamed: 0` (and a new empty-headed index comes before it).
INDEX_HEADER = re.compile(r"^(|Unnamed: \d+(\.\d+)?)$")
INTEGER = r"^-?\d+$"
log = logging.getLogger("morphlake.ingest")


def sniff_separator(path: Path) -> str:
    """The field separator of a CSV file (',', ';' or a tab), from its header line."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline()
    if not header.strip():
        raise InputError(f"{path} is empty (no header line)", "re-export the file from its source")
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def read_header(path: Path) -> list[str]:
    """A CSV file's column names (stripped), without reading its rows."""
    separator = sniff_separator(path)
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        return [name.strip() for name in next(csv.reader(io.StringIO(handle.readline()), delimiter=separator))]


def read_csv_strings(path: Path, what: str, columns: list[str] | None = None) -> pl.DataFrame:
    """Every column (or only `columns`) as String; null tokens become null. Raises InputError on unusable files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}", "check the root folder it was looked for under")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes)", "re-export the file from its source")
    separator = sniff_separator(path)
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as handle:
        try:
            header = next(csv.reader(io.StringIO(handle.readline()), delimiter=separator))
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} file {path} is not UTF-8 text: {exc}", "save it as UTF-8 CSV") from exc
    names = [name.strip() for name in header]
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    if duplicated:
        raise InputError(
            f"{what} file {path} has duplicated column(s): {', '.join(map(repr, duplicated))}",
            "remove or rename the repeated columns",
        )
    # Empty headers get placeholder names so the file parses; a leading index column is dropped below.
    parsed_names = [n or f"__unnamed_{i}" for i, n in enumerate(names)]
    leading = 0
    while leading < len(names) and INDEX_HEADER.match(names[leading]):
        leading += 1
    wanted = None if columns is None else [n for i, n in enumerate(parsed_names) if n in columns or i < leading]
    try:
        frame = pl.read_csv(
            path,
            glob=False,  # a data root under `it's [1]` is a path, not a pattern
            separator=separator,
            infer_schema=False,
            null_values=NULL_TOKENS,
            encoding="utf8",
            new_columns=parsed_names,
            columns=wanted,
        )
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"{what} file {path} could not be parsed as CSV: {exc}", "check quoting and separators"
        ) from exc
    frame = _drop_index_columns(frame, parsed_names[:leading], names[:leading], path=path, what=what)
    blank = [i + 1 for i, n in enumerate(names) if not n and parsed_names[i] in frame.columns]
    if blank:
        raise InputError(
            f"{what} file {path} has a column with an empty name (column {blank[0]})",
            "name every column in the header (a leading pandas index column of 0, 1, 2, … is recognised and left out)",
        )
    # Strip surrounding spaces and carriage returns left by odd exports.
    frame = frame.with_columns(pl.all().str.strip_chars(" \r\t"))
    return frame.with_columns(pl.when(pl.all() == "").then(None).otherwise(pl.all()).name.keep())


def _drop_index_columns(
    frame: pl.DataFrame, candidates: list[str], headers: list[str], *, path: Path, what: str
) -> pl.DataFrame:
    """Drop leading pandas index columns (empty or `Unnamed: N` header, whole numbers in every row)."""
    for column, header in zip(candidates, headers):
        values = frame[column].str.strip_chars()
        if values.null_count() or not values.str.contains(INTEGER).all():
            break
        frame = frame.drop(column)
        log.info(
            "%s file %s: left out its leading index column %s (pandas to_csv; integers %s..%s)",
            what,
            path,
            repr(header) if header else "with an empty header",
            values.min(),
            values.max(),
        )
    return frame
