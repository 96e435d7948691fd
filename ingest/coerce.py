"""Type all-string columns: declared types for known columns, inference for the rest."""

from __future__ import annotations

from typing import TypeAlias

import polars as pl
import pyarrow as pa

# A Polars dtype as code names it: the class (pl.String) or an instance (pl.Datetime("us")).
DType: TypeAlias = "pl.DataType | type[pl.DataType]"

TRUE_TOKENS = ["true", "t", "yes", "y", "1", "1.0"]
FALSE_TOKENS = ["false", "f", "no", "n", "0", "0.0"]
_STRING_SUFFIXES = ("_id", "_date", "_name", "_path")


def _as_bool(col: str) -> pl.Expr:
    lowered = pl.col(col).str.to_lowercase()
    return (
        pl.when(lowered.is_in(TRUE_TOKENS))
        .then(True)
        .when(lowered.is_in(FALSE_TOKENS))
        .then(False)
        .otherwise(None)
        .alias(col)
    )


def _as_int(col: str) -> pl.Expr:
    as_float = pl.col(col).cast(pl.Float64, strict=False)
    return pl.when(as_float == as_float.round(0)).then(as_float.cast(pl.Int64, strict=False)).alias(col)


def converter(dtype: DType, col: str) -> pl.Expr:
    """Expression turning String column col into dtype; unparsable values become null."""
    if dtype == pl.Boolean:
        return _as_bool(col)
    if dtype == pl.Int64:
        return _as_int(col)
    if dtype == pl.Float64:
        return pl.col(col).cast(pl.Float64, strict=False).alias(col)
    return pl.col(col).alias(col)


def infer_dtype(series: pl.Series) -> DType:
    """Narrowest of Boolean (for *_flag), Int64, Float64, String that parses every non-null value."""
    name = series.name
    values = series.drop_nulls()
    if name.endswith(_STRING_SUFFIXES) or values.len() == 0:
        return pl.String
    frame = values.to_frame()
    candidates = ([pl.Boolean] if name.endswith("_flag") or name.startswith("is_") else []) + [pl.Int64, pl.Float64]
    for dtype in candidates:
        if dtype == pl.Int64 and not values.str.contains(r"^[+-]?\d+$").all():
            continue  # "1800.0" stays a float column
        if frame.select(converter(dtype, name).is_null().any()).item() is False:
            return dtype
    return pl.String


def coerce(frame: pl.DataFrame, declared: dict[str, DType]) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Cast every column; returns the typed frame and, per column, a mask of unparsable cells."""
    dtypes = {c: declared.get(c) or infer_dtype(frame[c]) for c in frame.columns}
    typed = frame.select(converter(dtypes[c], c) for c in frame.columns)
    bad = {}
    for c in frame.columns:
        mask = frame[c].is_not_null() & typed[c].is_null()
        if mask.any():
            bad[c] = mask
    return typed, bad


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """Polars -> Arrow with plain `string` columns (Polars gives large_string; readers merge partitions by type)."""
    table = frame.to_arrow()
    schema = pa.schema(
        [
            f.with_type(pa.string()) if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type) else f
            for f in table.schema
        ]
    )
    return table.cast(schema)
