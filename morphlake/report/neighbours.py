"""`morphlake neighbours`: the snips nearest one snip by cosine similarity of z_mu, with their df02 metadata.

The answer of the README's df03 query (df03 self-join, `array_cosine_similarity` on `z_mu`): every other
embedded snip that df02 holds, most similar first. Computed on the model's embeddings Parquet alone with one
streaming Polars scan of the z_mu columns and a top-k (benchmarks/neighbours.py measures it at 1M snips
against that query); df02 is read only for the candidates, unless too few of them are in df02.
"""

from __future__ import annotations

from typing import NamedTuple

import duckdb
import polars as pl
import pyarrow as pa

from morphlake.common.sqltext import path_glob
from morphlake.common.zcolumns import flat_z_mu
from morphlake.errors import MorphlakeError
from morphlake.lake.layout import PART_FILE, Lake
from morphlake.report.lakedb import embeddings_glob, has_files, parquet, partition_files, require_model

# df02 column -> its name in the table (short: the table fits a terminal; embryo_id is in snip_id)
METADATA = {"short_pert_name": "perturbation", "predicted_stage_hpf": "stage_hpf", "use_embryo_flag": "usable"}
KEYS = ["snip_id", "experiment_date"]


def closest_ids(glob: str, snip_id: str, count: int = 3) -> list[str]:
    rows = duckdb.execute(
        f"select snip_id from {parquet(glob)} order by jaro_winkler_similarity(snip_id, ?) desc limit {count}",
        [snip_id],
    ).fetchall()
    return [r[0] for r in rows]


def query_vector(scan: pl.LazyFrame, zs: list[str], snip_id: str, *, model_name: str, glob: str) -> list[float]:
    found = scan.filter(pl.col("snip_id") == snip_id).select(zs).head(1).collect()
    if found.height == 0:
        raise MorphlakeError(
            f"snip {snip_id} has no embedding of model {model_name}",
            f"check the snip id (closest: {', '.join(closest_ids(glob, snip_id))}), or embed it first",
        )
    vector = found.row(0)
    if any(v is None for v in vector):
        raise MorphlakeError(f"snip {snip_id} has null z_mu values", "re-embed it with `morphlake embed`")
    if not any(vector):
        raise MorphlakeError(
            f"snip {snip_id} has an all-zero z_mu (model {model_name}): its cosine similarity to any snip is undefined",
            "such rows come from the legacy store (a placeholder?): ask for another snip's neighbours, or remove "
            "the row from the store and embed the snip with `morphlake embed`",
        )
    return list(vector)


def similarities(scan: pl.LazyFrame, zs: list[str], vector: list[float], *, snip_id: str) -> pl.LazyFrame:
    """snip_id, experiment_date, source, similarity (cosine of z_mu with `vector`) of every other snip whose z_mu
    is not all zeros (a cosine with it is undefined: 0/0, which would otherwise rank first as NaN)."""
    norm = sum(v * v for v in vector) ** 0.5
    dot = pl.sum_horizontal([pl.col(z) * (v / norm) for z, v in zip(zs, vector)])
    length = pl.sum_horizontal([pl.col(z) * pl.col(z) for z in zs]).sqrt()
    return (
        scan.filter(pl.col("snip_id") != snip_id)
        .select(*KEYS, "source", (dot / length).alias("similarity"))
        .filter(pl.col("similarity").is_not_nan())
    )


def df02_rows(lake: Lake, ids: list[str]) -> pl.DataFrame:
    """df02's keys and the METADATA columns it has, for these snips."""
    glob = path_glob(lake.table_dir("df02"), f"*/{PART_FILE}")
    con = duckdb.connect()
    present = {r[0] for r in con.execute(f"describe select * from {parquet(glob)}").fetchall()}
    columns = ", ".join([*KEYS, *(f"{c} as {name}" for c, name in METADATA.items() if c in present)])
    con.register("wanted", pa.table({"snip_id": pa.array(ids, pa.string())}))
    return con.sql(f"select {columns} from {parquet(glob)} where snip_id in (select snip_id from wanted)").pl()


class Neighbours(NamedTuple):
    """The nearest snips, and how many embeddings were left out for an all-zero z_mu (no cosine with them)."""

    table: pl.DataFrame
    zero_norm: int


def nearest(lake: Lake, snip_id: str, *, model_name: str, k: int = 10, candidates: int | None = None) -> Neighbours:
    """The k snips of df02 nearest `snip_id` (cosine of z_mu), most similar first, with rank and metadata.
    `candidates` (default 4k + 16): how many of the nearest embeddings are looked up in df02 before all are."""
    require_model(lake, model_name)
    glob = embeddings_glob(lake, model_name)
    files = partition_files(lake, "embeddings", model_name)
    scan = pl.scan_parquet(files, glob=False, hive_partitioning=False, missing_columns="insert", extra_columns="ignore")
    names = scan.collect_schema().names()
    zs = flat_z_mu(names)
    others = similarities(scan, zs, query_vector(scan, zs, snip_id, model_name=model_name, glob=glob), snip_id=snip_id)
    zero_norm = scan.select(pl.all_horizontal([pl.col(z) == 0 for z in zs]).sum())
    if not has_files(lake, "df02"):
        top, zeros = pl.collect_all([others.top_k(k, by="similarity"), zero_norm])  # one scan of the files for both
        return Neighbours(_ranked(top, None, k), zeros.item())
    wanted = candidates or 4 * k + 16  # usually most of them are in df02, which is read for these alone
    top, zeros = pl.collect_all([others.top_k(wanted, by="similarity"), zero_norm])
    meta = df02_rows(lake, top["snip_id"].to_list())
    found = top.join(meta, on=KEYS, how="inner")
    if found.height < k and top.height == wanted:  # many embeddings outside df02: filter them all first
        df02_files = partition_files(lake, "df02")
        keys = pl.scan_parquet(df02_files, glob=False, hive_partitioning=False).select(KEYS)
        top = others.join(keys, on=KEYS, how="semi").top_k(k, by="similarity").collect()
        meta = df02_rows(lake, top["snip_id"].to_list())
        found = top.join(meta, on=KEYS, how="inner")
    return Neighbours(_ranked(found, meta, k), zeros.item())


def _ranked(found: pl.DataFrame, meta: pl.DataFrame | None, k: int) -> pl.DataFrame:
    ordered = found.sort(["similarity", "snip_id"], descending=[True, False]).head(k)
    extra = [c for c in (meta.columns if meta is not None else []) if c not in KEYS]
    return ordered.select(
        pl.int_range(1, ordered.height + 1).alias("rank"),
        "snip_id",
        pl.col("similarity").round(6),
        "experiment_date",
        *extra,
        "source",
    )


__all__ = ["nearest", "Neighbours"]
