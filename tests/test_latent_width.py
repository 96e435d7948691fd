"""Models of any latent width D, and legacy stores that kept only z_mu: unit tests, then the real CLI, 16 dims."""

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import TINY, Cli

from morphlake.demo.data_root import make_demo_root
from morphlake.embed.architecture import bio_nuisance_name
from morphlake.errors import MorphlakeError
from morphlake.ingest.errors import InputError
from morphlake.ingest.latents import Z_COLUMN, latent_store_dir, read_latent_file, z_columns
from morphlake.lake.embeddings_table import model_latent_dim
from morphlake.lake.layout import Lake
from morphlake.lake.publish import check_partition

D, NUISANCE = 16, 3  # the playground model: floor(16 * 0.2) = 3 nuisance dims
MODEL = "playground16"
SNIPS = ["20240626_A01_e01_t0000", "20240626_A01_e01_t0001", "20240626_A01_e01_t0002"]


def mu_only_store(path: Path, naming: str, *, sigma: bool = False) -> pd.DataFrame:
    """A D-wide store the way the lab writes it: pandas to_csv() defaults (an unnamed index column first)."""
    name = (
        (lambda kind, i: f"z_{kind}_{i:02d}")
        if naming == "flat"
        else (lambda kind, i: bio_nuisance_name(kind, i, NUISANCE))
    )
    frame = pd.DataFrame(
        {"experiment_date": "20240626", "embryo_id": [s.rsplit("_t", 1)[0] for s in SNIPS], "snip_id": SNIPS}
    )
    rng = np.random.default_rng(0)
    for kind in ("mu", "sigma") if sigma else ("mu",):
        for i in range(D):
            frame[name(kind, i)] = rng.normal(size=len(SNIPS)).astype(np.float32)
    frame.to_csv(path)
    return frame


# --- unit: reading a z_mu-only store ---------------------------------------------------------------------------


@pytest.mark.parametrize("naming", ["flat", "bio_nuisance"])
def test_a_z_mu_only_store_reads_with_null_z_sigma(tmp_path, naming):
    written = mu_only_store(tmp_path / "morph_latents_20240626.csv", naming)
    table, style, skipped = read_latent_file(tmp_path / "morph_latents_20240626.csv", "20240626", expected_dim=D)
    assert style == naming and skipped == []
    assert table.column_names == ["snip_id", "experiment_date", "z_naming", *z_columns(D)]
    assert all(table[f"z_sigma_{i:02d}"].type == pa.float32() for i in range(D))
    assert all(table[f"z_sigma_{i:02d}"].null_count == len(SNIPS) for i in range(D))
    for i in (0, NUISANCE - 1, NUISANCE, D - 1):
        name = f"z_mu_{i:02d}" if naming == "flat" else bio_nuisance_name("mu", i, NUISANCE)
        assert np.allclose(table[f"z_mu_{i:02d}"].to_numpy(), written[name].to_numpy())


def test_a_store_with_z_sigma_and_no_z_mu_is_an_error(tmp_path):
    frame = mu_only_store(tmp_path / "m.csv", "flat")
    frame.rename(columns=lambda c: c.replace("z_mu_", "z_sigma_")).to_csv(tmp_path / "m.csv")
    with pytest.raises(
        InputError, match=r"has z_sigma columns but no z_mu columns\n  hint: the store needs the z_mu_\* means"
    ):
        read_latent_file(tmp_path / "m.csv", "20240626")


def test_a_partial_z_sigma_is_still_an_error(tmp_path):
    frame = mu_only_store(tmp_path / "m.csv", "flat", sigma=True)
    frame.drop(columns=["z_sigma_15"]).to_csv(tmp_path / "m.csv")
    with pytest.raises(InputError, match=r"z_sigma indices 0..14 \(15 columns\) but needs 0..15"):
        read_latent_file(tmp_path / "m.csv", "20240626")


def test_a_z_mu_only_store_of_another_width_is_refused(tmp_path):
    mu_only_store(tmp_path / "m.csv", "flat")
    with pytest.raises(InputError, match="has 16 latent dims, the model has 100"):
        read_latent_file(tmp_path / "m.csv", "20240626", expected_dim=100)


# --- unit: the publish check and the lake's width ----------------------------------------------------------------


def z_table(mu: list, sigma: list) -> pa.Table:
    return pa.table(
        {
            "snip_id": [f"s{i}" for i in range(len(mu))],
            "z_mu_00": pa.array(mu, pa.float32()),
            "z_sigma_00": pa.array(sigma, pa.float32()),
        }
    )


def test_publish_allows_null_z_sigma_but_not_nan_inf_or_null_z_mu():
    check_partition(z_table([0.5, 1.0], [None, None]), "p", "snip_id", expected_rows=2)
    with pytest.raises(MorphlakeError, match="column z_sigma_00 holds non-finite values"):
        check_partition(z_table([0.5, 1.0], [None, math.nan]), "p", "snip_id", expected_rows=2)
    with pytest.raises(MorphlakeError, match="column z_sigma_00 holds non-finite values"):
        check_partition(z_table([0.5, 1.0], [math.inf, 0.0]), "p", "snip_id", expected_rows=2)
    with pytest.raises(MorphlakeError, match="column z_mu_00 holds non-finite or missing values"):
        check_partition(z_table([0.5, None], [0.0, 0.0]), "p", "snip_id", expected_rows=2)


def write_partition(lake: Lake, experiment: str, dim: int) -> None:
    path = lake.partition_file("embeddings", model_name=MODEL, experiment_date=experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"snip_id": ["a"], **{c: pa.array([0.0], pa.float32()) for c in z_columns(dim)}}), path)


@pytest.mark.parametrize("where", ["lake", "sub/../lake"], ids=["plain", "dotdot"])
def test_the_lake_width_is_counted_and_must_agree(tmp_path, where):
    """Counted by DuckDB, which gives the files' paths normalised: a `..` in the lake's path still names the
    partitions (`--lake ../lake`)."""
    (tmp_path / "sub").mkdir()
    lake = Lake.at(tmp_path / where)
    assert model_latent_dim(lake, MODEL) is None
    write_partition(lake, "20240626", D)
    write_partition(lake, "20250101", D)
    assert model_latent_dim(lake, MODEL) == D
    write_partition(lake, "20250612", 100)
    with pytest.raises(
        MorphlakeError,
        match=(
            rf"the embeddings of model {MODEL} have different latent widths: 16 in embeddings/model_name={MODEL}/"
            rf"experiment_date=20240626, 100 in embeddings/model_name={MODEL}/experiment_date=20250612"
        ),
    ):
        model_latent_dim(lake, MODEL)


def test_a_file_that_is_not_parquet_among_the_embeddings_is_named(tmp_path):
    lake = Lake.at(tmp_path / "lake")
    write_partition(lake, "20240626", D)
    junk = lake.partition_dir("embeddings", model_name=MODEL, experiment_date="20240626") / "._part-00000.parquet"
    junk.write_bytes(b"\0\0")  # a Mac's resource fork, copied along
    with pytest.raises(MorphlakeError, match=f"cannot read the Parquet schemas of model {MODEL}'s embeddings") as info:
        model_latent_dim(lake, MODEL)
    assert "._part-00000.parquet" in info.value.hint


def test_a_plain_dbt_build_counts_the_width_by_the_same_rule(tmp_path):
    """dbt's lake_latent_dim() runs morphlake's query and gives its error, word for word (common.latent_width)."""
    from plain_dbt import plain_dbt

    lake = tmp_path / "it's [lab]"
    write_partition(Lake.at(lake), "20240626", D)
    vars_ = json.dumps({"model_name": MODEL, "latent_dim": "auto"})
    out = plain_dbt(lake, "run-operation", "lake_latent_dim", "--args", json.dumps({"model_name": MODEL}))
    assert out.returncode == 0, out.stdout[-2000:]
    write_partition(Lake.at(lake), "20250612", 100)
    out = plain_dbt(lake, "run", "--select", "stg_df02", "stg_embeddings", "int_df03", "--vars", vars_)
    assert out.returncode != 0
    with pytest.raises(MorphlakeError) as python_side:
        model_latent_dim(Lake.at(lake), MODEL)
    message = str(python_side.value).splitlines()[0]
    assert "16 in embeddings/model_name=playground16/experiment_date=20240626, 100 in" in message
    assert message in " ".join(out.stdout.split()) or message in out.stdout, out.stdout[-2000:]
    assert "hint: one model has one width" in out.stdout


def test_build_refuses_a_model_of_two_widths(tmp_path):
    lake = tmp_path / "lake"
    write_partition(Lake.at(lake), "20240626", D)
    write_partition(Lake.at(lake), "20250612", 100)
    result = Cli(lake)("build", "--lake", lake, "--model-name", MODEL)
    assert result.exit_code == 1
    assert f"error: the embeddings of model {MODEL} have different latent widths: 16 in" in result.stderr
    assert "hint: one model has one width" in result.stderr
    record = json.loads(next(lake.glob("runs/*-build-*.json")).read_text())
    assert record["outcome"] == "failed" and "different latent widths" in record["error"]


# --- functional: the real CLI on a 16-dim model with a z_mu-only store --------------------------------------------

MU_ONLY_EXP = "20250612_30hpf_ctrl_atf6"  # the demo's bio/nuisance-named store file (misses a time point per embryo)


@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> dict:
    """A data root of a 16-dim model whose store kept only z_mu, ingested, embedded and built (flat names)."""
    base = tmp_path_factory.mktemp("playground")
    root, lake = base / "root", base / "lake"
    make_demo_root(root, TINY, MODEL, latent_dim=D)
    store = latent_store_dir(root, MODEL)
    for path in store.glob("morph_latents_*.csv"):
        if path.name != f"morph_latents_{MU_ONLY_EXP}.csv":
            path.unlink()
    frame = pd.read_csv(store / f"morph_latents_{MU_ONLY_EXP}.csv")
    frame.drop(columns=[c for c in frame.columns if c.startswith("z_sigma_")]).to_csv(
        store / f"morph_latents_{MU_ONLY_EXP}.csv"
    )
    cli = Cli(lake)
    steps = {
        "ingest": cli("ingest", "--root", root, "--data-root", root, "--model-name", MODEL, "--lake", lake),
        "embed": cli("embed", "--model", root / "models" / "legacy" / MODEL / "encoder.onnx", "--lake", lake),
        "build": cli("build", "--model-name", MODEL, "--z-schema", "flat", "--lake", lake),
    }
    return {"root": root, "lake": lake, "cli": cli, "steps": steps, "store_snips": frame["snip_id"].tolist()}


def z_names(names: list[str]) -> list[str]:
    return [n for n in names if Z_COLUMN.match(n)]


def query(lake: Path, sql: str):
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_step_succeeds(playground):
    for name, result in playground["steps"].items():
        assert result.exit_code == 0, (name, result.output)


def test_the_lake_holds_16_z_mu_and_16_z_sigma(playground):
    parts = sorted((playground["lake"] / "embeddings" / f"model_name={MODEL}").glob("*/part-00000.parquet"))
    assert len(parts) == 3
    for part in parts:
        names = pq.read_schema(part).names
        assert z_names(names) == z_columns(D)


def test_store_rows_have_null_z_sigma_and_onnx_rows_do_not(playground):
    part = (
        playground["lake"]
        / "embeddings"
        / f"model_name={MODEL}"
        / f"experiment_date={MU_ONLY_EXP}"
        / "part-00000.parquet"
    )
    table = pq.read_table(part, partitioning=None).to_pandas()
    legacy, onnx = table[table["source"] == "legacy_csv"], table[table["source"] == "onnx"]
    assert sorted(legacy["snip_id"]) == sorted(playground["store_snips"]) and len(onnx) > 0
    assert legacy[[f"z_sigma_{i:02d}" for i in range(D)]].isna().all().all()
    assert legacy[[f"z_mu_{i:02d}" for i in range(D)]].notna().all().all()
    assert np.isfinite(onnx[[f"z_sigma_{i:02d}" for i in range(D)]].to_numpy()).all()


def test_df03_z_mu_is_float16_and_vector_sql_works(playground):
    lake = playground["lake"]
    assert query(lake, "select distinct typeof(z_mu) from df03") == [("FLOAT[16]",)]
    sims = query(lake, "select array_cosine_similarity(z_mu, z_mu) from df03")
    assert len(sims) == 18 and all(s[0] == pytest.approx(1.0) for s in sims)
    cols = [r[0] for r in query(lake, "select column_name from (describe df03)")]
    assert z_names(cols) == z_columns(D)[:D] and "z_mu" in cols  # z_mu only, as the legacy df03
    sigma = [r[0] for r in query(lake, "select column_name from (describe df03_z_sigma)")]
    assert z_names(sigma) == z_columns(D)[D:]


def test_the_build_passes_its_dbt_tests_and_records_the_width(playground):
    lake = playground["lake"]
    record = json.loads(sorted(lake.glob("runs/*-build-*.json"))[-1].read_text())
    assert record["outcome"] == "complete" and not record["dbt"]["failures"]
    assert record["params"]["vars"]["latent_dim"] == {MODEL: D}
    assert record["params"]["vars"]["zn_frac"] == {MODEL: 0.2}
    assert record["latent"]["latent_dim_from"] == "embeddings"
    assert record["latent"]["zn_frac_from"].endswith(f"{MODEL}/model_config.json")


def test_the_export_has_16_z_mu_columns(playground):
    export = playground["lake"] / "exports" / "df03"
    table = pq.read_table(export, partitioning=None)
    assert table.num_rows == 18
    assert {"z_mu_00", "z_mu_15"} <= set(table.column_names)
    assert not {"z_mu_16", "z_mu", "z_sigma_00"} & set(table.column_names)
    stored = table.filter(pc.equal(table["embedding_source"], "legacy_csv"))
    assert stored.num_rows == len(playground["store_snips"])
    # the store kept only z_mu: its rows' log-variances are null, one join away
    nulls = query(
        playground["lake"],
        "select count(*), count(s.z_sigma_00) from df03 d join df03_z_sigma s "
        "using (snip_id, experiment_date, embedding_run_id) "
        "where d.embedding_source = 'legacy_csv'",
    )
    assert nulls == [(stored.num_rows, 0)]


def test_bio_nuisance_names_follow_the_width(playground):
    lake, cli = playground["lake"], playground["cli"]
    result = cli("build", "--model-name", MODEL, "--z-schema", "bio_nuisance", "--lake", lake)
    assert result.exit_code == 0, result.output
    cols = [r[0] for r in query(lake, "select column_name from (describe df03)")]
    expected = [bio_nuisance_name(kind, i, NUISANCE) for kind in ("mu", "sigma") for i in range(D)]
    assert z_names(cols) == expected[:D]
    sigma = [r[0] for r in query(lake, "select column_name from (describe df03_z_sigma)")]
    assert z_names(sigma) == expected[D:]
    assert expected[:4] == ["z_mu_n_00", "z_mu_n_01", "z_mu_n_02", "z_mu_b_03"] and "z_mu_b_15" in cols
    names = pq.read_schema(next((lake / "exports" / "df03").glob("*/*.parquet"))).names
    assert "z_mu_n_02" in names and "z_mu_b_03" in names and "z_mu_b_16" not in names
