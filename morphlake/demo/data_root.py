"""`morphlake demo`'s data root: df02, JPEG snips, training metadata, a partial legacy store, the demo encoder."""

from __future__ import annotations

import filecmp
import json
import os
import tempfile
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from morphlake.demo.images import embryo_snip
from morphlake.embed.architecture import EncoderSpec, bio_nuisance_name
from morphlake.embed.build import write_demo_encoder
from morphlake.embed.model import Encoder
from morphlake.embed.reader import decode_snip
from morphlake.errors import MorphlakeError
from morphlake.lake.data_root import DataRoot

MARKER = ".morphlake-demo"
DEMO_EXPERIMENTS = [
    ("20240626", ["wt", "tbxta"], 28.5),
    ("20250612_30hpf_ctrl_atf6", ["ctrl", "atf6"], 30.0),
    ("20250305_24hpf_lmx1b", ["wt", "lmx1b"], 24.0),
]
WELLS = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]
DEMO_TRAIN_NAME = "20241107_demo_train"


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 0
    embryos: int = 4  # per experiment
    timepoints: int = 5  # snips per embryo
    _: KW_ONLY
    experiments: int = 3  # how many of DEMO_EXPERIMENTS (1..3); extra ones are numbered


def _experiments(spec: DemoSpec) -> list[tuple[str, list[str], float]]:
    out = list(DEMO_EXPERIMENTS[: spec.experiments])
    for i in range(len(out), spec.experiments):
        out.append((f"2025{(i % 12) + 1:02d}{(i % 28) + 1:02d}_demo{i:03d}", ["wt", "atf6"], 24.0))
    return out


def _flag_text(value: bool, style: int) -> object:
    """Flags as the real files carry them: bool words, 0/1 or strings, varying by experiment."""
    return [str(value), int(value), "true" if value else "false"][style % 3]


def _df02_rows(spec: DemoSpec, rng: np.random.Generator) -> list[dict]:
    rows = []
    for e_index, (exp, perts, start_hpf) in enumerate(_experiments(spec)):
        for k in range(spec.embryos):
            well = WELLS[(k * 7 + e_index) % len(WELLS)]
            embryo_id = f"{exp}_{well}_e{k + 1:02d}"
            pert = perts[k % len(perts)]
            control = pert in ("wt", "ctrl")
            for t in range(spec.timepoints):
                rel_s = t * 1800.0 + rng.normal(0, 5)
                stage = start_hpf + rel_s / 3600 * (1.0 if control else 0.9)
                usable = not (k == spec.embryos - 1 and t == spec.timepoints - 1 and e_index == 1)
                rows.append(
                    {
                        "snip_id": f"{embryo_id}_t{t:04d}",
                        "embryo_id": embryo_id,
                        "experiment_date": exp,
                        "well": well,
                        "time_int": t,
                        "Time Rel (s)": round(rel_s, 2),
                        "predicted_stage_hpf": round(stage, 3),
                        "surface_area_um": round(float(rng.normal(1.8e5, 1.5e4)), 1),
                        "short_pert_name": pert,
                        "phenotype": "wt" if control else f"{pert}_mutant",
                        "control_flag": _flag_text(control, e_index),
                        "temperature": 28.5,
                        "medium": "E3",
                        "use_embryo_flag": _flag_text(usable, e_index + 1),
                        "length_um": round(float(2500 + 40 * (stage - 24) + rng.normal(0, 30)), 1),
                        "width_um": round(float(rng.normal(480, 20)), 1),
                        "xpos": int(rng.integers(100, 2000)),
                        "ypos": int(rng.integers(100, 2000)),
                        "dead_flag": _flag_text(False, e_index + 2),
                        "sa_outlier_flag": _flag_text(False, e_index),
                        "bubble_flag": False,
                        "focus_flag": False,
                        "frame_flag": False,
                        "no_yolk_flag": False,
                        "master_perturbation": pert,
                        "genotype": "wik" if control else f"{pert}-/-",
                        "chem_perturbation": "None",
                        "microscope": "Keyence" if e_index % 2 else "YX1",
                        "start_age_hpf": start_hpf,
                        "Height (um)": 1800.0,
                        "Width (um)": 800.0,
                    }
                )
    return rows


def _check_root(root: Path) -> None:
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise MorphlakeError(
            f"{root} exists, is not empty and was not made by `morphlake demo`",
            "choose an empty or new folder with --root",
        )


def make_demo_root(root: Path, spec: DemoSpec, model_name: str, *, latent_dim: int = 100) -> dict:
    """Write the demo data root (replacing an earlier demo root there); returns a summary. Written beside it first,
    then moved in file by file: a file that comes out the same is left as it was (its mtime too), so running the
    demo again with the same settings changes nothing that the pipeline reads.

    latent_dim: the demo model's width (the legacy model's 100, or e.g. 16 like the lab's playground model).
    """
    root = Path(root).absolute()
    _check_root(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{root.name}-", dir=root.parent) as fresh:
        summary = _write_demo_root(Path(fresh), spec, model_name, latent_dim=latent_dim)
        _move_in(Path(fresh), root)
    encoder = root / Path(summary.pop("encoder")).relative_to(fresh)
    return {"root": str(root), **summary, "encoder": str(encoder)}


def _move_in(fresh: Path, root: Path) -> None:
    """Make `root` hold exactly the files of `fresh`: identical files kept untouched, the others moved in, files
    `fresh` does not have (an earlier demo's) removed."""
    wanted = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        target = root / rel
        if target.is_file() and filecmp.cmp(fresh / rel, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fresh / rel, target)
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.relative_to(root) not in wanted:
            path.unlink()


def _write_demo_root(root: Path, spec: DemoSpec, model_name: str, *, latent_dim: int) -> dict:
    """Every file of a demo root, written into the new folder `root`; returns the summary."""
    (root / MARKER).write_text("made by `morphlake demo`; safe to delete\n")
    rng = np.random.default_rng(spec.seed)
    dirs = DataRoot.at(root)
    rows = _df02_rows(spec, rng)
    df02 = pl.DataFrame(rows, infer_schema_length=None, strict=False)
    for row in rows:
        path = dirs.snip_dir(row["experiment_date"]) / f"{row['snip_id']}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        embryo_snip(rng, row["predicted_stage_hpf"], row["short_pert_name"]).save(path, quality=92)
    dirs.df02.parent.mkdir(parents=True, exist_ok=True)
    df02.write_csv(dirs.df02)
    train = df02.filter(pl.col("short_pert_name").is_in(["wt", "ctrl"]))
    train_csv = dirs.train_csv(DEMO_TRAIN_NAME)
    train_csv.parent.mkdir(parents=True)
    train.select("snip_id", "embryo_id", "experiment_date", "short_pert_name", "predicted_stage_hpf").write_csv(
        train_csv
    )
    model_dir = dirs.model_dir(model_name)
    encoder_spec = EncoderSpec(latent_dim=latent_dim)
    encoder_path = write_demo_encoder(model_dir / "encoder.onnx", model_name, seed=spec.seed, spec=encoder_spec)
    (model_dir / "model_config.json").write_text(
        json.dumps(
            {
                "name": "SeqVAEConfig",
                "latent_dim": encoder_spec.latent_dim,
                "zn_frac": encoder_spec.zn_frac,
                "input_dim": [1, 288, 128],
                "note": "demo model: the encoder.onnx beside this file has seeded random DEMO weights",
            },
            indent=2,
        )
    )
    covered = _write_latent_store(root, df02, model_name, encoder_path=encoder_path, spec=encoder_spec)
    return {
        "experiments": df02["experiment_date"].unique(maintain_order=True).to_list(),
        "snips": df02.height,
        "latent_store": covered,
        "encoder": str(encoder_path),
    }


def _write_latent_store(
    root: Path, df02: pl.DataFrame, model_name: str, *, encoder_path: Path, spec: EncoderSpec
) -> dict[str, int]:
    """Legacy store for the first two experiments (flat, then bio/nuisance names), made by the demo encoder.

    The second experiment's store misses each embryo's last time point, so `embed` has work to do.
    """
    encoder = Encoder(encoder_path, device="cpu")
    covered = {}
    experiments = df02["experiment_date"].unique(maintain_order=True).to_list()[:2]
    for index, exp in enumerate(experiments):
        rows = df02.filter(pl.col("experiment_date") == exp)
        if index == 1:
            rows = rows.filter(pl.col("time_int") < pl.col("time_int").max())
        if rows.is_empty():  # --timepoints 1: the partly covered experiment has no store file at all
            continue
        folder = DataRoot.at(root).snip_dir(exp)
        pixels = np.stack([decode_snip((folder / f"{s}.jpg").read_bytes()) for s in rows["snip_id"]])[:, None]
        mu, logvar = encoder.run(pixels)
        naming = (
            (lambda kind, i: f"z_{kind}_{i:02d}")
            if index == 0
            else (lambda kind, i: bio_nuisance_name(kind, i, spec.nuisance_dims))
        )
        z = {naming("mu", i): mu[:, i] for i in range(spec.latent_dim)}
        z.update({naming("sigma", i): logvar[:, i] for i in range(spec.latent_dim)})
        table = rows.select("experiment_date", "embryo_id", "snip_id").with_columns(
            **{k: pl.Series(v) for k, v in z.items()}
        )
        path = DataRoot.at(root).store_file(model_name, exp)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.write_csv(path)
        covered[exp] = table.height
    return covered
