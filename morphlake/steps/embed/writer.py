"""The embed writer: embedded rows collected per experiment, each partition merged and staged once."""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict

import numpy as np
import pyarrow as pa

from morphlake.common.zcolumns import z_columns
from morphlake.embed import EmbeddedBatch, Encoder
from morphlake.lake.arrays import numeric_array, string_array
from morphlake.lake.embeddings_table import merge, read_partition
from morphlake.lake.layout import Lake
from morphlake.lake.publish import Transaction
from morphlake.steps.embedding_rows import Provenance, embedding_rows

log = logging.getLogger("morphlake")


class PartitionWriter:
    """Collects embedded rows per experiment and stages each partition once all its snips are in.

    The main thread calls `add` between batches while the workers decode, so it only appends the batch's ids
    and rows; each partition's table is built once, at its flush, column by column from numpy buffers (no
    `pa.array`: see morphlake.lake.arrays)."""

    def __init__(
        self,
        txn: Transaction,
        lake: Lake,
        encoder: Encoder,
        *,
        run_id: str,
        expected: dict[str, int],
        options: str | None = None,
    ):
        self.txn, self.lake, self.info, self.run_id, self.options = txn, lake, encoder.info, run_id, options
        self.remaining = dict(expected)
        self.parts: dict[str, list[tuple[list[str], list[str], np.ndarray]]] = defaultdict(list)
        self.rows = 0  # rows staged
        self.pending = 0  # rows collected, not yet staged

    def add(self, batch: EmbeddedBatch) -> None:
        for ref, _ in batch.failures:
            self._done(ref.experiment_date, 1)
        if not batch.refs:
            return
        z = np.concatenate([batch.z_mu, batch.z_logvar], axis=1)
        start = 0
        for exp, refs in itertools.groupby(batch.refs, key=lambda r: r.experiment_date):
            ids = [r.snip_id for r in refs]
            stop = start + len(ids)
            self.parts[exp].append((ids, batch.fingerprints[start:stop], z[start:stop]))
            self.pending += len(ids)
            start = stop
            self._done(exp, len(ids))

    def _table(self, exp: str, parts: list[tuple[list[str], list[str], np.ndarray]]) -> pa.Table:
        info, dim = self.info, self.info.latent_dim
        n = sum(len(ids) for ids, _, _ in parts)
        columns = {
            "snip_id": string_array([s for ids, _, _ in parts for s in ids]),
            "experiment_date": string_array([exp] * n),
            "image_fingerprint": string_array([f for _, fps, _ in parts for f in fps]),
        }
        z = np.asfortranarray(np.concatenate([rows for _, _, rows in parts]), dtype=np.float32)
        for j, name in enumerate(z_columns(dim)):
            columns[name] = numeric_array(z[:, j])
        provenance = Provenance(
            model_name=info.model_name,
            source="onnx",
            run_id=self.run_id,
            encoder_weights=info.weights,
            model_sha256=info.source_sha256,
            embed_options=self.options,
        )
        return embedding_rows(pa.Table.from_arrays(list(columns.values()), names=list(columns)), provenance, dim=dim)

    def _done(self, exp: str, count: int) -> None:
        self.remaining[exp] -= count
        if self.remaining[exp] == 0:
            self.flush(exp)

    def flush(self, exp: str) -> None:
        parts = self.parts.pop(exp, [])
        if not parts:
            return
        new = self._table(exp, parts)
        where = f"embeddings/model_name={self.info.model_name}/experiment_date={exp}"
        merged = merge(read_partition(self.lake, self.info.model_name, exp), new, new["snip_id"], where=where)
        self.txn.stage(
            "embeddings",
            {"model_name": self.info.model_name, "experiment_date": exp},
            merged,
            expected_rows=merged.num_rows,
        )
        self.rows += new.num_rows
        self.pending -= new.num_rows
