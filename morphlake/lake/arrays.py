"""pyarrow arrays from numpy and Python strings without `pa.array`, whose first use imports pandas (0.2 s)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# pa.array, pa.scalar and compute calls given Python values go through pyarrow's pandas shim, which imports
# pandas wherever it is installed: a fifth of a second on every `morphlake embed`, on the thread that feeds
# the encoder. The embed path builds its arrays from buffers instead.


def numeric_array(values: np.ndarray) -> pa.Array:
    """A 1-d numpy array of numbers as an Arrow array of the same type (no nulls)."""
    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "iuf" or not values.dtype.isnative:  # Arrow's bools are bits; Arrow is native-endian
        raise TypeError(f"numeric_array takes native-endian integers or floats, not {values.dtype}")
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def string_array(values: list[str | None]) -> pa.Array:
    """Python strings (None for null) as an Arrow string array."""
    encoded = [b"" if v is None else v.encode() for v in values]
    ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)))
    if len(ends) and ends[-1] >= 2**31:
        raise ValueError("more than 2 GiB of text in one string array")
    offsets = np.concatenate([[0], ends]).astype(np.int32)
    nulls = np.fromiter((v is None for v in values), bool, len(values))
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls.any() else None
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=int(nulls.sum()))
