"""Arrow tables as Polars frames, typed: `pl.from_arrow` is declared to return `DataFrame | Series` for any input."""

from __future__ import annotations

import polars as pl
import pyarrow as pa


def polars_frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """`pl.from_arrow` of a table or record batch, which is always a DataFrame."""
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"expected an Arrow table or record batch, got {type(data).__name__}")
    return frame
