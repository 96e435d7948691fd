"""Load the encoder `embed` runs: the given file, or its fp16/int8 copy cached in the lake's models/ folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from morphlake.embed import Encoder
from morphlake.embed.precision import PRECISIONS, cpu_int8_support, derive_encoder, drift
from morphlake.embed.reader import SnipRef, decode_chunk
from morphlake.ingest.naming import check_segment
from morphlake.errors import MorphlakeError
from morphlake.lake.layout import Lake

log = logging.getLogger("morphlake")
CALIBRATION_SNIPS = 128
MIN_COSINE = 0.99  # a reduced-precision copy whose z_mu points elsewhere than fp32's by more is refused


@dataclass
class LoadedEncoder:
    """The encoder `embed` runs, the file the user passed, and how a derived copy verified on this machine."""

    run: Encoder
    given: Encoder
    verification: dict | None = None


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


def load_encoder(lake: Lake, model: Path, *, device: str, threads: int, precision: str,
                 min_cosine: float = MIN_COSINE) -> LoadedEncoder:
    """The encoder to run. fp16/int8 copies are made once and reused, so every run of the lake embeds with
    the same copy (int8 calibrates on the ledger's first snips), and each run first checks the copy against
    the fp32 encoder on this machine: kernels differ between CPUs (int8 without VNNI can saturate)."""
    if precision not in PRECISIONS:
        raise MorphlakeError(f"unknown precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    source = Encoder(model, device=device, threads=threads)
    if precision == "fp32" or precision == source.info.precision:
        return LoadedEncoder(source, source)
    if source.info.precision != "fp32":
        raise MorphlakeError(f"{model} is already a {source.info.precision} encoder; it cannot be made {precision}",
                             "pass the fp32 encoder with --precision, or this file without it")
    check_segment("model name", source.info.model_name)  # it names a folder under <lake>/models/
    path = derived_path(lake, source, precision)
    batch = _calibration_batch(lake, precision)
    if not path.is_file():
        note = f"{batch.n} ledger snips, {batch.refs[0].snip_id} .. {batch.refs[-1].snip_id}"
        log.info("making the %s copy of %s at %s", precision, source.info.model_name, lake.relative(path))
        derive_encoder(source.path, precision, path, batch.pixels[: batch.n] if precision == "int8" else None, note)
    derived = Encoder(path, device=device, threads=threads)
    if derived.info.source_sha256 != source.info.sha256:
        raise MorphlakeError(f"{path} was not derived from {model}", f"delete {path} and re-run")
    return LoadedEncoder(derived, source, verify(derived, source, batch, lake=lake, min_cosine=min_cosine))


def _calibration_batch(lake: Lake, precision: str):
    refs = calibration_snips(lake)
    batch = decode_chunk(refs, max(1, len(refs)))
    if not batch.n:
        raise MorphlakeError(f"no readable ledger snip to calibrate and check a {precision} encoder on",
                             "run `morphlake ingest` with readable snips first, or use --precision fp32")
    return batch


def verify(derived: Encoder, source: Encoder, batch, *, lake: Lake, min_cosine: float) -> dict:
    """Compare the copy with the fp32 encoder on the calibration snips; refuse it below `min_cosine`."""
    pixels = batch.pixels[: batch.n]
    worst_abs, worst_cos = drift(source.run(pixels)[0], derived.run(pixels)[0])
    figures = {"snips": batch.n, "min_cosine": round(worst_cos, 6), "max_abs_dz": round(worst_abs, 6),
               "bound_min_cosine": min_cosine, "provider": derived.provider, "cpu_int8": cpu_int8_support(),
               "recipe": derived.info.metadata.get("recipe", "")}
    log.info("%s copy checked against fp32 on %d ledger snips on %s (%s): smallest cosine %.4f, largest |dz| %.3g",
             derived.info.precision, batch.n, derived.provider, figures["cpu_int8"], worst_cos, worst_abs)
    if not worst_cos >= min_cosine:  # NaN fails too
        raise MorphlakeError(
            f"the {derived.info.precision} copy {lake.relative(derived.path)} drifts from the fp32 encoder on this "
            f"machine: smallest cosine {worst_cos:.4f} (largest |dz| {worst_abs:.3g}) on {batch.n} ledger snips, "
            f"below the bound {min_cosine} (CPU: {figures['cpu_int8']})",
            "embed without --precision (fp32, legacy-faithful); or --decode reduced alone for speed; "
            "or delete the copy to remake it; or accept the drift with a lower --min-cosine")
    return figures
