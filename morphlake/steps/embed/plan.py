"""What `embed` has to do: the ledger snips of each experiment without a current embedding (lake.currency)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from morphlake.embed import SnipRef
from morphlake.errors import MorphlakeError
from morphlake.lake import currency
from morphlake.lake.arrays import numeric_array
from morphlake.lake.layout import Lake, read_part
from morphlake.lake.snip_ledger import available

log = logging.getLogger("morphlake")


def ledger_experiments(lake: Lake, experiments: list[str] | None) -> list[str]:
    found = lake.partition_values("snips")
    if not found:
        raise MorphlakeError(f"the lake {lake.root} has no snip ledger", "run `morphlake ingest` first")
    if experiments:
        unknown = [e for e in experiments if e not in found]
        if unknown:
            raise MorphlakeError(
                f"experiment(s) not in the snip ledger: {', '.join(unknown)}", f"choose from: {', '.join(found)}"
            )
        return [e for e in found if e in experiments]
    return found


def plan_experiment(
    lake: Lake, experiment: str, model_name: str, *, sha256: str, options: str | None = None
) -> pa.Table:
    """Ledger rows of one experiment that need embedding (of those whose image can be read). Legacy-store rows
    count as current, and ONNX rows of the same model file, embed options and image.

    Only the key columns of the existing partition are read here; the full partition is read again
    when the new rows are merged in, one experiment at a time (memory stays flat as the lake grows).
    """
    ledger = available(read_part(lake.partition_file("snips", experiment_date=experiment)))  # not the vanished
    path = lake.partition_file("embeddings", model_name=model_name, experiment_date=experiment)
    if not path.is_file():
        return ledger
    with pq.ParquetFile(path) as part:
        present = set(part.schema_arrow.names)  # partitions written before embed_options existed lack it
        existing = part.read(columns=[k for k in currency.KEYS if k in present])
    snips = ledger["snip_id"].to_pylist()
    current = currency.current_snips(
        existing, dict(zip(snips, ledger["fingerprint"].to_pylist())), sha256=sha256, options=options
    )
    todo = [i for i, snip in enumerate(snips) if snip not in current]
    return ledger.take(numeric_array(np.array(todo, np.int64)))


def plan_embedding(lake: Lake, info, experiments: list[str] | None, *, value: str | None) -> dict[str, pa.Table]:
    """Experiment -> its ledger rows that need embedding (experiments with none left out)."""
    plans = {}
    for exp in ledger_experiments(lake, experiments):
        todo = plan_experiment(lake, exp, info.model_name, sha256=info.source_sha256, options=value)
        if todo.num_rows:
            plans[exp] = todo
    return plans


def snip_refs(plans: dict[str, pa.Table]) -> Iterator[SnipRef]:
    for exp, todo in plans.items():
        for snip, path in zip(todo["snip_id"].to_pylist(), todo["path"].to_pylist()):
            yield SnipRef(snip, exp, path)
