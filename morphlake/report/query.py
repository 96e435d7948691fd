"""`morphlake sql`: a query run read-only against the warehouse (or the raw lake), as a table, CSV or Parquet."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import duckdb

from morphlake.common.sqltext import literal
from morphlake.errors import MorphlakeError
from morphlake.lake.files import atomic_path
from morphlake.lake.layout import Lake
from morphlake.report.lakedb import connect, views

OUTPUT_KINDS = {".csv": "csv", ".parquet": "parquet"}
# The one kind of statement `sql` runs: a query (select, from, with, values, show, describe, summarize). Anything
# else may write (COPY, EXPORT, ATTACH, CREATE, SET, PRAGMA, CALL, LOAD…; PIVOT is several statements, one of them
# a CREATE), even on a read-only connection, which only protects the warehouse file itself. EXPLAIN is judged by
# what it explains (EXPLAIN ANALYZE runs the statement), found with DuckDB's own tokenizer (comments nest).
READ_ONLY_KINDS = {"SELECT"}
EXPLAIN_WORDS = ("explain", "analyze", "analyse")


def open_lake(lake: Lake, *, raw: bool = False) -> tuple[duckdb.DuckDBPyConnection, str]:
    """(connection, what it reads): the warehouse opened read_only when it exists (df03, df03_coverage, the
    stg_* views), else an in-memory view of the raw lake (df02, train, snips, embeddings)."""
    if lake.warehouse.exists() and not raw:
        con, source = duckdb.connect(str(lake.warehouse), read_only=True), f"warehouse {lake.warehouse}"
    else:
        con, source = connect(lake), f"raw lake {lake.root}"
    # a query that spills writes its temporary files beside the database (in the lake) unless told otherwise;
    # no extension is installed from the network; and the query itself cannot change any of this
    con.execute(f"SET temp_directory = {literal(tempfile.gettempdir())}")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con, source


def tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    names = {r[0] for r in con.execute("select table_name from duckdb_tables() where not internal").fetchall()}
    return sorted(names | views(con))


def render(relation: duckdb.DuckDBPyRelation, *, max_rows: int = 40, max_width: int | None = None) -> str:
    """DuckDB's own box table (long results shown head and tail, wide ones with the middle columns elided)."""
    text = io.StringIO()
    width = max_width or shutil.get_terminal_size((160, 24)).columns  # a job's log or a pipe: 160 wide
    with contextlib.redirect_stdout(text):
        relation.show(max_rows=max_rows, max_width=width, max_col_width=60)
    return text.getvalue().rstrip("\n")


def output_kind(output: Path) -> str:
    """csv or parquet, by the -o file's suffix."""
    kind = OUTPUT_KINDS.get(Path(output).suffix.lower())
    if kind is None:
        names = " or ".join(f"*{suffix}" for suffix in OUTPUT_KINDS)
        raise MorphlakeError(f"cannot tell the format of {output} from its suffix", f"name it {names}")
    return kind


def write(relation: duckdb.DuckDBPyRelation, output: Path) -> int:
    """CSV or Parquet by the file's suffix, written beside it first and renamed: never a half file. Returns the
    rows written (counted in the file: the query runs once)."""
    kind = output_kind(output)
    with atomic_path(Path(output).absolute()) as partial:
        if kind == "csv":
            relation.write_csv(str(partial), header=True)
        else:
            relation.write_parquet(str(partial))
        reader = "read_csv(?, header = true)" if kind == "csv" else "read_parquet(?)"
        rows = duckdb.connect().execute(f"select count(*) from {reader}", [str(partial)]).fetchall()[0][0]
    return rows


def statement_kind(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """The kind of the one statement in `query` (SELECT, COPY, …; an EXPLAIN is the kind of what it explains),
    refusing more than one: `a; b` would run `a` and show only `b`."""
    statements = con.extract_statements(query)
    if len(statements) != 1:
        raise MorphlakeError(
            f"morphlake sql runs one statement at a time; this has {len(statements)}",
            "run each query on its own",
        )
    kind, text = statements[0].type.name, statements[0].query
    if kind != "EXPLAIN":
        return kind
    words = _words(text)
    skip = 2 if len(words) > 1 and words[1][1] in EXPLAIN_WORDS[1:] else 1
    if len(words) <= skip or words[0][1] != "explain":
        return kind
    return statement_kind(con, text[words[skip][0] :])


def _words(text: str) -> list[tuple[int, str]]:
    """(offset, lower-case text) of each token of `text` that is not a comment, by DuckDB's tokenizer."""
    tokens = duckdb.tokenize(text)
    ends = [offset for offset, _ in tokens[1:]] + [len(text)]
    return [
        (offset, text[offset:end].strip().lower())
        for (offset, kind), end in zip(tokens, ends)
        if kind != duckdb.token_type.comment
    ]


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but one query: `sql` never writes the lake, the warehouse or any other file."""
    try:
        kind = statement_kind(con, query)
    except duckdb.Error as exc:
        raise MorphlakeError(f"the query cannot be parsed: {str(exc).strip()}", "check its SQL") from None
    if kind not in READ_ONLY_KINDS:
        raise MorphlakeError(
            f"morphlake sql runs queries only; this statement is {kind}, and it was not run",
            "use select / from / with / show / describe / summarize; to save a result, pass -o FILE.csv or "
            "-o FILE.parquet (outside the lake)",
        )


def run_sql(lake: Lake, query: str, *, raw: bool = False) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation]:
    """The query's result as a relation (the connection stays open with it). Only a query runs: see
    check_read_only."""
    con, source = open_lake(lake, raw=raw)
    check_read_only(con, query)
    try:
        relation = con.sql(query)
    except duckdb.Error as exc:
        hint = f"tables here: {', '.join(tables(con)) or 'none'}; morphlake sql never writes the lake"
        if source.startswith("raw"):
            hint += " (df03 and df03_coverage come with the warehouse: run `morphlake build`)"
        raise MorphlakeError(f"the query failed on the {source}: {str(exc).strip()}", hint) from None
    if relation is None:
        raise MorphlakeError("the statement returned no rows", "morphlake sql runs queries (select, describe, show)")
    return con, relation


__all__ = ["open_lake", "run_sql", "render", "write", "output_kind", "tables", "check_read_only"]
