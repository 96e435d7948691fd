"""Generated latents in the legacy store's format: morph_latents_<exp>.csv, for the lab's tools that read the store."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from morphlake.ingest.csvfile import INDEX_HEADER, read_header, sniff_separator
from morphlake.ingest.latents import z_columns, z_naming
from morphlake.legacy.compare import FLOAT32_DIGITS, significant_digits
from morphlake.legacy.outputs import quote

STORE_KEYS = ("experiment_date", "embryo_id", "snip_id")


def store_naming(files: list[Path]) -> tuple[str, int | None]:
    """(naming, nuisance dims) the model's existing store files use: bio_nuisance with its count of
    z_mu_n_ columns, else flat (also when there is no store file yet)."""
    for path in files:
        header = [c for c in read_header(path) if c.startswith("z_") and not INDEX_HEADER.match(c)]
        style, _, rename = z_naming(header, path)
        if style == "bio_nuisance":
            return style, sum(1 for c in rename if c.startswith("z_mu_n_"))
    return "flat", None


def store_name(flat: str, nuisance: int | None) -> str:
    """z_mu_07 -> z_mu_n_07 / z_mu_b_27 when the store names nuisance and biological dims."""
    if nuisance is None:
        return flat
    kind, index = flat.rsplit("_", 1)
    return f"{kind}_{'n' if int(index) < nuisance else 'b'}_{index}"


def store_sql(
    con: duckdb.DuckDBPyConnection,
    *,
    model_name: str,
    experiment: str,
    dim: int,
    nuisance: int | None,
    snips: list[str] | None = None,
) -> tuple[str, list]:
    """One experiment's embeddings of the model as a store file: experiment_date, embryo_id, snip_id, then every
    z_mu and (where the model has them) z_sigma column, one row per df02 snip with an embedding (of `snips` only,
    when given)."""
    where = "e.model_name = ? and e.experiment_date = ?"
    has_sigma = con.sql(
        f"select count(z_sigma_00) from stg_embeddings e where {where}", params=[model_name, experiment]
    ).fetchall()[0][0]
    zs = z_columns(dim) if has_sigma else z_columns(dim)[:dim]
    select = ", ".join(
        ["e.experiment_date, d.embryo_id, e.snip_id"]
        + [f"e.{quote(c)} as {quote(store_name(c, nuisance))}" for c in zs]
    )
    params = [model_name, experiment] + ([snips] if snips is not None else [])
    only = " and list_contains(?, e.snip_id)" if snips is not None else ""
    return (
        f"select {select} from stg_embeddings e join stg_df02 d using (snip_id, experiment_date) "
        f"where {where}{only} order by e.snip_id"
    ), params


def _written_wide(frame: pl.DataFrame, zs: list[str]) -> bool:
    """Whether a store file's z values were written with more digits than a float32 needs (float64's)."""
    most = frame.select(pl.max_horizontal(significant_digits(pl.col(c)).max() for c in zs)).item() if zs else 0
    return (most or 0) > FLOAT32_DIGITS


def completed_store(
    con: duckdb.DuckDBPyConnection, path: Path, *, model_name: str, experiment: str, snips: list[str]
) -> tuple[bytes, int]:
    """A store file with the lake's embeddings of `snips` appended in its own layout (separator, line ends, column
    order and z naming, a leading pandas index continued): its bytes as they are, then the new rows. Returns the
    new content and the rows appended."""
    original = path.read_bytes()
    header, separator = read_header(path), sniff_separator(path)
    newline = "\r\n" if original.split(b"\n", 1)[0].endswith(b"\r") else "\n"
    _, dim, flat = z_naming([c for c in header if c.startswith("z_")], path)
    sql, params = store_sql(con, model_name=model_name, experiment=experiment, dim=dim, nuisance=None, snips=snips)
    rows = con.sql(sql, params=params).pl()
    existing = pl.read_csv(path, separator=separator, infer_schema=False, glob=False)
    if _written_wide(existing, list(flat)):  # float64 digits, as pandas writes float32 values upcast: the same here
        rows = rows.with_columns(pl.col(pl.Float32).cast(pl.Float64))
    index_columns = next((i for i, name in enumerate(header) if not INDEX_HEADER.match(name)), len(header))
    columns = {}
    for i, name in enumerate(header):
        source = flat.get(name, name)
        if i < index_columns:  # 0, 1, 2, … as pandas wrote them: go on from the last
            last = existing.to_series(i).cast(pl.Int64, strict=False).max()
            first = 0 if last is None else int(last) + 1
            columns[f"c{i}"] = pl.int_range(first, first + rows.height, eager=True)
        elif source in rows.columns:
            columns[f"c{i}"] = rows[source]
        else:  # a column of the file the lake has no value for
            columns[f"c{i}"] = pl.repeat(None, rows.height, dtype=pl.String, eager=True)
    text = pl.DataFrame(columns).write_csv(include_header=False, separator=separator, line_terminator=newline)
    joint = b"" if not original or original.endswith(b"\n") else newline.encode()
    return original + joint + text.encode(), rows.height
