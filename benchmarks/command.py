"""The whole `morphlake embed` command against the in-process pipeline and the legacy script, on the same snips.

Run from the repository root:  .venv/bin/python -m benchmarks.command [--snips 2048] [--rounds 3]

A data root holds `--snips` noisy brightfield snips (benchmarks.common.brightfield_snip) in experiments of
`--per-experiment`, the last `--png-experiments` of them PNGs, the rest JPEGs (the lab's mix); a lake is ingested
from it once. Then, in interleaved rounds on those snips:

- in this process: one core's decode and inference seconds per image and the shared-core bound they imply,
  and the pipeline (`embed_snips`, what the command runs) legacy-faithful, `--decode reduced`, and reduced + int8;
- as whole commands, each in its own process on a fresh copy of the ingested lake: `morphlake embed`
  (start-up, encoder load, plan, embed loop, publish), with `--decode reduced`, and with `--decode reduced
  --precision int8` (the int8 copy made once beforehand, as a lake keeps it); and the legacy script
  (benchmarks.legacy_embed_cli: PyTorch, pandas, DataLoader, one CSV per experiment).

Printed: medians; the command's embed loop (its run record's img/s) against the pipeline's img/s; each whole
command's wall time against the legacy script's; where the command's wall time goes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import Rounds, one_core_seconds, peak_of, seconds, table
from benchmarks.legacy_root import write_snip_root
from morphlake import DEFAULT_MODEL_NAME
from morphlake.embed.architecture import EncoderSpec
from morphlake.embed.build import demo_encoder_weights, write_demo_encoder
from morphlake.embed.model import Encoder
from morphlake.embed.reader import SnipRef
from morphlake.embed.runner import default_workers, embed_snips
from morphlake.lake.layout import Lake

SEED = 0
COMMANDS = {  # name -> extra `morphlake embed` arguments
    "morphlake embed": [],
    "morphlake embed --decode reduced": ["--decode", "reduced"],
    "morphlake embed --decode reduced --precision int8": ["--decode", "reduced", "--precision", "int8"],
}


def ledger_refs(lake: Path) -> list[SnipRef]:
    """Every ledger snip, experiment by experiment, as `morphlake embed` plans them."""
    layout, refs = Lake(lake), []
    for exp in layout.partition_values("snips"):
        ledger = pq.read_table(layout.partition_file("snips", experiment_date=exp), columns=["snip_id", "path"])
        refs += [SnipRef(s, exp, p) for s, p in zip(ledger["snip_id"].to_pylist(), ledger["path"].to_pylist())]
    return refs


def legacy_weights(path: Path) -> Path:
    """The demo encoder's weights as the legacy script loads them: a plain state dict saved by torch."""
    import torch

    torch.save({k: torch.from_numpy(v.copy()) for k, v in demo_encoder_weights(EncoderSpec(), SEED).items()}, path)
    return path


def run_command(morphlake: str, template: Path, lake: Path, encoder: Path, extra: list[str]) -> dict:
    """`morphlake embed` in its own process on a fresh copy of the ingested lake: wall time and its run record."""
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(template, lake, symlinks=True)
    wall, mib, _ = peak_of([morphlake, "-q", "embed", "--model", str(encoder), "--lake", str(lake), *extra])
    record = json.loads(max((lake / "runs").glob("*-embed-*.json")).read_text())
    return {"wall": wall, "mib": mib, "record": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=2048)
    parser.add_argument("--per-experiment", type=int, default=512)
    parser.add_argument("--pool", type=int, default=2048, help="distinct snips behind the snip ids (hard links)")
    parser.add_argument("--png-experiments", type=int, default=1, help="how many experiments hold PNG snips")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--min-cosine", default="0.99", help="the int8 command's --min-cosine (its check's bound)")
    args = parser.parse_args()
    int8 = "morphlake embed --decode reduced --precision int8"
    commands = {**COMMANDS, int8: [*COMMANDS[int8], "--min-cosine", args.min_cosine]}
    cores, bs = default_workers(), args.batch_size  # the command's own default worker count
    morphlake = str(Path(sys.executable).parent / "morphlake")
    r, records = Rounds(), {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-command-") as tmp:
        folder = Path(tmp)
        root = folder / "root"
        write_snip_root(
            root,
            args.snips,
            per_experiment=args.per_experiment,
            pool=args.pool,
            png_experiments=args.png_experiments,
        )
        encoder = write_demo_encoder(folder / "encoder.onnx", DEFAULT_MODEL_NAME, seed=SEED)
        weights = legacy_weights(folder / "encoder_reformatted.pt")
        template, lake = folder / "ingested", folder / "lake"
        peak_of([morphlake, "-q", "ingest", "--root", root, "--data-root", root, "--lake", template])
        # The int8 copy is made once per lake and kept (calibration included); make it before timing.
        warm = run_command(morphlake, template, lake, encoder, commands[int8])
        shutil.copytree(lake / "models", template / "models")
        int8_path = Path(warm["record"]["embed_options"]["encoder_run"]["path"])
        int8_path = template / "models" / int8_path.relative_to(lake / "models")

        refs = ledger_refs(template)
        n = len(refs)
        one, quant = Encoder(encoder, device="cpu"), Encoder(int8_path, device="cpu")
        pipeline = {  # name -> (encoder, reduced decode)
            "pipeline": (one, False),
            "pipeline --decode reduced": (one, True),
            "pipeline --decode reduced --precision int8": (quant, True),
        }
        one_core_seconds(refs, one, bs)  # warm onnxruntime's session, as every round after it finds it
        for _ in range(args.rounds):
            decode_1, infer_1 = one_core_seconds(refs, one, bs)
            r.add("decode_1", decode_1)
            r.add("infer_1", infer_1)
            bound = r.add("bound", cores / (decode_1 + infer_1))
            for name, (enc, reduced) in pipeline.items():
                embed = lambda: list(embed_snips(refs, enc, bs, workers=cores, reduced=reduced))  # noqa: B023, E731
                rate = r.add(name, n / seconds(embed))
                if name == "pipeline":
                    r.add("pipeline / bound", rate / bound)
            for name, extra in commands.items():
                result = run_command(morphlake, template, lake, encoder, extra)
                assert result["record"]["counts"]["embedded"] == n, result["record"]["counts"]
                records[name].append(result)
                r.add(f"{name} wall", result["wall"])
                loop = r.add(f"{name} loop", result["record"]["counts"]["images_per_s"])
                r.add(f"{name} loop / pipeline", loop / r.values[name.replace("morphlake embed", "pipeline")][-1])
            legacy_out = folder / "legacy-out"
            shutil.rmtree(legacy_out, ignore_errors=True)
            wall, _, _ = peak_of(
                [sys.executable, "-m", "benchmarks.legacy_embed_cli", "--root", root, "--weights", weights]
                + ["--out", legacy_out],
                cwd=Path(__file__).resolve().parent.parent,
            )
            r.add("legacy wall", wall)
            for name in COMMANDS:
                r.add(f"{name} x legacy", wall / r.values[f"{name} wall"][-1])
    report(r, records, args, n, cores)


def report(r: Rounds, records: dict[str, list[dict]], args, n: int, cores: int) -> None:
    print(
        f"command benchmark: {n} noisy snips 576x256 ({args.png_experiments} of {-(-n // args.per_experiment)} "
        f"experiments PNG), batch {args.batch_size}, {cores} cores, demo encoder on the CPU, "
        f"median of {args.rounds} rounds"
    )
    print(
        f"  per image on one core: decode {r.median('decode_1') * 1e3:.2f} ms, "
        f"inference {r.median('infer_1') * 1e3:.2f} ms; shared-core bound {r.median('bound'):.0f} img/s"
    )
    rows = [["shared-core bound", r.median("bound"), r.spread("bound"), ""]]
    names = ("pipeline", "pipeline --decode reduced", "pipeline --decode reduced --precision int8")
    rows += [[name, r.median(name), r.spread(name), ""] for name in names]
    rows[1][3] = f"{r.median('pipeline / bound'):.0%}"
    print(table("in this process", ["", "images/s", "range", "of bound"], rows))
    rows = []
    for name in COMMANDS:
        rows.append(
            [
                name,
                r.median(f"{name} wall"),
                n / r.median(f"{name} wall"),
                r.median(f"{name} x legacy"),
                r.median(f"{name} loop"),
                f"{r.median(f'{name} loop / pipeline'):.2f}",
            ]
        )
    legacy = r.median("legacy wall")
    rows.append(["legacy script (PyTorch, pandas)", legacy, n / legacy, 1.0, "", ""])
    print(
        table(
            "\nwhole commands (own process, fresh lake copy)",
            ["", "wall s", "images/s", "x legacy", "embed loop img/s", "loop / pipeline"],
            rows,
        )
    )
    print("\nwhere the command's wall time goes (seconds, medians; start-up = wall - the run's own elapsed time)")
    parts = ["start-up", "load_model", "plan", "verify_copy", "embed loop", "publish", "other"]
    rows = []
    for name in COMMANDS:
        spent = {p: [] for p in parts}
        for result in records[name]:
            rec, timings = result["record"], result["record"]["timings_s"]
            loop = rec["counts"]["embedded"] / rec["counts"]["images_per_s"]
            known = {"start-up": result["wall"] - rec["elapsed_s"], "embed loop": loop}
            known |= {p: timings.get(p, 0.0) for p in ("load_model", "plan", "verify_copy", "publish")}
            known["other"] = result["wall"] - sum(known.values())
            for p in parts:
                spent[p].append(known[p])
        rows.append([name, *(statistics.median(spent[p]) for p in parts)])
    print(table("", ["", *parts], rows))


if __name__ == "__main__":
    main()
