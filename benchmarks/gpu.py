"""The GPU check, in one command: CUDA against the CPU provider, the encoder, decoding, and the whole
`morphlake embed --device cuda` against the legacy script, on one GPU host; a smoke mode for CPU-only machines.

On a GPU host, from the repository root (benchmarks/README.md, "The GPU check", says how to install what it needs):
    python -m benchmarks.gpu --out gpu-check            # ~3 min on 16 cores and one GPU
Anywhere (the suite runs it, so it never rots):
    python -m benchmarks.gpu --smoke --out /tmp/gpu-smoke
It writes <out>/gpu.json (every figure) and <out>/gpu.md (the tables). It needs numpy, Pillow, pyarrow, onnx,
onnxruntime(-gpu) and morphlake itself (with click and rich), and PyTorch for the legacy script; no Polars, DuckDB or
dbt, none of which a GPU host may have. The snips are made on the host: noisy brightfield snips (~60 KB JPEGs, one
experiment in four ~110 KB PNGs), a pool of distinct ones behind hard links, as benchmarks.command makes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import peak_of, seconds
from morphlake.common.fingerprint import fingerprint_file
from morphlake.embed.reader import SnipRef, chunks, decode_chunk, ordered_map
from morphlake.steps.embed.options import GPU_DECODE_ON_CPU

MODEL = "gpu_check"
PER_EXPERIMENT = 2500
SEED = 0


@dataclass(frozen=True)
class Plan:
    """How big each part of the check is: the full check on a GPU host, or the smoke run anywhere."""

    device: str  # the encoder's device: cuda, or cpu in the smoke run
    snips: int  # the whole command's snips
    pool: int  # distinct snips behind them (hard links)
    per_experiment: int
    check_snips: int  # snips of the correctness checks
    batches: tuple[int, ...]  # encoder batch sizes measured alone
    encoder_images: int  # images per encoder-alone measurement
    decode_snips: int  # snips decoded per decode measurement
    legacy_snips: int  # snips the legacy script embeds (each way)


FULL = Plan("cuda", 50_000, 2048, PER_EXPERIMENT, 512, (64, 256, 1024), 16_384, 4096, 20_000)
SMOKE = Plan("cpu", 96, 24, 32, 16, (8,), 32, 32, 32)


# The host


def host(device: str) -> dict:
    """GPU, driver, CUDA runtime, onnxruntime and its providers, cores and memory."""
    import onnxruntime as ort

    info = {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "device": device,
    }
    if shutil.which("nvidia-smi"):
        query = "name,memory.total,driver_version"
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True
        )
        info["gpus"] = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
        info["cuda_driver"] = next((p.split()[0] for p in header.split("CUDA Version:")[1:2]), None)
    try:
        import torch

        info["torch"], info["torch_cuda"] = torch.__version__, torch.version.cuda
    except ImportError:
        info["torch"] = None
    return info


# The snips and the lake


def _write_snip(args: tuple[str, int, str]) -> str:
    from morphlake.demo.images import brightfield_snip

    path, index, kind = args
    snip = brightfield_snip(np.random.default_rng(SEED + index), 24 + index % 40, ("wt", "atf6", "tbxta")[index % 3])
    snip.save(path, **({"quality": 92} if kind == "jpg" else {}))
    return path


def make_lake(work: Path, plan: Plan) -> tuple[Path, list[SnipRef]]:
    """A data folder of `plan.snips` snips (hard links to a pool of distinct ones, one experiment in four PNG) and a
    lake holding their ledger only, written with pyarrow as `morphlake ingest` writes it. Returns the lake (the
    template each command run copies) and the snips."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from morphlake.ingest.ledger import LEDGER_SCHEMA
    from morphlake.lake.layout import Lake

    pool, data, lake = work / "pool", work / "data", Lake.at(work / "lake-template")
    pool.mkdir(parents=True)
    jobs = [(str(pool / f"{i:05d}.{kind}"), i, kind) for kind in ("jpg", "png") for i in range(plan.pool)]
    with ProcessPoolExecutor(os.cpu_count()) as processes:
        list(processes.map(_write_snip, jobs, chunksize=16))
    fingerprints = {path: fingerprint_file(path) for path, _, _ in jobs}
    experiments = -(-plan.snips // plan.per_experiment)
    refs = []
    for e in range(experiments):
        exp, kind = f"2025{e:04d}_gpu", "png" if e % 4 == 3 else "jpg"
        folder = data / exp
        folder.mkdir(parents=True)
        rows = []
        for i in range(e * plan.per_experiment, min(plan.snips, (e + 1) * plan.per_experiment)):
            snip_id = f"{exp}_A{1 + i % 12:02d}_e{i // 12 % 100:02d}_t{i % 9973:04d}"
            source = pool / f"{i % plan.pool:05d}.{kind}"
            path = folder / f"{snip_id}.{kind}"
            os.link(source, path)
            size = source.stat().st_size
            rows.append((snip_id, exp, str(path), "PNG" if kind == "png" else "JPEG", size, fingerprints[str(source)]))
            refs.append(SnipRef(snip_id, exp, str(path)))
        columns = dict(zip(["snip_id", "experiment_date", "path", "format", "file_size", "fingerprint"], zip(*rows)))
        n = len(rows)
        table = pa.Table.from_pydict(
            {
                **{k: list(v) for k, v in columns.items()},
                "width": [256] * n,
                "height": [576] * n,
                "mode": ["L"] * n,
                "mtime_ns": [0] * n,
                "image_status": [None] * n,
            },
            schema=LEDGER_SCHEMA,
        )
        target = lake.partition_file("snips", experiment_date=exp)
        target.parent.mkdir(parents=True)
        pq.write_table(table, target)
    return lake.root, refs


def encoders(work: Path, template: Path) -> dict[str, Path]:
    """The demo encoder (the legacy architecture) and its fp16 copy, made as `embed --precision fp16` makes it and
    put where that finds it in the lake template (so each command run pays its check, not its making)."""
    from morphlake.embed.build import write_demo_encoder
    from morphlake.embed.model import file_sha256
    from morphlake.embed.precision import derive_encoder
    from morphlake.lake.layout import Lake

    fp32 = write_demo_encoder(work / "models" / MODEL / "encoder.onnx", MODEL, seed=SEED)
    fp16 = Lake.at(template).models_dir(MODEL) / f"encoder-{file_sha256(fp32)[:16]}-fp16.onnx"
    fp16.parent.mkdir(parents=True)
    fp16.write_bytes(derive_encoder(fp32, "fp16").SerializeToString())
    return {"fp32": fp32, "fp16": fp16}


# Correctness


def correctness(paths: dict[str, Path], refs: list[SnipRef], device: str) -> dict:
    """The device's fp32 against the CPU provider's, and its fp16 copy against its fp32, on the same snips."""
    from morphlake.embed import Encoder
    from morphlake.embed.precision import drift

    pixels = decode_chunk(refs, len(refs)).pixels
    cpu = Encoder(paths["fp32"], device="cpu").run(pixels)[0]
    fp32 = Encoder(paths["fp32"], device=device)
    mu = fp32.run(pixels)[0]
    fp16 = Encoder(paths["fp16"], device=device)
    largest, cosine = drift(cpu, mu)
    relative = float(np.max(np.abs(mu - cpu) / np.maximum(np.abs(cpu), 1e-3)))
    _, half = drift(mu, fp16.run(pixels)[0])
    return {
        "snips": len(refs),
        "provider_fp32": fp32.provider,
        "provider_fp16": fp16.provider,
        "fp32_vs_cpu": {"min_cosine": cosine, "max_abs": largest, "max_relative": relative},
        "fp16_vs_fp32": {"min_cosine": half},
        "targets": {"fp32_min_cosine": 0.99999, "fp32_max_relative": 1e-4, "fp16_min_cosine": 0.9999},
    }


# Speed, part by part


def encoder_alone(paths: dict[str, Path], plan: Plan, pixels: np.ndarray) -> list[dict]:
    """img/s of the encoder alone (decoded pixels already in memory), per precision, batch and IO binding."""
    from morphlake.embed import Encoder

    rows = []
    for precision, path in paths.items():
        encoder = Encoder(path, device=plan.device, threads=0)
        for batch in plan.batches:
            x = np.ascontiguousarray(np.resize(pixels, (batch, *pixels.shape[1:])))
            runs = max(1, plan.encoder_images // batch)
            for bound in (True, False) if encoder.provider == "CUDAExecutionProvider" else (False,):
                run = encoder.run if bound else (lambda p, e=encoder: e.session.run(None, {"image": p}))
                run(x)  # warm-up: kernels chosen, buffers bound
                spent = seconds(lambda r=run, x=x, n=runs: [r(x) for _ in range(n)])
                rows.append(
                    {
                        "precision": precision,
                        "batch": batch,
                        "io_binding": bound,
                        "img_s": runs * batch / spent,
                        "provider": encoder.provider,
                    }
                )
    return rows


def decode_alone(refs: list[SnipRef], *, threads: list[int], reduced: bool) -> list[dict]:
    """img/s of the legacy (or reduced) decode on `threads` threads: where adding threads stops helping."""
    rows = []
    for count in threads:
        work = list(chunks(refs, 64))
        spent = seconds(lambda c=count: list(ordered_map(lambda chunk: decode_chunk(chunk, 64, reduced), work, c)))
        rows.append({"decode": "reduced" if reduced else "legacy", "threads": count, "img_s": len(refs) / spent})
    return rows


def gpu_decode_alone(refs: list[SnipRef], *, device: str, threads: int, slots: int) -> dict:
    """`--decode gpu` alone: the CPU threads read and check, nvImageCodec decodes the JPEGs and the resize graph runs
    on `device` (pixels left there); img/s, and how its pixels differ from the legacy decode's on the same snips."""
    from morphlake.embed.errors import DeviceUnavailable
    from morphlake.embed.gpu_decode import GpuDecoder, prepare_chunk

    try:
        decoder = GpuDecoder(slots=slots, device=device)
    except DeviceUnavailable as exc:
        return {"measured": False, "why": str(exc)}
    work = list(chunks(refs, slots))

    def run() -> list:
        return [decoder.pixels(b) for b in ordered_map(lambda c: prepare_chunk(c, slots), work, threads)]

    run()  # warm-up: nvImageCodec's and the graph's first allocations
    spent = seconds(run)
    sample = work[0]
    fast = decoder.pixels(prepare_chunk(sample, slots))
    fast = fast.numpy() if hasattr(fast, "numpy") else fast
    plain = decode_chunk(sample, slots).pixels
    differ = np.abs(fast.astype(int) - plain.astype(int))
    return {
        "measured": True,
        "device": decoder.device,
        "resize_provider": decoder.provider,
        "threads": threads,
        "slots": slots,
        "img_s": len(refs) / spent,
        "vs_legacy_pixels": {"max_abs": int(differ.max()), "share_differing": float((differ > 0).mean())},
    }


def thread_counts(cores: int) -> list[int]:
    counts = sorted({1, 2, 4, 8, cores // 2, cores, 2 * cores} - {0})
    return [c for c in counts if c <= 2 * cores]


# The whole command, with the GPU watched


@contextmanager
def gpu_watch(enabled: bool):
    """Samples of GPU utilisation (%) and memory (MiB) every 100 ms while the block runs (nvidia-smi)."""
    samples: list[tuple[float, float]] = []
    if not (enabled and shutil.which("nvidia-smi")):
        yield samples
        return
    proc = subprocess.Popen(
        ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "100"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def read() -> None:
        for line in proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.replace(".", "").isdigit() for p in parts):
                samples.append((float(parts[0]), float(parts[1])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield samples
    finally:
        proc.terminate()
        proc.wait()
        reader.join(timeout=2)


def whole_command(template: Path, work: Path, encoder: Path, plan: Plan, extra: list[str]) -> dict:
    """`morphlake embed` in its own process on a fresh copy of the ledger-only lake: wall time, peak host memory, the
    run record's provider, img/s and timings, and the GPU's busy share and peak memory while it ran."""
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(template, lake)
    args = ["-m", "morphlake.cli", "-q", "embed", "--model", encoder, "--lake", lake, "--device", plan.device, *extra]
    with gpu_watch(plan.device == "cuda") as samples:
        wall, mib, _ = peak_of([sys.executable, *args])
    record = json.loads(max((lake / "runs").glob("*-embed-*.json")).read_text())
    busy = [u for u, _ in samples]
    return {
        "options": " ".join(extra) or "legacy-faithful",
        "wall_s": wall,
        "img_s": plan.snips / wall,
        "loop_img_s": record["counts"].get("images_per_s"),
        "provider": record["provider"]["used"],
        "engine": record["engine"],
        "timings_s": record["timings_s"],
        "peak_host_mib": mib,
        "gpu_busy_share": (sum(busy) / len(busy) / 100) if busy else None,
        "gpu_peak_mib": max((m for _, m in samples), default=None),
    }


# The legacy script


def legacy(refs: list[SnipRef], *, device: str, workers: int) -> dict:
    """The lab's script on this host: PyTorch eager, DataLoader(num_workers=workers, batch_size=64), on `device`."""
    from benchmarks.legacy_embed import legacy_embed, legacy_encoder
    from morphlake.embed.architecture import EncoderSpec
    from morphlake.embed.build import demo_encoder_weights

    module = legacy_encoder(demo_encoder_weights(EncoderSpec(), SEED), device=device)
    paths = [r.path for r in refs]
    legacy_embed(module, paths[:128], workers=min(workers, 2), device=device)  # warm-up: CUDA context, kernels
    spent = seconds(lambda: legacy_embed(module, paths, workers=workers, device=device))
    return {"workers": workers, "device": device, "snips": len(paths), "img_s": len(paths) / spent}


# The report


def markdown(result: dict) -> str:
    host_info, check = result["host"], result["correctness"]
    lines = [
        f"# GPU check ({result['mode']}, {result['seconds']:.0f} s)",
        "",
        f"Host: {', '.join(host_info.get('gpus', [])) or 'no GPU'}; CUDA (driver) {host_info.get('cuda_driver')}; "
        f"onnxruntime {host_info['onnxruntime']} ({', '.join(host_info['providers'])}); {host_info['cores']} cores, "
        f"{host_info['memory_gib']} GiB; torch {host_info.get('torch')} (CUDA {host_info.get('torch_cuda')}).",
        "",
        "| correctness | figure | target |",
        "|---|---|---|",
        f"| {check['provider_fp32']} fp32 vs the CPU provider: smallest cosine of z_mu | "
        f"{check['fp32_vs_cpu']['min_cosine']:.7f} | ≥ 0.99999 |",
        f"| same, largest relative error | {check['fp32_vs_cpu']['max_relative']:.2e} | ≤ 1e-4 |",
        f"| fp16 copy vs fp32: smallest cosine | {check['fp16_vs_fp32']['min_cosine']:.6f} | ≥ 0.9999 |",
        "",
        "| encoder alone | batch | IO binding | img/s |",
        "|---|---|---|---|",
        *(
            f"| {r['precision']} on {r['provider']} | {r['batch']} | {'on' if r['io_binding'] else 'off'} | "
            f"{r['img_s']:,.0f} |"
            for r in result["encoder"]
        ),
        "",
        "| decode alone | threads | img/s |",
        "|---|---|---|",
        *(f"| {r['decode']} | {r['threads']} | {r['img_s']:,.0f} |" for r in result["decode"]),
        gpu_decode_row(result["gpu_decode"]),
        "",
        f"| whole `morphlake embed` ({result['snips']} snips) | img/s | loop img/s | × legacy (2 workers) | "
        "× legacy (every core) | share of the decode bound | GPU busy | GPU peak MiB | host peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["commands"]:
        busy = f"{run['gpu_busy_share']:.0%}" if run["gpu_busy_share"] is not None else "n/a"
        lines.append(
            f"| {run['options']} on {run['provider']} | {run['img_s']:,.0f} | {run['loop_img_s'] or 0:,.0f} | "
            f"{run['vs_legacy']:.2f}× | {run['vs_legacy_all_cores']:.2f}× | {run['share_of_decode_bound']:.2f} | "
            f"{busy} | {run['gpu_peak_mib'] or 'n/a'} | {run['peak_host_mib']:.0f} |"
        )
    lines += [
        "",
        "| the legacy script | workers | img/s |",
        "|---|---|---|",
        *(f"| PyTorch eager on {r['device']} | {r['workers']} | {r['img_s']:,.0f} |" for r in result["legacy"]),
    ]
    return "\n".join(lines) + "\n"


def gpu_decode_row(gpu: dict) -> str:
    if not gpu["measured"]:
        return f"| gpu (not measured: {gpu['why'].splitlines()[0]}) | | |"
    drift = gpu["vs_legacy_pixels"]
    return (
        f"| gpu: nvImageCodec on {gpu['device']}, resize on {gpu['resize_provider']} (pixels vs legacy: largest "
        f"difference {drift['max_abs']}, {drift['share_differing']:.1%} differ) | {gpu['threads']} | "
        f"{gpu['img_s']:,.0f} |"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu.json and gpu.md")
    parser.add_argument("--smoke", action="store_true", help="a small run on the CPU (the suite's)")
    parser.add_argument("--snips", type=int, default=None, help="snips of the whole command (default 50,000)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.snips:
        plan = Plan(**{**plan.__dict__, "snips": args.snips})
    start = time.perf_counter()
    work = args.work or Path(tempfile_dir())
    try:
        result = run_check(plan, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result.update(mode="smoke" if args.smoke else "full", seconds=time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "gpu.md").write_text(markdown(result))
    print(markdown(result))
    return result


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="morphlake-gpu-check-")


def run_check(plan: Plan, work: Path) -> dict:
    cores = os.cpu_count() or 1
    result = {"host": host(plan.device), "snips": plan.snips}
    template, refs = make_lake(work, plan)
    paths = encoders(work, template)
    sample = refs[:: max(1, len(refs) // plan.check_snips)][: plan.check_snips]
    result["correctness"] = correctness(paths, sample, plan.device)
    pixels = decode_chunk(refs[: plan.batches[0]], plan.batches[0]).pixels
    result["encoder"] = encoder_alone(paths, plan, pixels)
    decode_refs = refs[: plan.decode_snips]
    result["decode"] = decode_alone(decode_refs, threads=thread_counts(cores), reduced=False)
    result["decode"] += decode_alone(decode_refs, threads=[cores], reduced=True)
    if plan.device != "cuda":  # the smoke run: nvImageCodec's CPU backend through the same code
        os.environ[GPU_DECODE_ON_CPU] = "1"
    result["gpu_decode"] = gpu_decode_alone(decode_refs, device=plan.device, threads=cores, slots=plan.batches[-1])
    bound = max(r["img_s"] for r in result["decode"] if r["decode"] == "legacy")
    legacy_refs = refs[: plan.legacy_snips]
    result["legacy"] = [
        legacy(legacy_refs, device=plan.device, workers=2),
        legacy(legacy_refs, device=plan.device, workers=cores),
    ]
    variants = [[], ["--precision", "fp16"], ["--decode", "reduced", "--precision", "fp16"]]
    if result["gpu_decode"]["measured"]:
        variants += [["--decode", "gpu"], ["--decode", "gpu", "--precision", "fp16"]]
    result["commands"] = []
    for extra in variants:
        run = whole_command(template, work, paths["fp32"], plan, extra)
        run["vs_legacy"] = run["img_s"] / result["legacy"][0]["img_s"]
        run["vs_legacy_all_cores"] = run["img_s"] / result["legacy"][1]["img_s"]
        run["share_of_decode_bound"] = (run["loop_img_s"] or run["img_s"]) / bound
        result["commands"].append(run)
    result["decode_bound_img_s"] = bound
    return result


if __name__ == "__main__":
    main()
