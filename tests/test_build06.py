"""Functional tests: `morphlake build06` (the legacy one-shot step) and `morphlake compare`."""

import json

import numpy as np
import polars as pl
import pytest

from morphlake import DEFAULT_MODEL_NAME
from morphlake.ingest.naming import normalise_stem

M = DEFAULT_MODEL_NAME
DF03 = "metadata/combined_metadata_files/embryo_metadata_df03.csv"
STORE = f"analysis/latent_embeddings/legacy/{M}"
NO_STORE = "20250305_24hpf_lmx1b"


def snapshot(*folders):
    """Every file under the folders with size and mtime (to prove nothing was written)."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders if f.exists() for p in sorted(f.rglob("*"))
    }


def b06(cli, root, lake, *extra, env=None):
    return cli("build06", "--root", root, "--data-root", root, "--lake", lake, *extra, env=env)


def z_frame(path):
    frame = pl.read_csv(path, infer_schema=False)
    zs = [c for c in frame.columns if c.startswith("z_")]
    return frame.with_columns(pl.col(zs).cast(pl.Float32)), zs


def test_dry_run_writes_nothing_anywhere(cli, root, lake):
    before = snapshot(root)
    result = b06(
        cli,
        root,
        lake,
        "--dry-run",
        "--generate-missing-latents",
        "--train-name",
        "20241107_demo_train",
        "--export-analysis-copies",
    )
    assert result.exit_code == 0, result.output
    assert snapshot(root) == before and not lake.exists()
    out = result.output
    assert "experiments with no latents: 20250305_24hpf_lmx1b" in out
    # every df02 row counts (the legacy grain): the experiment without a store file, and the 2 gaps of a store file
    assert "snips to embed: 8 of 8 df02 rows without latents (0 already embedded in the lake, 0 without" in out
    assert "df02 rows the existing store files lack: 2, generated with the fp32 encoder into df03" in out
    assert "the store files stay as they are (--overwrite appends them)" in out
    assert f"{root / STORE / ('morph_latents_' + NO_STORE + '.csv')}  [new]" in out  # generated into the store
    assert f"lake: {lake} (ingest, embed, build" in out
    assert f"{root / DF03}  [new]" in out and "df03_20240626.csv  [new]" in out
    assert "embryo_metadata_with_embeddings.csv  [new]" in out
    assert "morph_latents_20240626.csv" in out and "files read:" in out


def test_strict_fails_on_missing_latents_and_writes_nothing(cli, root, lake):
    before = snapshot(root)
    result = b06(cli, root, lake)
    assert result.exit_code == 1
    assert "experiment(s) with no latents: 20250305_24hpf_lmx1b" in result.stderr
    assert "--generate-missing-latents" in result.stderr and "--allow-partial" in result.stderr
    assert snapshot(root) == before and not lake.exists()


def test_allow_partial_merges_what_exists(cli, root, lake):
    result = b06(cli, root, lake, "--allow-partial")
    assert result.exit_code == 2, result.output
    manifest = json.loads(next(lake.glob("runs/*-build06-*.partial.json")).read_text())["skipped"]
    reasons = {s["item"]: s["reason"] for s in manifest}
    assert reasons[NO_STORE] == "experiment has no latents in the legacy store"
    store_lacks = [k for k in reasons if k.startswith("20250612_30hpf_ctrl_atf6_")]
    assert len(store_lacks) == 2 and {reasons[k] for k in store_lacks} == {"no latents in the legacy store"}
    df03, zs = z_frame(root / DF03)
    assert NO_STORE not in set(df03["experiment_date"]) and df03.height == 10  # the df02 rows the store has
    assert "WARNING: below 95%" in result.output


def test_generate_fills_missing_store_files_and_keeps_store_values_exactly(cli, root, lake):
    result = b06(cli, root, lake, "--generate-missing-latents")
    assert result.exit_code == 0, result.output  # every df02 row's snip is readable: every row has a latent
    assert "coverage: 18/18 (100.0%) df02 rows in df03; " in result.output
    df03, zs = z_frame(root / DF03)
    df02 = pl.read_csv(root / "metadata/combined_metadata_files/embryo_metadata_df02.csv", infer_schema=False)
    assert df03.columns[: df02.width] == df02.columns  # df02 columns in their order, then z
    assert len(zs) == 100 and df03.columns[df02.width :] == zs  # the legacy step keeps z_mu only
    assert zs[0] == "z_mu_n_00" and "z_mu_b_20" in zs  # auto: this model's store used bio/nuisance names
    for store in (root / STORE).glob("*.csv"):
        legacy, _ = z_frame(store)
        legacy = legacy.rename({c: c.replace("_n_", "_").replace("_b_", "_") for c in legacy.columns})
        flat = df03.rename({c: c.replace("_n_", "_").replace("_b_", "_") for c in zs})
        joined = legacy.join(flat, on="snip_id", suffix="_df03")
        assert joined.height > 0
        for col in ("z_mu_00", "z_mu_57", "z_mu_99"):
            assert (joined[col] == joined[f"{col}_df03"]).all(), (store, col)  # exactly equal (float32)
    lake_rows = pl.read_parquet(lake / "embeddings" / "**" / "*.parquet", hive_partitioning=False)
    onnx = lake_rows.filter(pl.col("source") == "onnx")
    assert set(onnx["experiment_date"]) == {NO_STORE, "20250612_30hpf_ctrl_atf6"}  # the store file's 2 gaps too
    sidecar = json.loads((root / (DF03 + ".meta.json")).read_text())
    assert sidecar["model_name"] == M and sidecar["coverage"]["overall"] == 1.0
    assert sidecar["model_sha256"] == [onnx["model_sha256"][0]] and sidecar["data_root"] == str(root)
    assert sidecar["parameters"]["generate_missing_latents"] is True and "morphlake_version" in sidecar


def test_existing_outputs_need_overwrite(cli, root, lake):
    both = ("--experiments", "20240626", NO_STORE)
    assert b06(cli, root, lake, "--generate-missing-latents", *both).exit_code == 0
    target = root / DF03
    target.write_text("analyst's edited copy\n")
    refused = b06(cli, root, lake, "--generate-missing-latents", *both)
    assert refused.exit_code == 1
    assert str(target) in refused.stderr and "pass --overwrite to replace them" in refused.stderr
    assert target.read_text() == "analyst's edited copy\n"
    assert b06(cli, root, lake, "--generate-missing-latents", "--overwrite", *both).exit_code == 0
    assert target.read_text().startswith("snip_id,")


def test_train_name_analysis_copies_experiments_and_flat_schema(cli, root, lake):
    result = b06(
        cli,
        root,
        lake,
        "--generate-missing-latents",
        "--train-name",
        "20241107_demo_train",
        "--export-analysis-copies",
        "--experiments",
        "20240626",
        NO_STORE,
        "--z-schema",
        "flat",
    )
    assert result.exit_code == 0, result.output
    train = pl.read_csv(root / "training_data/20241107_demo_train/embryo_metadata_with_embeddings.csv")
    assert "z_mu_00" in train.columns and "z_mu_n_00" not in train.columns and train.height > 0
    copies = sorted((root / "metadata/metadata_n_embeddings" / M).glob("df03_*.csv"))
    assert [c.name for c in copies] == ["df03_20240626.csv", f"df03_{NO_STORE}.csv"]
    df03 = pl.read_csv(root / DF03, infer_schema=False)
    assert set(df03["experiment_date"]) == {"20240626", NO_STORE} and df03.height == 12


def test_missing_train_name_is_reported_not_fatal(cli, root, lake):
    result = b06(cli, root, lake, "--generate-missing-latents", "--train-name", "nope")
    assert result.exit_code == 0 and "no training metadata" in result.output


def test_stems_are_normalised_before_joining(cli, root, lake):
    store = root / STORE / "morph_latents_20240626.csv"
    frame = pl.read_csv(store, infer_schema=False)
    odd = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.col("snip_id") + ".jpg")
        .otherwise(pl.col("snip_id").str.replace(r"_t(\d{4})$", "_s$1"))
        .alias("snip_id")
    )
    odd.write_csv(store)
    assert normalise_stem(odd["snip_id"][1]) == frame["snip_id"][1]
    result = b06(cli, root, lake, "--experiments", "20240626")
    assert result.exit_code == 0, result.output
    df03 = pl.read_csv(root / DF03, infer_schema=False)
    assert sorted(df03["snip_id"]) == sorted(frame["snip_id"])


def test_data_root_from_environment_and_missing(cli, root, lake):
    env = {"MORPHSEQ_DATA_ROOT": str(root)}
    assert cli("build06", "--root", root, "--lake", lake, "--dry-run", env=env).exit_code == 0
    missing = cli("build06", "--root", root, "--lake", lake, "--dry-run", env={"MORPHSEQ_DATA_ROOT": ""})
    assert missing.exit_code == 1 and "MORPHSEQ_DATA_ROOT is not set" in missing.stderr


def test_generation_without_an_encoder_says_how_to_get_one(cli, root, lake):
    (root / "models/legacy" / M / "encoder.onnx").unlink()
    result = b06(cli, root, lake, "--generate-missing-latents")
    assert result.exit_code == 1
    assert "needs an encoder" in result.stderr and "morphlake export-onnx --state-dict" in result.stderr


def test_compare_equal_and_different(cli, root, lake, tmp_path):
    assert b06(cli, root, lake, "--generate-missing-latents").exit_code == 0
    df03 = root / DF03
    same = cli("compare", df03, df03)
    assert same.exit_code == 0 and same.output.rstrip().endswith("EQUAL")
    store = root / STORE / "morph_latents_20240626.csv"  # flat names, compared with df03's bio/nuisance names
    vs_store = cli("compare", store, df03)
    assert (
        vs_store.exit_code == 1
        and "rows only in OLD: 0" in vs_store.output
        and "rows only in NEW: 12" in vs_store.output
    )
    assert "largest difference: 0 in" in vs_store.output
    changed = tmp_path / "changed.csv"
    frame = pl.read_csv(df03, infer_schema=False)
    frame.with_columns((pl.col("z_mu_b_42").cast(pl.Float64) + 0.25).alias("z_mu_b_42")).head(10).write_csv(changed)
    diff = cli("compare", df03, changed)
    assert diff.exit_code == 1
    assert "rows only in OLD: 8" in diff.output and "z_mu_42        0.25" in diff.output
    assert cli("compare", df03, changed, "--tolerance", "0.3").exit_code == 1  # rows still missing


def test_compare_reads_each_side_at_the_precision_it_was_written_in(cli, embedded_lake, tmp_path):
    """The same float32 df03 as CSV text and as Parquet is equal: both are compared at float32 (CSV text parsed as
    float64 is not the float32 Parquet holds). Two float64 files are compared at float64."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    query = "select * exclude (z_mu) from df03"
    for name in ("df03.csv", "df03.parquet"):
        assert cli("sql", query, "-o", tmp_path / name, "--lake", embedded_lake).exit_code == 0
    same = cli("compare", tmp_path / "df03.csv", tmp_path / "df03.parquet")
    assert same.exit_code == 0, same.output
    assert (
        "z values compared at float32 (OLD CSV text, at most 9 significant digits: float32; NEW Parquet columns: "
        "float32), tolerance 0 (exact at that precision" in same.output
    )
    assert same.output.rstrip().endswith("EQUAL")

    # float32 values written with float64 digits (pandas after an upcast), against float32 Parquet: at float32
    wide = pl.read_parquet(tmp_path / "df03.parquet").with_columns(pl.col("^z_.*$").cast(pl.Float64))
    wide.write_csv(tmp_path / "wide.csv")
    vs_float32 = cli("compare", tmp_path / "wide.csv", tmp_path / "df03.parquet")
    assert vs_float32.exit_code == 0 and "at float32 (OLD CSV text of float32 values written with up to 1" in (
        vs_float32.output
    )
    # both float64: compared at float64, where 1e-9 is a difference
    wide.write_parquet(tmp_path / "wide.parquet")
    vs_float64 = cli("compare", tmp_path / "wide.csv", tmp_path / "wide.parquet")
    assert vs_float64.exit_code == 0 and "compared at float64" in vs_float64.output
    shifted = wide.with_columns(pl.col("z_mu_b_42") + 1e-9)
    shifted.write_parquet(tmp_path / "shifted.parquet")
    differs = cli("compare", tmp_path / "wide.parquet", tmp_path / "shifted.parquet")
    assert differs.exit_code == 1 and "at float64 (OLD Parquet columns: float64" in differs.output
    # float32 text against float64 text that is not float32 data: at float64, never rounded to pass
    (tmp_path / "a.csv").write_text("snip_id,z_mu_00\nx,0.1\n")
    (tmp_path / "b.csv").write_text("snip_id,z_mu_00\nx,0.10000000149\n")
    (tmp_path / "c.csv").write_text("snip_id,z_mu_00\nx,0.123456789\n")
    (tmp_path / "d.csv").write_text("snip_id,z_mu_00\nx,0.1234567891\n")
    (tmp_path / "n.csv").write_text("snip_id,z_mu_00\nx,nan\n")
    for old, new, code in (("a", "b", 1), ("c", "d", 1), ("n", "n", 0)):
        result = cli("compare", tmp_path / f"{old}.csv", tmp_path / f"{new}.csv")
        assert result.exit_code == code, result.output


def test_another_model_name_finds_no_store(cli, root, lake):
    result = b06(cli, root, lake, "--model-name", "20250101_other_model")
    assert result.exit_code == 1
    assert "experiment(s) with no latents: 20240626, 20250305_24hpf_lmx1b, 20250612_30hpf_ctrl_atf6" in result.stderr


@pytest.mark.export
def test_generation_exports_the_state_dict_on_the_fly(cli, root, lake):
    torch = pytest.importorskip("torch")
    from morphlake.embed.architecture import EncoderSpec
    from morphlake.embed.build import demo_encoder_weights

    folder = root / "models/legacy" / M
    (folder / "encoder.onnx").unlink()
    weights = demo_encoder_weights(EncoderSpec(), seed=0)  # the demo encoder's weights, as a PyTorch state dict
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, folder / "encoder_reformatted.pt")
    result = b06(cli, root, lake, "--generate-missing-latents")
    assert result.exit_code == 0, result.output
    exported = list((lake / "models" / M).glob("encoder-*.onnx"))
    assert len(exported) == 1 and str(exported[0]) in result.output
    sidecar = json.loads((root / (DF03 + ".meta.json")).read_text())
    assert (
        sidecar["encoder"]["weights"] == "trained" and "encoder_reformatted.pt" in sidecar["encoder"]["weights_origin"]
    )
    assert not (root / "models/legacy" / M / "encoder.onnx").exists()  # nothing written in the user's folders
    # same weights as the demo encoder, so the generated rows equal what the demo encoder gives
    from morphlake.embed.build import write_demo_encoder
    from morphlake.embed.model import Encoder
    from morphlake.embed.reader import decode_snip

    demo = Encoder(write_demo_encoder(root.parent / "demo.onnx", M, seed=0), "cpu")
    onnx = pl.read_parquet(lake / "embeddings" / "**" / "*.parquet", hive_partitioning=False).filter(
        pl.col("source") == "onnx"
    )
    assert onnx.height == 8  # the experiment without a store file, and the 2 gaps of another
    pixels = np.stack(
        [
            decode_snip((root / "training_data/bf_embryo_snips" / e / f"{s}.jpg").read_bytes())
            for s, e in onnx.select("snip_id", "experiment_date").iter_rows()
        ]
    )[:, None]
    mu, _ = demo.run(pixels)
    assert np.max(np.abs(onnx.select([f"z_mu_{i:02d}" for i in range(100)]).to_numpy() - mu)) <= 1e-5
