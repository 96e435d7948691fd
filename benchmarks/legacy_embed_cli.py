"""The lab's legacy embed script as a whole command: df02 -> PyTorch encoder -> morph_latents_<exp>.csv per experiment.

Run:  python -m benchmarks.legacy_embed_cli --root ROOT --weights encoder_reformatted.pt --out FOLDER

What the legacy script does, start to end, so that `benchmarks.command` can time it as one process next to
`morphlake embed`: import PyTorch and pandas, read df02 with `pd.read_csv`, load the state dict with
`torch.load`, then for each experiment embed its snips (benchmarks.legacy_embed: DataLoader with 2 workers,
batch 64, Pillow preprocessing, no torch.no_grad) and write the legacy store's CSV with pandas.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Hard-coded, as in the lab's script (importing morphlake's constants would load its libraries too).
DF02_RELPATH = Path("metadata/combined_metadata_files/embryo_metadata_df02.csv")
SNIP_SUBDIR = Path("training_data/bf_embryo_snips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="a plain state dict (encoder_reformatted.pt)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import pandas as pd
    import torch

    from benchmarks.legacy_embed import legacy_embed
    from morphlake.embed.architecture import EncoderSpec
    from morphlake.embed.torch_reference import reference_module

    module = reference_module(EncoderSpec())
    module.load_state_dict(torch.load(args.weights), strict=False)
    module.eval()
    df02 = pd.read_csv(args.root / DF02_RELPATH)
    args.out.mkdir(parents=True, exist_ok=True)
    for exp, rows in df02.groupby("experiment_date", sort=False):
        folder = args.root / SNIP_SUBDIR / str(exp)
        files = {p.stem: p for p in folder.iterdir()}
        rows = rows[rows["snip_id"].isin(files)]
        mu_logvar = legacy_embed(module, [str(files[s]) for s in rows["snip_id"]], with_logvar=True)
        dim = mu_logvar.shape[1] // 2
        z = pd.DataFrame(
            mu_logvar, columns=[f"z_mu_{j:02d}" for j in range(dim)] + [f"z_sigma_{j:02d}" for j in range(dim)]
        )
        out = pd.concat([rows[["experiment_date", "embryo_id", "snip_id"]].reset_index(drop=True), z], axis=1)
        out.to_csv(args.out / f"morph_latents_{exp}.csv", index=False)


if __name__ == "__main__":
    main()
