"""df02 and training metadata CSVs -> typed Arrow tables, every column kept."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from morphlake.ingest.coerce import DType, coerce, to_arrow
from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError, Skipped
from morphlake.ingest.naming import check_segment, normalise_stem_expr

DF02_COLUMNS: dict[str, DType] = {
    "snip_id": pl.String,
    "embryo_id": pl.String,
    "experiment_date": pl.String,
    "well": pl.String,
    "time_int": pl.Int64,
    "Time Rel (s)": pl.Float64,
    "predicted_stage_hpf": pl.Float64,
    "surface_area_um": pl.Float64,
    "short_pert_name": pl.String,
    "phenotype": pl.String,
    "control_flag": pl.Boolean,
    "temperature": pl.Float64,
    "medium": pl.String,
    "use_embryo_flag": pl.Boolean,
}
# The required columns as they land in the lake (Arrow types of the Parquet files; other columns pass through):
# the one source of stg_df02's empty relation and df03's column contract (dbt_project/macros/schemas.sql).
DF02_SCHEMA: pa.Schema = to_arrow(pl.DataFrame(schema=DF02_COLUMNS)).schema
NOT_NULL = ("snip_id", "embryo_id", "experiment_date")
_DTYPE_WORDS: dict[DType, str] = {
    pl.Int64: "an integer",
    pl.Float64: "a number",
    pl.Boolean: "a flag (true/false, 1/0, yes/no)",
}


def read_metadata_table(
    path: Path, what: str, declared: dict[str, DType], *, not_null: tuple[str, ...]
) -> tuple[pl.DataFrame, list[Skipped]]:
    """Read one metadata CSV: required columns present, typed, unique snip_id; bad rows -> Skipped."""
    raw = read_csv_strings(path, what)
    if "snip_id" in raw.columns:  # stems from file names: drop extensions, `_s0023` -> `_t0023`
        raw = raw.with_columns(normalise_stem_expr("snip_id"))
    missing = [c for c in declared if c not in raw.columns]
    if missing:
        raise InputError(
            f"{what} file {path} lacks required column(s): {', '.join(map(repr, missing))}",
            f"required columns are: {', '.join(declared)}",
        )
    if raw.height == 0:
        raise InputError(f"{what} file {path} has a header but no rows", "re-export the file from its source")
    typed, bad_cells = coerce(raw, declared)
    row = pl.int_range(0, raw.height, eager=True)
    problems: dict[int, list[str]] = {}
    for col, mask in bad_cells.items():
        for i in row.filter(mask).to_list():
            want = _DTYPE_WORDS.get(typed.schema[col], typed.schema[col])
            problems.setdefault(i, []).append(f"column {col!r} has {raw[col][i]!r}, not {want}")
    for col in not_null:
        for i in row.filter(typed[col].is_null()).to_list():
            problems.setdefault(i, []).append(f"column {col!r} is blank")
    counts = typed.group_by("snip_id").len().filter(pl.col("len") > 1)
    if counts.height:
        dup_ids = set(counts["snip_id"].drop_nulls().to_list())
        for i in row.filter(typed["snip_id"].is_in(list(dup_ids))).to_list():
            problems.setdefault(i, []).append("snip_id appears more than once in the file")
    experiments = typed["experiment_date"].to_list() if "experiment_date" in typed.columns else []
    for i, exp in enumerate(experiments):
        if exp is not None:
            try:
                check_segment("experiment_date", exp)
            except InputError as exc:
                problems.setdefault(i, []).append(str(exc).splitlines()[0])
    skipped = [
        Skipped(
            what, str(typed["snip_id"][i] or f"row {i + 1}"), f"{path}, data row {i + 1}", reason="; ".join(reasons)
        )
        for i, reasons in sorted(problems.items())
    ]
    keep = ~pl.Series(range(raw.height)).is_in(list(problems))
    return typed.filter(keep), skipped


def read_df02(path: Path, experiments: list[str] | None = None, *, sort: bool = True) -> tuple[pa.Table, list[Skipped]]:
    """df02 -> (typed table sorted by experiment and snip_id, or in file order with sort=False; skipped rows)."""
    frame, skipped = read_metadata_table(path, "df02", DF02_COLUMNS, not_null=NOT_NULL)
    if experiments:
        known = set(frame["experiment_date"].to_list())
        unknown = [e for e in experiments if e not in known]
        if unknown:
            raise InputError(
                f"experiment(s) not in df02 {path}: {', '.join(unknown)}",
                f"choose from: {', '.join(sorted(known))}",
            )
        frame = frame.filter(pl.col("experiment_date").is_in(experiments))
        skipped = [s for s in skipped if any(s.item.startswith(e) for e in experiments)]
    return to_arrow(frame.sort("experiment_date", "snip_id") if sort else frame), skipped


def read_train(path: Path, train_name: str, *, sort: bool = True) -> tuple[pa.Table, list[Skipped]]:
    """Training metadata CSV -> (typed table with a train_name column, by snip_id or in file order; skipped rows)."""
    check_segment("training set name", train_name)
    frame, skipped = read_metadata_table(
        path, f"train metadata {train_name!r}", {"snip_id": pl.String}, not_null=("snip_id",)
    )
    frame = frame.with_columns(pl.lit(train_name).alias("train_name"))
    return to_arrow(frame.sort("snip_id") if sort else frame), skipped
