"""build06 and ingest as a drop-in on a root written the way the lab writes files, against the legacy step in pandas."""

import io
import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import TINY
from PIL import Image

from morphlake import DEFAULT_MODEL_NAME
from morphlake.demo.data_root import make_demo_root
from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError

M = DEFAULT_MODEL_NAME
DF02 = "metadata/combined_metadata_files/embryo_metadata_df02.csv"
DF03 = "metadata/combined_metadata_files/embryo_metadata_df03.csv"
TRAIN = "training_data/20241107_demo_train"
STORE = f"analysis/latent_embeddings/legacy/{M}"
SNIPS = "training_data/bf_embryo_snips"
NO_STORE = "20250305_24hpf_lmx1b"  # no store file
PARTIAL = "20250612_30hpf_ctrl_atf6"  # its store lacks each embryo's last time point (bio/nuisance names)
INDEX = re.compile(r"^Unnamed: \d+$")


def pandas_round_trip(path, times=1):
    """Save a CSV as the lab does: pd.read_csv, then to_csv() with its defaults (the index as a first column)."""
    for _ in range(times):
        pd.read_csv(path).to_csv(path)


FLAGS = {"True": True, "true": True, "1": True, "False": False, "false": False, "0": False}


def write_like_the_lab(root, model=M):
    """Every CSV saved by pandas with its defaults: df02 (flags as bool columns) and the training metadata once (an
    empty-headed index), the flat store file twice (empty header, then `Unnamed: 0`), the other once. (The demo's
    df02 mixes True/1/true between experiments; morphlake writes True/False.)"""
    df02 = pd.read_csv(
        root / DF02, dtype={c: str for c in ("control_flag", "use_embryo_flag", "dead_flag", "sa_outlier_flag")}
    )
    df02 = df02.assign(**{c: df02[c].map(FLAGS) for c in df02.columns if c.endswith("_flag")})
    df02.loc[1, "use_embryo_flag"] = False  # an unusable row the store covers: df03 keeps it
    df02.to_csv(root / DF02)
    pandas_round_trip(root / TRAIN / "embryo_metadata_df_train.csv")
    store = root / STORE.replace(M, model)
    pandas_round_trip(store / "morph_latents_20240626.csv", times=2)
    pandas_round_trip(store / f"morph_latents_{PARTIAL}.csv")
    return root


@pytest.fixture
def lab_root(root):
    return write_like_the_lab(root)


def legacy_read(path):
    """pd.read_csv as the legacy code reads, less the pandas index columns (which morphlake leaves out)."""
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if INDEX.match(c)])


def schema_name(flat, z_schema, nuisance=20):
    kind, index = flat.rsplit("_", 1)
    return flat if z_schema == "flat" else f"{kind}_{'n' if int(index) < nuisance else 'b'}_{index}"


def legacy_build06(root, experiments=None, z_schema="auto", model=M):
    """The legacy step in pandas: (df03, training join). df03 = pd.merge(df02, latents[["snip_id"] + z_mu],
    on="snip_id", how="inner") over every df02 row, z named by the schema policy (`auto`: bio/nuisance
    when the store uses those names)."""
    df02 = legacy_read(root / DF02)
    if experiments:
        df02 = df02[df02["experiment_date"].astype(str).isin(experiments)]
    files = sorted((root / STORE.replace(M, model)).glob("morph_latents_*.csv"))
    stores = [legacy_read(p) for p in files if not experiments or p.stem.removeprefix("morph_latents_") in experiments]
    if z_schema == "auto":
        z_schema = "bio_nuisance" if any(c.startswith("z_mu_n_") for s in stores for c in s.columns) else "flat"
    flat = [s.rename(columns=lambda c: re.sub(r"^z_(mu|sigma)_[nb]_", r"z_\1_", c)) for s in stores]
    latents = pd.concat(flat, ignore_index=True)
    dims = sorted(int(c.rsplit("_", 1)[1]) for c in latents.columns if c.startswith("z_mu_"))
    nuisance = int(len(dims) * 0.2)
    latents = latents.rename(columns={f"z_mu_{i:02d}": schema_name(f"z_mu_{i:02d}", z_schema, nuisance) for i in dims})
    z_mu = [schema_name(f"z_mu_{i:02d}", z_schema, nuisance) for i in dims]
    df03 = pd.merge(df02, latents[["snip_id"] + z_mu], on="snip_id", how="inner")
    train = pd.merge(
        legacy_read(root / TRAIN / "embryo_metadata_df_train.csv"),
        latents[["snip_id"] + z_mu],
        on="snip_id",
        how="inner",
    )
    return df03, train


def assert_same_table(ours_path, legacy: pd.DataFrame):
    """The file morphlake wrote holds what the legacy step's to_csv(index=False) would, read back alike."""
    ours = pd.read_csv(ours_path)
    legacy = pd.read_csv(io.StringIO(legacy.to_csv(index=False)))
    assert list(ours.columns) == list(legacy.columns)
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), legacy.reset_index(drop=True), check_exact=True)


def b06(cli, root, lake, *extra):
    return cli("build06", "--root", root, "--data-root", root, "--lake", lake, *extra)


def records(lake, command):
    return [
        json.loads(p.read_text())
        for p in sorted((lake / "runs").glob(f"*-{command}-*.json"))
        if not p.name.endswith(".partial.json")
    ]


def test_a_leading_pandas_index_is_left_out_and_other_empty_headers_stay_errors(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"snip_id": ["a", "b"], "x": [1.5, 2.0]}).to_csv(path)
    assert read_csv_strings(path, "t").columns == ["snip_id", "x"]
    pandas_round_trip(path)  # ",Unnamed: 0,snip_id,x"
    assert read_csv_strings(path, "t").columns == ["snip_id", "x"]
    path.write_text(",snip_id\nfirst,a\n")  # an empty header over values that are not an index
    with pytest.raises(InputError, match=r"has a column with an empty name \(column 1\)"):
        read_csv_strings(path, "t")
    path.write_text("snip_id,,x\na,1,2\n")
    with pytest.raises(InputError, match=r"has a column with an empty name \(column 2\)"):
        read_csv_strings(path, "t")
    path.write_text("Unnamed: 0,snip_id\nfirst,a\n")  # a real column that happens to have that name: kept
    assert read_csv_strings(path, "t").columns == ["Unnamed: 0", "snip_id"]


def test_merge_only_needs_no_images_and_matches_the_legacy_step(cli, lab_root, lake):
    shutil.rmtree(lab_root / SNIPS)  # operators merge where the snips are not mounted
    result = b06(
        cli, lab_root, lake, "--allow-partial", "--train-name", "20241107_demo_train", "--export-analysis-copies"
    )
    assert result.exit_code == 2, result.output
    legacy_df03, legacy_train = legacy_build06(lab_root)
    assert_same_table(lab_root / DF03, legacy_df03)
    assert_same_table(lab_root / TRAIN / "embryo_metadata_with_embeddings.csv", legacy_train)
    for exp in ("20240626", PARTIAL):
        copy = lab_root / "metadata/metadata_n_embeddings" / M / f"df03_{exp}.csv"
        assert_same_table(copy, legacy_df03[legacy_df03["experiment_date"].astype(str) == exp])
    assert not any(c.startswith("z_sigma") for c in pd.read_csv(lab_root / DF03).columns)

    # partial results marked where people look: beside the output, with counts and the skipped ids
    manifest = json.loads((lab_root / (DF03 + ".partial.json")).read_text())
    assert manifest["counts"] == {"processed": 18, "succeeded": 10, "skipped": 8}
    assert len(manifest["skipped_snip_ids"]) == 8 and all(
        s.startswith((NO_STORE, PARTIAL)) for s in manifest["skipped_snip_ids"]
    )
    sidecar = json.loads((lab_root / (DF03 + ".meta.json")).read_text())
    assert sidecar["outcome"] == "partial" and sidecar["counts"]["succeeded"] == 10
    assert sidecar["coverage"]["overall"] == round(10 / 18, 6) and sidecar["coverage"]["usable"] == round(9 / 16, 6)
    assert "coverage: 10/18 (55.6%) df02 rows in df03  WARNING: below 95%" in result.output
    ingest_record = records(lake, "ingest")[-1]
    assert ingest_record["snips"] == "not scanned: asked not to scan images"
    notes = " ".join(ingest_record["notes"])
    assert "df02 file" in notes and "left out its leading index column with an empty header" in notes
    assert "left out its leading index column 'Unnamed: 0'" in notes


def test_generated_latents_go_into_the_store_and_read_back_bit_exact(cli, lab_root, lake):
    result = b06(cli, lab_root, lake, "--generate-missing-latents", "--train-name", "20241107_demo_train")
    assert result.exit_code == 0, result.output  # every df02 row's snip is readable: every row gets a latent
    written = lab_root / STORE / f"morph_latents_{NO_STORE}.csv"
    assert written.is_file() and not list((lab_root / STORE).glob(".*"))  # no temporary left beside it
    header = pd.read_csv(written, nrows=0).columns.tolist()
    assert header[:3] == ["experiment_date", "embryo_id", "snip_id"]
    assert header[3] == "z_mu_n_00" and "z_sigma_b_99" in header  # the store's bio/nuisance naming
    sidecar = json.loads((lab_root / (DF03 + ".meta.json")).read_text())
    assert str(written) in sidecar["outputs"]
    gaps = sidecar["generated_latents"]["store_gaps"][PARTIAL]  # in df03, not (yet) in the lab's store file
    assert len(gaps["snip_ids"]) == 2 and gaps["in_store"] is False
    assert len(pd.read_csv(lab_root / DF03)) == 18

    # with --overwrite the gaps go into their store file too: then the legacy step, run on the store as it is
    # now, writes what build06 wrote
    partial_store = lab_root / STORE / f"morph_latents_{PARTIAL}.csv"
    lab_bytes = partial_store.read_bytes()
    again = b06(cli, lab_root, lake, "--generate-missing-latents", "--train-name", "20241107_demo_train", "--overwrite")
    assert again.exit_code == 0, again.output
    assert partial_store.read_bytes().startswith(lab_bytes)
    legacy_df03, legacy_train = legacy_build06(lab_root)
    assert len(legacy_df03) == 18
    assert_same_table(lab_root / DF03, legacy_df03)
    assert_same_table(lab_root / TRAIN / "embryo_metadata_with_embeddings.csv", legacy_train)
    assert not legacy_df03["use_embryo_flag"].all()  # whatever the flag: analysts filter on it themselves

    # the next ingest reads the files back bit-exact and keeps the ONNX rows' provenance: nothing changes
    lake_rows = lambda: pl.read_parquet(lake / "embeddings" / "**" / "*.parquet", hive_partitioning=False)  # noqa: E731
    before = lake_rows().sort("snip_id")
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    after = lake_rows().sort("snip_id")
    assert after.drop("run_id").equals(before.drop("run_id"))
    assert set(after.filter(pl.col("experiment_date") == NO_STORE)["source"]) == {"onnx"}
    store = pl.read_csv(written).rename(lambda c: re.sub(r"^z_(mu|sigma)_[nb]_", r"z_\1_", c))
    z = [f"z_mu_{i:02d}" for i in range(100)] + [f"z_sigma_{i:02d}" for i in range(100)]
    onnx = after.filter(pl.col("experiment_date") == NO_STORE).sort("snip_id").select(z)
    assert store.sort("snip_id").select(pl.col(z).cast(pl.Float32)).equals(onnx)

    first = {p: p.read_bytes() for p in (lab_root / DF03, written, partial_store)}
    third = b06(cli, lab_root, lake, "--generate-missing-latents", "--overwrite")
    assert third.exit_code == 0, third.output
    assert records(lake, "build06")[-1]["counts"]["planned_to_embed"] == 0 and "embed:" not in third.output
    assert {p: p.read_bytes() for p in first} == first


def test_gaps_of_a_store_file_are_generated_into_df03_and_into_the_file_only_with_overwrite(cli, lab_root, lake):
    """A lab-shaped store file (pandas index columns) that lacks 3 of its experiment's df02 rows (snips added after
    the store was made): every df02 row gets a latent; the store's values stay bit for bit; the file is the lab's,
    so the 3 are written into it only with --overwrite, after its rows as they are, the file replaced at once."""
    store = lab_root / STORE / "morph_latents_20240626.csv"
    lines = store.read_bytes().decode().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    first_z = next(i for i, name in enumerate(header) if name.startswith("z_"))

    def wide(line: str) -> str:  # float32 values as pandas writes them after an upcast: float64's digits
        cells = line.rstrip("\r\n").split(",")
        return ",".join(cells[:first_z] + [repr(float(np.float32(v))) for v in cells[first_z:]]) + "\n"

    store.write_text("".join(lines[:1] + [wide(line) for line in lines[1:4]]))  # the header, 3 of the 6 rows
    kept, lab_bytes = pd.read_csv(store), store.read_bytes()
    dry = b06(cli, lab_root, lake, "--generate-missing-latents", "--dry-run")
    assert "df02 rows the existing store files lack: 5, generated with the fp32 encoder into df03" in dry.output
    result = b06(cli, lab_root, lake, "--generate-missing-latents")
    assert result.exit_code == 0, result.output
    assert (
        "20240626: 3 latent(s) generated for the df02 rows morph_latents_20240626.csv lacks, in df03" in result.output
    )
    assert store.read_bytes() == lab_bytes  # the lab's file, untouched without --overwrite
    df03 = pd.read_csv(lab_root / DF03)
    df02 = legacy_read(lab_root / DF02)
    assert sorted(df03["snip_id"]) == sorted(df02["snip_id"])  # every df02 row
    z = [c for c in kept.columns if c.startswith("z_mu_")]
    ours = df03.set_index("snip_id").rename(columns=lambda c: re.sub(r"^z_mu_[nb]_", "z_mu_", c))
    lab = kept.set_index("snip_id")
    assert (ours.loc[lab.index, z].to_numpy(np.float32) == lab[z].to_numpy(np.float32)).all()  # bit for bit
    generated = sorted(set(df02.loc[df02["experiment_date"].astype(str) == "20240626", "snip_id"]) - set(lab.index))
    sidecar = json.loads((lab_root / (DF03 + ".meta.json")).read_text())["generated_latents"]
    assert sidecar["precision"] == "fp32" and sidecar["store_gaps"]["20240626"] == {
        "store_file": str(store),
        "in_store": False,
        "snip_ids": generated,
    }

    completed = b06(cli, lab_root, lake, "--generate-missing-latents", "--overwrite")
    assert completed.exit_code == 0, completed.output
    assert f"wrote {store} (3 rows appended)" in completed.output
    data = store.read_bytes()
    assert data.startswith(lab_bytes) and len(data.splitlines()) == 7
    back = pd.read_csv(store)
    assert back.columns.tolist() == kept.columns.tolist() and back.iloc[:3].equals(kept)
    assert back.iloc[3:, 0].tolist() == [3, 4, 5]  # the pandas index goes on
    assert sorted(back["snip_id"].iloc[3:]) == generated
    new = back.set_index("snip_id").loc[generated, z].to_numpy(np.float32)
    assert (new == ours.loc[generated, z].to_numpy(np.float32)).all()
    # in the store's own number format (float64's digits, as the lab's rows): each reads back as exactly its float32
    appended = back.iloc[3:][z].to_numpy(np.float64)
    assert (appended == appended.astype(np.float32).astype(np.float64)).all()
    assert max(len(v.split(",")[-1]) for v in data[len(lab_bytes) :].decode().splitlines()) > 12
    meta = json.loads((lab_root / (DF03 + ".meta.json")).read_text())["generated_latents"]["store_gaps"]["20240626"]
    assert meta["in_store"] is True and not list((lab_root / STORE).glob(".*"))


def test_existing_store_files_are_never_replaced(cli, lab_root, lake):
    written = lab_root / STORE / f"morph_latents_{NO_STORE}.csv"
    written.write_text("experiment_date,embryo_id,snip_id,z_mu_00\n")  # appears after the plan: refused
    result = b06(cli, lab_root, lake, "--generate-missing-latents", "--experiments", NO_STORE)
    assert result.exit_code == 1  # a broken store file: its rows are missing, and strict mode fails
    assert written.read_text() == "experiment_date,embryo_id,snip_id,z_mu_00\n"


def test_the_plan_is_the_run(cli, lab_root, lake, encoder_path):
    # the unstored experiment is in the lake already, but one of its snips has changed since: the plan knows
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    assert cli("embed", "--model", encoder_path, "--experiments", NO_STORE, "--lake", lake).exit_code == 0
    changed = sorted((lab_root / SNIPS / NO_STORE).glob("*.jpg"))[0]
    Image.open(changed).save(changed, quality=80)
    dry = b06(cli, lab_root, lake, "--generate-missing-latents", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "snips to embed: 3 of 8 df02 rows without latents (5 already embedded in the lake, "
        "0 without a usable image file)"
    ) in dry.output
    assert "df02 rows the existing store files lack: 2, generated with the fp32 encoder into df03" in dry.output
    assert f"lake: {lake} (ingest, embed, build" in dry.output
    result = b06(cli, lab_root, lake, "--generate-missing-latents")
    assert result.exit_code == 0, result.output
    run = records(lake, "build06")[-1]
    assert run["counts"]["planned_to_embed"] == run["counts"]["embedded"] == 3  # the changed snip and 2 gaps


def test_a_run_in_which_nothing_succeeds_fails(cli, lab_root, lake):
    result = b06(cli, lab_root, lake, "--allow-partial", "--experiments", NO_STORE)
    assert result.exit_code == 1
    assert "no df02 row has latents of the model, so df03 would be empty; nothing was written" in result.stderr
    assert not (lab_root / DF03).exists() and not (lab_root / (DF03 + ".partial.json")).exists()


def test_df02_is_a_whole_table(cli, lab_root, lake, encoder_path):
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    assert cli("embed", "--model", encoder_path, "--lake", lake).exit_code == 0
    assert cli("build", "--lake", lake).exit_code == 0
    df02 = pd.read_csv(lab_root / DF02, index_col=0)
    dropped_row = df02[df02["experiment_date"].astype(str) == "20240626"]["snip_id"].iloc[0]
    df02 = df02[(df02["experiment_date"].astype(str) != NO_STORE) & (df02["snip_id"] != dropped_row)]
    df02.to_csv(lab_root / DF02)
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    result = cli("build", "--lake", lake, "--coverage-severity", "warn")
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from df03 where experiment_date = ?", params=[NO_STORE]).fetchall() == [(0,)]
        assert con.sql("select count(*) from df03 where snip_id = ?", params=[dropped_row]).fetchall() == [(0,)]
        assert con.sql("select count(*) from df03").fetchall() == [(11,)]
    assert not (lake / "exports/df03" / f"experiment_date={NO_STORE}").exists()
    assert (lake / "embeddings" / f"model_name={M}" / f"experiment_date={NO_STORE}").is_dir()  # kept: costly
    assert (lake / "raw/snips" / f"experiment_date={NO_STORE}").is_dir()
    status = cli("status", "--lake", lake)
    assert f"not in df02 (kept in embeddings, left out of df03): {NO_STORE}" in status.output
    assert records(lake, "ingest")[-1]["df02_removed_experiments"] == [NO_STORE]


def test_ingest_of_metadata_alone(cli, lab_root, lake):
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    ledger = sorted((lake / "raw/snips").rglob("*.parquet"))
    before = {p: p.read_bytes() for p in ledger}
    shutil.rmtree(lab_root / SNIPS)
    result = cli("ingest", "--root", lab_root, "--lake", lake)
    assert result.exit_code == 0, result.output
    assert "metadata only (no snip folder" in result.output
    assert {p: p.read_bytes() for p in ledger} == before
    assert cli("ingest", "--root", lab_root, "--no-snips", "--lake", lake).exit_code == 0


def test_a_16_dim_model_with_a_z_mu_only_store_in_each_mode(cli, tmp_path, lake):
    model, root = "playground16", tmp_path / "root16"
    make_demo_root(root, TINY, model, latent_dim=16)
    write_like_the_lab(root, model)
    store = root / STORE.replace(M, model)
    flat = store / "morph_latents_20240626.csv"
    frame = pd.read_csv(flat, index_col=0)
    frame.drop(columns=[c for c in frame.columns if c.startswith("z_sigma")]).to_csv(flat)  # z_mu only
    snips = tmp_path / "snips-unmounted"
    shutil.move(root / SNIPS, snips)
    merge = b06(cli, root, lake, "--model-name", model, "--allow-partial")
    assert merge.exit_code == 2, merge.output
    assert_same_table(root / DF03, legacy_build06(root, model=model)[0])
    assert [c for c in pd.read_csv(root / DF03).columns if c.startswith("z_")][-1] == "z_mu_b_15"

    shutil.move(snips, root / SNIPS)
    lab_bytes = (store / f"morph_latents_{PARTIAL}.csv").read_bytes()
    generate = b06(cli, root, lake, "--model-name", model, "--generate-missing-latents", "--overwrite")
    assert generate.exit_code == 0, generate.output
    written = pd.read_csv(store / f"morph_latents_{NO_STORE}.csv")
    assert [c for c in written.columns if c.startswith("z_")][-1] == "z_sigma_b_15"  # the model has z_sigma
    assert (store / f"morph_latents_{PARTIAL}.csv").read_bytes().startswith(lab_bytes)  # its 2 gaps appended
    df03, _ = legacy_build06(root, model=model)
    assert len(df03) == 18
    assert_same_table(root / DF03, df03)
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select distinct typeof(z_mu) from df03").fetchall() == [("FLOAT[16]",)]


def test_the_csvs_hold_the_store_not_what_else_the_lake_holds(cli, lab_root, lake, encoder_path):
    assert cli("ingest", "--root", lab_root, "--lake", lake).exit_code == 0
    fast = cli("embed", "--model", encoder_path, "--precision", "int8", "--lake", lake)  # fills every gap, int8
    assert fast.exit_code == 0, fast.output
    result = b06(cli, lab_root, lake, "--allow-partial")
    assert result.exit_code == 2, result.output
    assert_same_table(lab_root / DF03, legacy_build06(lab_root)[0])  # 10 rows: the store's, no int8 row
    manifest = json.loads((lab_root / (DF03 + ".partial.json")).read_text())
    assert manifest["counts"] == {"processed": 18, "succeeded": 10, "skipped": 8}
    assert len(manifest["skipped_snip_ids"]) == 8


def test_a_generated_store_file_is_written_whole_or_not_at_all(cli, lab_root, lake):
    next((lab_root / SNIPS / NO_STORE).glob("*.jpg")).unlink()
    result = b06(cli, lab_root, lake, "--generate-missing-latents", "--allow-partial", "--experiments", NO_STORE)
    assert result.exit_code == 1  # nothing else to write: the only experiment's store file is incomplete
    assert not (lab_root / STORE / f"morph_latents_{NO_STORE}.csv").exists()
    both = b06(
        cli, lab_root, lake, "--generate-missing-latents", "--allow-partial", "--experiments", NO_STORE, "20240626"
    )
    assert both.exit_code == 2, both.output
    assert not (lab_root / STORE / f"morph_latents_{NO_STORE}.csv").exists()
    skipped = json.loads((lab_root / (DF03 + ".partial.json")).read_text())["skipped"]
    assert any(
        s["item"] == NO_STORE and s["reason"].startswith("store file not written: 1 of 6 df02 rows") for s in skipped
    )
    assert_same_table(lab_root / DF03, legacy_build06(lab_root, experiments=[NO_STORE, "20240626"])[0])


def test_a_store_file_generated_alone_takes_the_stores_naming(cli, lab_root, lake):
    result = b06(cli, lab_root, lake, "--generate-missing-latents", "--experiments", NO_STORE)
    assert result.exit_code == 0, result.output
    header = pd.read_csv(lab_root / STORE / f"morph_latents_{NO_STORE}.csv", nrows=0).columns
    assert "z_mu_n_00" in header and "z_mu_00" not in header  # the other files' naming, not the filter's


def test_the_csv_columns_are_the_files_own(cli, lab_root, lake):
    other = lab_root / "training_data/other_train"
    other.mkdir()
    pd.DataFrame({"snip_id": ["x_A01_e01_t0000"], "extra_col": [1]}).to_csv(other / "embryo_metadata_df_train.csv")
    df02 = pd.read_csv(lab_root / DF02, index_col=0)
    df02.insert(2, "new_qc", 1.5)
    df02.to_csv(lab_root / DF02)
    result = b06(
        cli, lab_root, lake, "--allow-partial", "--train-name", "20241107_demo_train", "--experiments", "20240626"
    )
    assert result.exit_code == 0, result.output
    legacy_df03, legacy_train = legacy_build06(lab_root, experiments=["20240626"])
    assert pd.read_csv(lab_root / DF03).columns[2] == "new_qc"
    assert_same_table(lab_root / DF03, legacy_df03)
    assert_same_table(lab_root / TRAIN / "embryo_metadata_with_embeddings.csv", legacy_train)


def test_without_a_model_config_the_store_gives_the_width(cli, tmp_path, lake):
    model, root = "playground16", tmp_path / "root16"
    make_demo_root(root, TINY, model, latent_dim=16)
    shutil.rmtree(root / "models")
    result = b06(cli, root, lake, "--model-name", model, "--allow-partial")
    assert result.exit_code == 2, result.output
    assert pd.read_csv(root / DF03).columns[-1] == "z_mu_b_15"


def test_a_legacy_file_that_appears_meanwhile_is_not_replaced(tmp_path):
    from morphlake.legacy.outputs import write_csv_atomic

    target = tmp_path / "df03.csv"
    target.write_text("someone else's\n")
    with (
        duckdb.connect() as con,
        pytest.raises(InputError, match="appeared while morphlake was writing it; it was not replaced"),
    ):
        write_csv_atomic(con, "select 1 as a", [], path=target, replace=False)
    assert target.read_text() == "someone else's\n" and sorted(tmp_path.iterdir()) == [target]


def test_a_data_root_with_neither_snips_nor_store_is_a_mistake(cli, lab_root, lake, tmp_path):
    elsewhere = tmp_path / "not-a-data-root"
    elsewhere.mkdir()
    result = cli("ingest", "--root", lab_root, "--data-root", elsewhere, "--lake", lake)
    assert result.exit_code == 1
    assert "has neither training_data/bf_embryo_snips/ nor analysis/latent_embeddings/" in result.stderr
    assert "check --data-root" in result.stderr and "--no-snips" in result.stderr
    assert cli("ingest", "--root", lab_root, "--data-root", elsewhere, "--no-snips", "--lake", lake).exit_code == 0


def test_a_scratch_on_another_mount_falls_back_to_a_temporary_beside_the_file(tmp_path, monkeypatch):
    import errno
    import os

    from morphlake.lake import files

    real_replace, calls = os.replace, []

    def cross_device(src, dst):
        calls.append(str(src))
        if Path(src).parent.name == "scratch":  # the scratch is on another mount than the target
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", cross_device)
    target = tmp_path / "out" / "df03.csv"
    files.write_atomic(target, b"a,b\n", scratch=tmp_path / "scratch")
    assert target.read_bytes() == b"a,b\n" and len(calls) == 2
    assert list((tmp_path / "out").iterdir()) == [target] and not list((tmp_path / "scratch").iterdir())
