"""The decode and encode stages on columnar batches (dicts of numpy arrays), for engines that move batches
between processes (Ray Data); they call the same decode_chunk and encoder run as embed_snips."""

from __future__ import annotations

import numpy as np

from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH
from morphlake.embed.gpu_decode import GpuDecoder, PreparedBatch, hand_to_gpu, prepare_chunk
from morphlake.embed.model import Encoder
from morphlake.embed.reader import DecodedBatch, SnipRef, decode_chunk
from morphlake.embed.runner import EmbeddedBatch, embed_decoded, embed_prepared

REF_COLUMNS = ("snip_id", "experiment_date", "path")


def _refs(batch: dict[str, np.ndarray]) -> list[SnipRef]:
    return [SnipRef(str(s), str(e), str(p)) for s, e, p in zip(*(batch[c] for c in REF_COLUMNS))]


def decode_columns(batch: dict[str, np.ndarray], *, reduced: bool = False, gpu: bool = False) -> dict[str, np.ndarray]:
    """snip_id, experiment_date, path -> the same plus fingerprint, error ("" when it decoded), pixels uint8
    [n, 1, 288, 128] (zeros where it did not) and decode_s (the batch's decode seconds, shared over its rows).
    gpu (--decode gpu): read and checked only, as prepare_chunk does; two more columns, jpeg (the encoded grey JPEG
    the GPU decodes, b"" where the row's pixels are decoded already) and jpeg_size ((height, width), or (0, 0))."""
    refs = _refs(batch)
    decoded = prepare_chunk(refs, len(refs)) if gpu else decode_chunk(refs, len(refs), reduced)
    ok = {id(r): i for i, r in enumerate(decoded.refs)}  # by identity: decode_chunk keeps the ref objects
    errors = {id(r): reason for r, reason in decoded.failures}
    pixels = np.zeros((len(refs), 1, INPUT_HEIGHT, INPUT_WIDTH), np.uint8)
    fingerprints, jpegs = [], []
    for row, ref in enumerate(refs):
        index = ok.get(id(ref))
        if index is not None:
            pixels[row] = decoded.pixels[index]
        fingerprints.append("" if index is None else decoded.fingerprints[index])
        jpegs.append(decoded.jpegs.get(index, b"") if isinstance(decoded, PreparedBatch) and index is not None else b"")
    columns = {
        **{c: np.asarray(batch[c], dtype=object) for c in REF_COLUMNS},
        "fingerprint": np.array(fingerprints, dtype=object),
        "error": np.array([errors.get(id(r), "") for r in refs], dtype=object),
        "pixels": pixels,
        "decode_s": np.full(len(refs), decoded.decode_s / max(1, len(refs))),
    }
    if isinstance(decoded, PreparedBatch):
        columns["jpeg"] = np.array(jpegs, dtype=object)
        columns["jpeg_size"] = np.array([decoded.jpeg_size if j else (0, 0) for j in jpegs], np.int64).reshape(-1, 2)
    return columns


def encode_columns(
    encoder: Encoder, batch: dict[str, np.ndarray], *, batch_size: int, gpu_decoder: GpuDecoder | None = None
) -> dict[str, np.ndarray]:
    """decode_columns' output -> ref columns, fingerprint, error, z_mu and z_logvar [n, D] (zeros for rows that
    did not decode), decode_s and infer_s. The snips that decoded run as one batch padded to `batch_size`,
    as embed_snips runs them, so each snip's embedding is the local engine's, value for value. With `gpu_decoder`
    the rows' JPEGs are decoded on its device first (a row whose JPEG fails there and on the CPU gets its error)."""
    refs = _refs(batch)
    row_of = {id(ref): row for row, ref in enumerate(refs)}  # by identity: the batches keep the ref objects
    error = np.array(batch["error"], dtype=object)
    good = np.flatnonzero(error == "")
    dim = encoder.info.latent_dim
    z_mu, z_logvar = np.zeros((len(refs), dim), np.float32), np.zeros((len(refs), dim), np.float32)
    infer_s = 0.0
    for start in range(0, len(good), batch_size):  # a batch longer than batch_size runs in several
        rows = good[start : start + batch_size]
        pixels = np.zeros((batch_size, 1, INPUT_HEIGHT, INPUT_WIDTH), np.uint8)
        pixels[: len(rows)] = batch["pixels"][rows]
        if gpu_decoder is None:
            done = embed_decoded(DecodedBatch([refs[i] for i in rows], [], pixels), encoder)
        else:
            prepared = PreparedBatch([refs[i] for i in rows], [""] * len(rows), pixels)
            jpegs = {
                k: (batch["jpeg"][i], tuple(batch["jpeg_size"][i])) for k, i in enumerate(rows) if batch["jpeg"][i]
            }
            hand_to_gpu(prepared, jpegs)  # rows of several decode blocks: one size to the GPU, the others here
            done = embed_prepared(prepared, encoder, gpu_decoder)
            for ref, reason in done.failures:
                error[row_of[id(ref)]] = reason
            rows = np.array([row_of[id(ref)] for ref in done.refs], np.int64)
        z_mu[rows], z_logvar[rows], infer_s = done.z_mu, done.z_logvar, infer_s + done.infer_s
    return {
        **{c: batch[c] for c in (*REF_COLUMNS, "fingerprint", "decode_s")},
        "error": error,
        "z_mu": z_mu,
        "z_logvar": z_logvar,
        "infer_s": np.full(len(refs), infer_s / max(1, len(refs))),
    }


def embedded_batch(columns: dict[str, np.ndarray], *, waited: float = 0.0) -> EmbeddedBatch:
    """encode_columns' output as the EmbeddedBatch that embed_snips yields (failures listed apart)."""
    refs, errors = _refs(columns), columns["error"]
    good = np.flatnonzero(errors == "")
    return EmbeddedBatch(
        [refs[i] for i in good],
        [str(columns["fingerprint"][i]) for i in good],
        np.asarray(columns["z_mu"][good], np.float32),
        z_logvar=np.asarray(columns["z_logvar"][good], np.float32),
        failures=[(refs[i], str(errors[i])) for i in np.flatnonzero(errors != "")],
        decode_s=float(np.sum(columns["decode_s"])),
        wait_s=waited,
        infer_s=float(np.sum(columns["infer_s"])),
    )
