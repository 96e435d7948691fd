"""Load the encoder `embed` runs: the given file, or its fp16/int8 copy cached in the lake's models/ folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morphlake.embed import Encoder
from morphlake.embed.model import CUDA
from morphlake.embed.precision import cpu_int8_support, derive_encoder, drift
from morphlake.embed.reader import SnipRef, chunks, decode_chunk, ordered_map
from morphlake.embed.runner import default_workers
from morphlake.errors import MorphlakeError
from morphlake.ingest.naming import check_segment
from morphlake.lake.files import write_atomic
from morphlake.lake.layout import Lake, read_part
from morphlake.lake.snip_ledger import available
from morphlake.steps.embed.options import MIN_COSINE, refuse_int8_on_gpu

log = logging.getLogger("morphlake")
CALIBRATION_SNIPS = 128


@dataclass(frozen=True)
class LoadedEncoder:
    """The encoder `embed` runs and the file the user passed (the same unless --precision made a copy)."""

    run: Encoder
    given: Encoder

    @property
    def derived(self) -> bool:
        return self.run is not self.given


def derived_path(lake: Lake, source: Encoder, precision: str) -> Path:
    return lake.models_dir(source.info.model_name) / f"encoder-{source.info.sha256[:16]}-{precision}.onnx"


def calibration_snips(lake: Lake, count: int = CALIBRATION_SNIPS) -> list[SnipRef]:
    """The first `count` ledger snips whose image can be read, in (experiment_date, snip_id) order."""
    refs: list[SnipRef] = []
    for exp in lake.partition_values("snips"):
        ledger = available(read_part(lake.partition_file("snips", experiment_date=exp))).sort_by("snip_id")
        refs += [SnipRef(s, exp, p) for s, p in zip(ledger["snip_id"].to_pylist(), ledger["path"].to_pylist())]
        if len(refs) >= count:
            break
    return refs[:count]


def load_encoder(lake: Lake, model: Path, *, device: str, threads: int, precision: str) -> LoadedEncoder:
    """The encoder to run. fp16/int8 copies are made once and reused, so every run of the lake embeds with
    the same copy (int8 calibrates on the ledger's first snips); `verify` checks a copy before it embeds."""
    source = Encoder(model, device=device, threads=threads)
    if source.provider == CUDA:
        refuse_int8_on_gpu(precision, why=f"--device {device} opened the encoder on {CUDA}")
    if precision == "fp32" or precision == source.info.precision:
        return LoadedEncoder(source, source)
    if source.info.precision != "fp32":
        raise MorphlakeError(
            f"{model} is already an {source.info.precision} encoder; it cannot be made {precision}",
            "pass the fp32 encoder with --precision, or this file without it",
        )
    check_segment("model name", source.info.model_name)  # it names a folder under <lake>/models/
    path = derived_path(lake, source, precision)
    if not path.is_file():
        batch = _calibration_batch(lake, precision)
        note = f"{batch.n} ledger snips, {batch.refs[0].snip_id} .. {batch.refs[-1].snip_id}"
        log.info("making the %s copy of %s at %s", precision, source.info.model_name, lake.relative(path))
        pixels = batch.pixels[: batch.n] if precision == "int8" else None
        model = derive_encoder(source.path, precision, calibration=pixels, calibration_note=note)
        write_atomic(path, model.SerializeToString())
    derived = Encoder(path, device=device, threads=threads)
    if derived.info.source_sha256 != source.info.sha256:
        raise MorphlakeError(f"{path} was not derived from {model}", f"delete {path} and re-run")
    return LoadedEncoder(derived, source)


def _calibration_batch(lake: Lake, precision: str):
    refs = calibration_snips(lake)
    batch = decode_chunk(refs, max(1, len(refs)))
    if not batch.n:
        raise MorphlakeError(
            f"no readable ledger snip to {'calibrate and ' if precision == 'int8' else ''}check an {precision} copy on",
            "run `morphlake ingest` with readable snips first, or use --precision fp32",
        )
    return batch


VERIFY_SNIPS = 128


def verification_snips(lake: Lake, todo: list[SnipRef], precision: str = "int8") -> tuple[list[SnipRef], bool | None]:
    """Up to VERIFY_SNIPS of the snips this run embeds, for an int8 copy held out from its calibration snips when
    there are such (else the run's own snips, in-sample); and whether they are held out (None: an fp16 copy has no
    calibration)."""
    if precision != "int8":
        return todo[:VERIFY_SNIPS], None
    calibrated = {r.snip_id for r in calibration_snips(lake)}
    held_out = [r for r in todo if r.snip_id not in calibrated][:VERIFY_SNIPS]
    return (held_out, True) if held_out else (todo[:VERIFY_SNIPS], False)


def verify(
    loaded: LoadedEncoder,
    todo: list[SnipRef],
    *,
    lake: Lake,
    min_cosine: float = MIN_COSINE,
    reduced: bool = False,
    workers: int | None = None,
) -> dict:
    """Before a --precision copy embeds anything: compare it with the fp32 encoder, on this machine, on snips
    this run embeds, decoded as the run decodes them (CPU kernels differ: int8 without VNNI can saturate);
    refuse it below `min_cosine`."""
    derived, source = loaded.run, loaded.given
    refs, held_out = verification_snips(lake, todo, derived.info.precision)
    # Every run pays this check, so it uses every core: each thread decodes its share of the snips and runs
    # both encoders on it (one intra-op thread each, as the pipeline runs them). A CUDA encoder runs from one
    # thread only (its IO binding is one buffer).
    workers = (workers or default_workers()) if source.concurrent and derived.concurrent else 1
    size = max(1, -(-len(refs) // workers))

    def compare(share: list[SnipRef]) -> tuple[np.ndarray, np.ndarray] | None:
        batch = decode_chunk(share, size, reduced)
        pixels = batch.pixels[: batch.n]
        return (source.run(pixels)[0], derived.run(pixels)[0]) if batch.n else None

    pairs = [p for p in ordered_map(compare, chunks(refs, size), workers, name="verify") if p]
    if not pairs:
        return {"snips": 0, "note": "no readable snip to check the copy on (the run embeds none either)"}
    worst_abs, worst_cos = drift(np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs]))
    checked = sum(len(a) for a, _ in pairs)
    figures = {
        "snips": checked,
        "held_out_from_calibration": held_out,
        "decode": "reduced" if reduced else "legacy",
        "min_cosine": round(worst_cos, 6),
        "max_abs_dz": round(worst_abs, 6),
        "bound_min_cosine": min_cosine,
        "provider": derived.provider,
        "cpu_int8": cpu_int8_support(),
        "recipe": derived.info.metadata.get("recipe", ""),
    }
    where = f"{checked} snips of this run{' (all among the calibration snips)' if held_out is False else ''}"
    log.info(
        "%s copy checked against fp32 on %s on %s (%s): smallest cosine %.4f, largest |dz| %.3g",
        derived.info.precision,
        where,
        derived.provider,
        figures["cpu_int8"],
        worst_cos,
        worst_abs,
    )
    if not worst_cos >= min_cosine:  # NaN fails too
        raise MorphlakeError(
            f"the {derived.info.precision} copy {lake.relative(derived.path)} drifts from the fp32 encoder on this "
            f"machine: smallest cosine {worst_cos:.4f} (largest |dz| {worst_abs:.3g}) on {where}, "
            f"below the bound {min_cosine} (CPU: {figures['cpu_int8']})",
            "embed without --precision (fp32, legacy-faithful); or --decode reduced alone for speed; "
            "or delete the copy to remake it; or accept the drift with a lower --min-cosine",
        )
    return figures
