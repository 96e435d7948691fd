"""`morphlake neighbours`: the snips nearest one snip by cosine similarity of z_mu, with their df02 metadata.

The answer of the README's df03 query (df03 self-join, `array_cosine_similarity` on `z_mu`), computed on the
model's embeddings Parquet alone: one scan of the z_mu columns of df02's snips, a top-k, then the metadata of
the k rows (benchmarks/neighbours.py measures it at 1M snips against that query).
"""

from __future__ import annotations

import duckdb

from morphlake.errors import MorphlakeError
from morphlake.lake.layout import Lake
from morphlake.report.lakedb import connect, model_view, require_model, views, z_mu_columns

# df02 column -> its name in the table (short: the table fits a terminal; embryo_id is in snip_id)
METADATA = {"short_pert_name": "perturbation", "predicted_stage_hpf": "stage_hpf", "use_embryo_flag": "usable"}


def query_vector(con: duckdb.DuckDBPyConnection, snip_id: str, zs: list[str], model_name: str) -> list[float]:
    row = con.execute(f"select {', '.join(zs)} from model_embeddings where snip_id = ?", [snip_id]).fetchone()
    if row is None:
        similar = con.execute(
            "select snip_id from model_embeddings order by jaro_winkler_similarity(snip_id, ?) desc limit 3", [snip_id]
        ).fetchall()
        raise MorphlakeError(
            f"snip {snip_id} has no embedding of model {model_name}",
            f"check the snip id (closest: {', '.join(r[0] for r in similar)}), or embed it first",
        )
    if any(v is None for v in row):
        raise MorphlakeError(f"snip {snip_id} has null z_mu values", "re-embed it with `morphlake embed`")
    return list(row)


def neighbours_sql(zs: list[str], vector: list[float], *, k: int, in_df02: bool) -> str:
    """Cosine similarity of every other embedded snip (of df02, as df03 has them) to `vector`, top k."""
    dim = len(zs)
    array = f"[{', '.join(repr(float(v)) for v in vector)}]::FLOAT[{dim}]"
    keep = "semi join df02 d on e.snip_id = d.snip_id and e.experiment_date = d.experiment_date" if in_df02 else ""
    return f"""
        select e.snip_id, e.experiment_date, e.source,
               array_cosine_similarity(list_value({", ".join(f"e.{z}" for z in zs)})::FLOAT[{dim}], {array})
                   as similarity
        from model_embeddings e {keep}
        where e.snip_id <> $snip
        order by similarity desc, e.snip_id
        limit {int(k)}
    """


def nearest(lake: Lake, snip_id: str, *, model_name: str, k: int = 10) -> duckdb.DuckDBPyRelation:
    """The k snips nearest `snip_id` (cosine of z_mu), most similar first, with rank and df02 metadata."""
    require_model(lake, model_name)
    con = connect(lake)
    model_view(con, lake, model_name)
    zs = z_mu_columns(con, "model_embeddings")
    vector = query_vector(con, snip_id, zs, model_name)
    have_df02 = "df02" in views(con)
    con.execute(f"create temp table top as {neighbours_sql(zs, vector, k=k, in_df02=have_df02)}", {"snip": snip_id})
    if have_df02:
        present = {r[0] for r in con.execute("describe df02").fetchall()}
        extra = ", ".join(f"d.{c} as {name}" for c, name in METADATA.items() if c in present)
        join = "left join df02 d on t.snip_id = d.snip_id and t.experiment_date = d.experiment_date"
    else:
        extra, join = "", ""
    columns = "row_number() over (order by t.similarity desc, t.snip_id) as rank, t.snip_id, "
    columns += "round(t.similarity, 6) as similarity, t.experiment_date" + (f", {extra}" if extra else "")
    return con.sql(f"select {columns}, t.source from top t {join} order by rank")


__all__ = ["nearest", "neighbours_sql"]
