"""Functional tests: `morphlake embed` through the real CLI: incremental runs, bad snips, devices."""

import json
import shutil
import subprocess
import sys

import images
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import lake_files

from morphlake import DEFAULT_MODEL_NAME
from morphlake.embed.build import write_demo_encoder
from morphlake.embed.model import Encoder
from morphlake.embed.reader import decode_snip
from morphlake.ingest.ledger import SNIP_SUBDIR
from morphlake.lake.data_root import DF02_RELPATH

EXP = "20250305_24hpf_lmx1b"  # the experiment the legacy store does not cover


def embeddings(lake):
    return pl.read_parquet(lake / "embeddings" / "**" / "*.parquet", hive_partitioning=False).sort("snip_id")


def last_record(lake, command="embed"):
    records = sorted((lake / "runs").glob(f"*-{command}-*.json"))
    return json.loads([r for r in records if not r.name.endswith(".partial.json")][-1].read_text())


@pytest.fixture
def embedded(cli, ingested, encoder_path):
    result = cli("embed", "--model", encoder_path, "--lake", ingested)
    assert result.exit_code == 0, result.output
    return ingested


def test_embed_fills_what_the_legacy_store_lacks(embedded):
    frame = embeddings(embedded)
    assert frame.height == 18 and frame["snip_id"].is_unique().all()
    by_source = dict(frame.group_by("source").len().iter_rows())
    assert by_source == {"legacy_csv": 10, "onnx": 8}
    onnx = frame.filter(pl.col("source") == "onnx")
    assert set(onnx["encoder_weights"]) == {"demo"} and onnx["model_sha256"].n_unique() == 1
    assert set(onnx["model_name"]) == {DEFAULT_MODEL_NAME}
    record = last_record(embedded)
    assert record["provider"] == {
        "requested": "auto",
        "used": "CPUExecutionProvider",
        "session_providers": ["CPUExecutionProvider"],
    }
    assert record["counts"]["embedded"] == 8
    assert set(record["embed_timings_s"]) >= {"decode_cpu_s", "infer_s", "write_s", "wait_s"}
    assert "onnxruntime-gpu" in record["versions"]


def test_onnx_values_match_the_encoder_and_legacy_store(embedded, root, encoder_path):
    frame = embeddings(embedded)
    enc = Encoder(encoder_path, "cpu")
    rows = frame.filter(pl.col("experiment_date").is_in([EXP, "20240626"]))
    pixels = np.stack(
        [
            decode_snip((root / SNIP_SUBDIR / e / f"{s}.jpg").read_bytes())
            for s, e in rows.select("snip_id", "experiment_date").iter_rows()
        ]
    )[:, None]
    mu, logvar = enc.run(pixels)
    z_mu = rows.select([f"z_mu_{i:02d}" for i in range(100)]).to_numpy()
    z_sigma = rows.select([f"z_sigma_{i:02d}" for i in range(100)]).to_numpy()
    assert np.max(np.abs(z_mu - mu)) <= 1e-5 and np.max(np.abs(z_sigma - logvar)) <= 1e-5


def test_rerun_embeds_nothing_and_changes_nothing(cli, embedded, encoder_path):
    before = lake_files(embedded)
    result = cli("embed", "--model", encoder_path, "--lake", embedded)
    assert result.exit_code == 0
    assert last_record(embedded)["counts"]["to_embed"] == 0
    assert lake_files(embedded) == before


def test_changed_image_is_reembedded(cli, embedded, root, encoder_path):
    snip = f"{EXP}_A03_e01_t0001"
    images.good_jpeg(root / SNIP_SUBDIR / EXP / f"{snip}.jpg", seed=99)
    old = embeddings(embedded).filter(pl.col("snip_id") == snip)
    assert cli("ingest", "--root", root, "--lake", embedded).exit_code == 0
    assert cli("embed", "--model", encoder_path, "--lake", embedded).exit_code == 0
    assert last_record(embedded)["counts"]["embedded"] == 1
    new = embeddings(embedded).filter(pl.col("snip_id") == snip)
    assert new["image_fingerprint"][0] != old["image_fingerprint"][0]
    assert new["z_mu_00"][0] != old["z_mu_00"][0]
    assert embeddings(embedded).height == 18


def test_changed_model_reembeds_onnx_rows_but_keeps_the_legacy_store(cli, embedded, tmp_path):
    other = write_demo_encoder(tmp_path / "other.onnx", DEFAULT_MODEL_NAME, seed=5)
    assert cli("embed", "--model", other, "--lake", embedded).exit_code == 0
    assert last_record(embedded)["counts"]["embedded"] == 8
    frame = embeddings(embedded)
    assert frame.height == 18 and dict(frame.group_by("source").len().iter_rows()) == {"legacy_csv": 10, "onnx": 8}


def test_batch_sizes_and_threads_agree(cli, ingested, encoder_path, tmp_path):
    results = []
    for i, args in enumerate(
        [
            ("--batch-size", "1", "--threads", "1"),
            ("--batch-size", "5", "--workers", "3"),
            (
                "--batch-size",
                "64",
            ),
        ]
    ):
        lake = tmp_path / f"lake{i}"
        shutil.copytree(ingested, lake)
        assert cli("embed", "--model", encoder_path, "--lake", lake, *args).exit_code == 0
        results.append(
            embeddings(lake)
            .filter(pl.col("source") == "onnx")
            .select(pl.selectors.matches(r"^z_(mu|sigma)_\d+$"))
            .to_numpy()
        )
    assert np.max(np.abs(results[0] - results[1])) <= 1e-5
    assert np.max(np.abs(results[0] - results[2])) <= 1e-5


@pytest.mark.parametrize("kind", sorted(images.BAD_IMAGES))
def test_bad_snip_fails_strict_and_is_skipped_with_allow_partial(cli, root, lake, encoder_path, kind):
    make, message = images.BAD_IMAGES[kind]
    snip = f"{EXP}_A03_e01_t0002"
    path = root / SNIP_SUBDIR / EXP / f"{snip}.jpg"
    make(path)
    ingest = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    if ingest.exit_code == 2:  # rejected from its header already (e.g. a decompression bomb)
        skipped = json.loads(next((lake / "runs").glob("*.partial.json")).read_text())["skipped"]
        assert [s["item"] for s in skipped] == [snip]
        return
    assert ingest.exit_code == 0
    strict = cli("embed", "--model", encoder_path, "--lake", lake)
    assert strict.exit_code == 1
    assert f"cannot embed snip {snip} ({path})" in strict.stderr and message in strict.stderr
    assert "--allow-partial" in strict.stderr
    assert not (lake / "embeddings" / f"model_name={DEFAULT_MODEL_NAME}" / f"experiment_date={EXP}").exists()
    partial = cli("embed", "--model", encoder_path, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2
    record = last_record(lake)
    skipped = json.loads(open(record["partial_manifest"]).read())["skipped"]
    assert [(s["item"], s["where"]) for s in skipped] == [(snip, str(path))] and message in skipped[0]["reason"]
    assert embeddings(lake).filter(pl.col("experiment_date") == EXP).height == 5


@pytest.mark.parametrize(
    "kind, maker", [("zero", images.zero_bytes), ("text", images.text_file), ("png_named_jpg", images.png_named_jpg)]
)
def test_files_that_are_not_jpegs_are_left_out_of_the_ledger(cli, root, lake, kind, maker):
    snip = f"{EXP}_A03_e01_t0002"
    maker(root / SNIP_SUBDIR / EXP / f"{snip}.jpg")
    strict = cli("ingest", "--root", root, "--lake", lake)
    assert strict.exit_code == 1 and f"snips: {snip}" in strict.stderr
    ledger_part = lake / "raw" / "snips" / f"experiment_date={EXP}" / "part-00000.parquet"
    assert not ledger_part.exists()  # a strict run that fails publishes nothing
    assert cli("ingest", "--root", root, "--lake", lake, "--allow-partial").exit_code == 2
    ledger = pq.read_table(ledger_part, partitioning=None)
    df02 = pl.read_csv(root / DF02_RELPATH, infer_schema=False).filter(pl.col("experiment_date") == EXP)
    assert sorted(ledger["snip_id"].to_pylist()) == sorted(set(df02["snip_id"]) - {snip})


def test_symlink_outside_the_data_root_is_refused(cli, root, lake, tmp_path):
    outside = images.good_jpeg(tmp_path / "outside.jpg")
    link = root / SNIP_SUBDIR / EXP / f"{EXP}_A03_e01_t0002.jpg"
    link.unlink()
    link.symlink_to(outside)
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1 and "outside the data root" in result.stderr


def test_cuda_requested_but_missing_is_an_error(cli, ingested, encoder_path, monkeypatch):
    import morphlake.embed.model as model_module

    monkeypatch.setattr(model_module, "cuda_driver_present", lambda: False)
    before = lake_files(ingested)
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--device", "cuda")
    assert result.exit_code == 1
    assert "device cuda was asked for" in result.stderr
    assert lake_files(ingested) == before


def test_embed_needs_a_ledger(cli, lake, encoder_path):
    result = cli("embed", "--model", encoder_path, "--lake", lake)
    assert result.exit_code == 1 and "has no snip ledger" in result.stderr and "morphlake ingest" in result.stderr


def test_demo_command_runs_end_to_end(cli, tmp_path):
    result = cli(
        "demo", "--root", tmp_path / "demo", "--lake", tmp_path / "lake", "--embryos", "2", "--timepoints", "2"
    )
    assert result.exit_code == 0, result.output
    assert "legacy store covers 20240626, 20250612_30hpf_ctrl_atf6" in result.output
    frame = embeddings(tmp_path / "lake")
    assert frame.height == 12 and set(frame["source"]) == {"legacy_csv", "onnx"}


def test_embed_loads_no_library_it_does_not_use(ingested, encoder_path):
    """pandas (through pyarrow's conversions of Python values or pyarrow.dataset), Polars and onnx cost
    0.05-0.4 s of every run's start-up; the embed path needs none of them (int8 copies aside)."""
    script = (
        "import sys; from morphlake.cli import main\n"
        "try:\n"
        f"    main(['-q', 'embed', '--model', {str(encoder_path)!r}, '--lake', {str(ingested)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pandas', 'polars', 'onnx', 'pyarrow.dataset', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
    assert last_record(ingested)["counts"]["embedded"] > 0
