"""Unit tests: the legacy latent store, both z naming styles, and its validation errors."""

import math

import numpy as np
import pytest

from morphlake.embed.architecture import bio_nuisance_name
from morphlake.ingest.errors import InputError
from morphlake.ingest.latents import list_latent_files, read_latent_file, read_latent_store, z_columns

DIM = 6


def write_store(path, snips, naming="flat", values=None, dim=DIM, nuisance=2):
    names = [
        f"z_{k}_{i:02d}" if naming == "flat" else bio_nuisance_name(k, i, nuisance)
        for k in ("mu", "sigma")
        for i in range(dim)
    ]
    lines = [",".join(["experiment_date", "embryo_id", "snip_id", *names])]
    for n, snip in enumerate(snips):
        vals = values[n] if values is not None else [f"{0.1 * n + j:.6f}" for j in range(2 * dim)]
        lines.append(",".join(["20240626", snip.rsplit("_t", 1)[0], snip, *map(str, vals)]))
    path.write_text("\n".join(lines) + "\n")
    return path


SNIPS = ["20240626_A01_e01_t0000", "20240626_A01_e01_t0001"]


@pytest.mark.parametrize("naming", ["flat", "bio_nuisance"])
def test_both_namings_become_flat(tmp_path, naming):
    path = write_store(tmp_path / "morph_latents_20240626.csv", SNIPS, naming)
    table, style, skipped = read_latent_file(path, "20240626")
    assert style == naming and skipped == []
    assert table.column_names == ["snip_id", "experiment_date", "z_naming", *z_columns(DIM)]
    assert table["z_naming"].to_pylist() == [naming, naming]
    assert np.allclose(table["z_sigma_00"].to_numpy(), [DIM, 0.1 + DIM])


def test_mixed_naming_is_an_error(tmp_path):
    path = write_store(tmp_path / "m.csv", SNIPS)
    text = path.read_text().replace("z_mu_01", "z_mu_n_01", 1)
    path.write_text(text)
    with pytest.raises(InputError, match="mixes flat"):
        read_latent_file(path, "20240626")


def test_wrong_width_is_an_error(tmp_path):
    path = write_store(tmp_path / "m.csv", SNIPS)
    with pytest.raises(InputError, match="has 6 latent dims, the model has 100"):
        read_latent_file(path, "20240626", expected_dim=100)
    lines = path.read_text().splitlines()
    cut = [",".join(line.split(",")[:-1]) for line in lines]  # drop the last z_sigma column
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises(InputError, match="needs 0..5 for both z_mu and z_sigma"):
        read_latent_file(path, "20240626")


def test_non_finite_blank_and_duplicate_rows_are_skipped(tmp_path):
    good = [f"{j}.5" for j in range(2 * DIM)]
    values = [
        good,
        good[:3] + ["nan"] + good[4:],
        good[:1] + [""] + good[2:],
        good[:5] + ["inf"] + good[6:],
        good,
        good,
    ]
    snips = [
        "s_A01_e01_t0000",
        "s_A01_e01_t0001",
        "s_A01_e01_t0002",
        "s_A01_e01_t0003",
        "s_A01_e01_t0004",
        "s_A01_e01_t0004",
    ]
    table, _, skipped = read_latent_file(write_store(tmp_path / "m.csv", snips, values=values), "20240626")
    assert table["snip_id"].to_pylist() == ["s_A01_e01_t0000"]
    reasons = {s.item: s.reason for s in skipped}
    assert "z_mu_03" in reasons["s_A01_e01_t0001"]
    assert "z_mu_01" in reasons["s_A01_e01_t0002"]
    assert "z_mu_05" in reasons["s_A01_e01_t0003"] and "'inf'" in reasons["s_A01_e01_t0003"]
    assert "more than once" in reasons["s_A01_e01_t0004"]
    assert all(math.isfinite(v) for v in table.slice(0, 1).to_pylist()[0].values() if isinstance(v, float))


def test_store_discovery_filters_experiments(tmp_path):
    folder = tmp_path / "analysis" / "latent_embeddings" / "legacy" / "m1"
    folder.mkdir(parents=True)
    write_store(folder / "morph_latents_20240626.csv", SNIPS)
    write_store(folder / "morph_latents_20250101.csv", ["20250101_A01_e01_t0000"])
    assert [e for e, *_ in read_latent_store(tmp_path, "m1")] == ["20240626", "20250101"]
    assert [e for e, *_ in read_latent_store(tmp_path, "m1", ["20250101"])] == ["20250101"]
    assert list(read_latent_store(tmp_path, "other")) == []
    with pytest.raises(InputError, match="model name"):
        list(read_latent_store(tmp_path, "../m1"))


def test_store_discovery_passes_over_a_file_naming_no_experiment(tmp_path):
    """morph_latents_.csv matches the store's glob but names no experiment: left out, not a crash."""
    folder = tmp_path / "analysis" / "latent_embeddings" / "legacy" / "m1"
    folder.mkdir(parents=True)
    write_store(folder / "morph_latents_20240626.csv", SNIPS)
    write_store(folder / "morph_latents_.csv", SNIPS)
    assert list(list_latent_files(tmp_path, "m1")) == ["20240626"]
    assert [e for e, *_ in read_latent_store(tmp_path, "m1")] == ["20240626"]
