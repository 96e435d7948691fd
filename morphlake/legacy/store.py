"""Generated latents in the legacy store's format: morph_latents_<exp>.csv, for the lab's tools that read the store."""

from __future__ import annotations

from pathlib import Path

import duckdb

from morphlake.ingest.csvfile import INDEX_HEADER, read_header
from morphlake.ingest.latents import z_columns, z_naming
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
    con: duckdb.DuckDBPyConnection, *, model_name: str, experiment: str, dim: int, nuisance: int | None
) -> tuple[str, list]:
    """One experiment's embeddings of the model as a store file: experiment_date, embryo_id, snip_id, then every
    z_mu and (where the model has them) z_sigma column, one row per df02 snip with an embedding."""
    where = "e.model_name = ? and e.experiment_date = ?"
    has_sigma = con.sql(
        f"select count(z_sigma_00) from stg_embeddings e where {where}", params=[model_name, experiment]
    ).fetchall()[0][0]
    zs = z_columns(dim) if has_sigma else z_columns(dim)[:dim]
    select = ", ".join(
        ["e.experiment_date, d.embryo_id, e.snip_id"]
        + [f"e.{quote(c)} as {quote(store_name(c, nuisance))}" for c in zs]
    )
    return (
        f"select {select} from stg_embeddings e join stg_df02 d using (snip_id, experiment_date) "
        f"where {where} order by e.snip_id"
    ), [model_name, experiment]
