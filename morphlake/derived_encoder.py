"""Load the encoder `embed` runs: the given file, or its fp16/int8 copy cached in the lake's models/ folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq

from embed import Encoder
from embed.precision import PRECISIONS, derive_encoder
from embed.reader import SnipRef, decode_chunk
from ingest.naming import check_segment
from morphlake.errors import MorphlakeError
from morphlake.layout import Lake

log = logging.getLogger("morphlake")
CALIBRATION_SNIPS = 128


def derived_path(lake: Lake, source: Encoder, precision: str) -> Path:
    return lake.root / "models" / source.info.model_name / f"encoder-{source.info.sha256[:16]}-{precision}.onnx"


def calibration_snips(lake: Lake, count: int = CALIBRATION_SNIPS) -> list[SnipRef]:
    """The first `count` ledger snips in (experiment_date, snip_id) order."""
    refs: list[SnipRef] = []
    for exp in lake.partition_values("snips"):
        ledger = pq.read_table(lake.partition_file("snips", experiment_date=exp), columns=["snip_id", "path"])
        ledger = ledger.sort_by("snip_id")
        refs += [SnipRef(s, exp, p) for s, p in zip(ledger["snip_id"].to_pylist(), ledger["path"].to_pylist())]
        if len(refs) >= count:
            break
    return refs[:count]


def load_encoder(lake: Lake, model: Path, device: str, threads: int, precision: str) -> tuple[Encoder, Encoder]:
    """(encoder to run, the encoder file the user passed). fp16/int8 copies are made once and reused, so
    every run of the lake embeds with the same copy (int8 calibrates on the ledger's first snips)."""
    if precision not in PRECISIONS:
        raise MorphlakeError(f"unknown precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    source = Encoder(model, device=device, threads=threads)
    if precision == "fp32" or precision == source.info.precision:
        return source, source
    if source.info.precision != "fp32":
        raise MorphlakeError(f"{model} is already a {source.info.precision} encoder; it cannot be made {precision}",
                             "pass the fp32 encoder with --precision, or this file without it")
    check_segment("model name", source.info.model_name)  # it names a folder under <lake>/models/
    path = derived_path(lake, source, precision)
    if not path.is_file():
        calibration, note = None, ""
        if precision == "int8":
            refs = calibration_snips(lake)
            batch = decode_chunk(refs, max(1, len(refs)))
            if not batch.n:
                raise MorphlakeError("no readable ledger snip to calibrate an int8 encoder on",
                                     "run `morphlake ingest` with readable snips first, or use --precision fp32")
            calibration = batch.pixels[: batch.n]
            note = f"{batch.n} ledger snips, {batch.refs[0].snip_id} .. {batch.refs[-1].snip_id}"
        log.info("making the %s copy of %s at %s", precision, source.info.model_name, lake.relative(path))
        derive_encoder(source.path, precision, path, calibration, note)
    derived = Encoder(path, device=device, threads=threads)
    if derived.info.source_sha256 != source.info.sha256:
        raise MorphlakeError(f"{path} was not derived from {model}", f"delete {path} and re-run")
    return derived, source

