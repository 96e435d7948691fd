"""The ledger rows whose image can be read: the snips `embed` may use (morphlake.ingest.ledger marks the others)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from morphlake.ingest.ledger import IMAGE_GONE
from morphlake.lake.arrays import numeric_array


def available(ledger: pa.Table) -> pa.Table:
    """The rows whose image_status is null (readable at the last ingest); without compute on Python values, which
    would load pandas on the embed path (morphlake.lake.arrays)."""
    if "image_status" not in ledger.column_names or ledger["image_status"].null_count == ledger.num_rows:
        return ledger
    statuses = ledger["image_status"].to_pylist()
    keep = np.fromiter((status not in IMAGE_GONE for status in statuses), bool, len(statuses))
    return ledger.take(numeric_array(np.flatnonzero(keep)))
