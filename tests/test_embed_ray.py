"""`morphlake embed --engine ray` on the session's local Ray instance: the same lake as the local engine, value
for value; incremental runs, --experiments, strict and partial runs as locally; CUDA refused without a GPU."""

import dataclasses
import json
import shutil
import sys

import images
import pyarrow.parquet as pq
import pytest
from conftest import lake_files

from morphlake import DEFAULT_MODEL_NAME
from morphlake.embed.errors import EncoderFileError
from morphlake.ingest.ledger import SNIP_SUBDIR
from morphlake.steps.embed.options import GPU_DECODE_ON_CPU

EXP = "20250305_24hpf_lmx1b"  # the experiment the legacy store does not cover
EXP_PART = f"embeddings/model_name={DEFAULT_MODEL_NAME}/experiment_date={EXP}"


def records(lake, command="embed"):
    paths = sorted(p for p in (lake / "runs").glob(f"*-{command}-*.json") if not p.name.endswith(".partial.json"))
    return [json.loads(p.read_text()) for p in paths]


def partitions(lake):
    """Every embeddings partition without its run ids (the one column that differs between runs)."""
    return {
        str(p.relative_to(lake)): pq.read_table(p, partitioning=None).drop_columns(["run_id"])
        for p in sorted((lake / "embeddings").rglob("*.parquet"))
    }


@pytest.mark.parametrize(
    "options",
    [[], pytest.param(["--decode", "reduced", "--precision", "int8"], marks=pytest.mark.slow), ["--decode", "gpu"]],
    ids=["fp32", "reduced-int8", "gpu-decode"],
)
def test_ray_engine_writes_the_local_engines_lake(
    cli, ingested, encoder_path, tmp_path, ray_address, options, monkeypatch
):
    """--decode gpu on nvImageCodec's CPU backend (tests/test_gpu_decode.py): the actors decode, the check runs in a
    task where they run."""
    if "gpu" in options:
        monkeypatch.setenv(GPU_DECODE_ON_CPU, "1")
    other = tmp_path / "lake-ray"
    shutil.copytree(ingested, other)
    common = ["embed", "--model", encoder_path, "--batch-size", "3", *options]
    assert cli(*common, "--lake", ingested).exit_code == 0
    result = cli(*common, "--lake", other, "--engine", "ray")
    assert result.exit_code == 0, result.output
    want, got = partitions(ingested), partitions(other)
    assert got.keys() == want.keys() and len(want) == 3
    for key in want:
        assert got[key].equals(want[key]), key  # embed_options and provenance too
    local, ray = records(ingested)[-1], records(other)[-1]
    for record in (local, ray):  # each lake keeps its own --precision copy: all but its path agree
        record["embed_options"]["encoder_run"].pop("path")
    assert ray["embed_options"] == local["embed_options"] and ray["encoder"] == local["encoder"]
    assert local["engine"]["name"] == "local"
    engine = ray["engine"]
    assert engine["name"] == "ray" and engine["nodes"] == 1 and engine["device"] == "cpu"
    assert engine["actor_pool"] == 2 and 1 <= engine["actors"] <= 2 and engine["providers"] == ["CPUExecutionProvider"]
    assert ray["counts"]["embedded"] == 8 and ray["counts"]["images_per_s"] > 0
    if "gpu" in options:
        assert engine["jpeg_decode"] == {"by": "nvImageCodec", "on": "cpu"}
        assert ray["embed_options"]["decode_check"]["snips"] == 8  # and equal to the local engine's (above)


def test_ray_engine_is_incremental_per_experiment(cli, ingested, encoder_path, ray_address):
    ray = ["embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray"]
    first = cli(*ray, "--experiments", EXP)
    assert first.exit_code == 0, first.output
    assert list(records(ingested)[-1]["experiments_to_embed"]) == [EXP]
    assert cli(*ray).exit_code == 0
    assert EXP not in records(ingested)[-1]["experiments_to_embed"]  # the experiment done first is current
    before = lake_files(ingested)
    again = cli(*ray)
    assert again.exit_code == 0 and "0 partition(s) written" in again.output
    assert records(ingested)[-1]["engine"] == {"name": "ray", "nodes": 0, "actors": 0}  # no Ray for nothing
    assert lake_files(ingested) == before


def test_ray_engine_fails_strict_and_skips_with_allow_partial_as_locally(cli, root, lake, encoder_path, ray_address):
    snip = f"{EXP}_A03_e01_t0002"
    path = images.truncated_jpeg(root / SNIP_SUBDIR / EXP / f"{snip}.jpg")
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    strict = cli("embed", "--model", encoder_path, "--lake", lake, "--engine", "ray")
    assert strict.exit_code == 1
    assert f"cannot embed snip {snip} ({path})" in strict.stderr and "--allow-partial" in strict.stderr
    assert not (lake / EXP_PART).exists()
    partial = cli("embed", "--model", encoder_path, "--lake", lake, "--engine", "ray", "--allow-partial")
    assert partial.exit_code == 2
    skipped = json.loads(open(records(lake)[-1]["partial_manifest"]).read())["skipped"]
    assert [(s["item"], s["where"]) for s in skipped] == [(snip, str(path))]
    assert "damaged or truncated" in skipped[0]["reason"]


def test_a_second_writer_is_refused_by_the_lake_lock(cli, ingested, encoder_path):
    from test_ingest_cli import hold_lock_in_another_process

    holder = hold_lock_in_another_process(ingested, "embed", "run-xyz")
    try:
        result = cli("embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray")
        assert result.exit_code == 1 and f"pid {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not (ingested / EXP_PART).exists()


def test_cuda_on_a_cluster_without_gpu_is_refused(cli, ingested, encoder_path, ray_address):
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray", "--device", "cuda")
    assert result.exit_code == 1
    assert "device cuda was asked for, but the Ray instance this process already joined has no GPU" in result.stderr
    assert "--device cpu" in result.stderr
    assert not (ingested / EXP_PART).exists() and records(ingested)[-1]["outcome"] == "failed"


def test_an_actor_refuses_another_file_at_the_models_path(encoder_path, ray_address):
    from morphlake.steps.embed.ray_engine import EncoderActor

    with pytest.raises(EncoderFileError, match="is not the encoder the driver loaded"):
        EncoderActor(path=str(encoder_path), sha256="0" * 64, device="cpu", threads=1, batch_size=4)


def test_ray_address_needs_the_ray_engine(cli, ingested, encoder_path):
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--ray-address", "head:6379")
    assert result.exit_code == 1 and "add --engine ray" in result.stderr


def test_ray_engine_without_the_extra_says_how_to_install_it(cli, ingested, encoder_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as where the extra is missing
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray")
    assert result.exit_code == 1
    assert "install the ray extra: pip install 'ray[data]<3,>=2.60'" in result.stderr
    assert not (ingested / EXP_PART).exists()


@pytest.mark.slow  # a Ray instance of its own takes ~10 s to start here
def test_ray_engine_starts_and_stops_its_own_local_instance(cli, ingested, encoder_path):
    pytest.importorskip("ray")
    done = cli.subprocess("-q", "embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray")
    assert done.returncode == 0, done.stderr
    engine = records(ingested)[-1]["engine"]
    assert engine["cluster"].startswith("a local Ray instance") and engine["actors"] >= 1
    assert (ingested / EXP_PART).is_dir()


def test_an_error_in_an_actor_reaches_the_driver_as_the_named_error(ingested, encoder_path, ray_address):
    from morphlake.embed import Encoder
    from morphlake.lake.layout import Lake
    from morphlake.steps.embed.options import EmbedOptions
    from morphlake.steps.embed.plan import plan_embedding
    from morphlake.steps.embed.ray_engine import RayRun, actor_arguments, stream

    encoder = Encoder(encoder_path, device="cpu")
    plans = plan_embedding(Lake.at(ingested), encoder.info, None, value=None)
    # as if the nodes saw another file at the model's path
    encoder.info = dataclasses.replace(encoder.info, sha256="0" * 64)
    run = RayRun("the test's Ray instance", "cpu", {"num_cpus": 1}, actors=1, resources={"CPU": 2}, batch_size=64)
    with pytest.raises(EncoderFileError, match="is not the encoder the driver loaded") as raised:
        options = EmbedOptions(engine="ray")
        list(stream(plans, options, run, actor=actor_arguments(encoder, options, run)))
    assert "keep the model and the lake on storage every node sees" in raised.value.hint


def test_a_successful_run_prints_no_error_line_from_ray(cli, ingested, encoder_path, ray_address, capfd):
    """Ray's core worker logs an error-level line for each pool actor created with object references as constructor
    arguments (what Ray Data does, ray-project/ray#57733): a false alarm here, kept off stderr (filtered at the file
    descriptor, where Ray's C++ writes)."""
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--engine", "ray")
    assert result.exit_code == 0, result.output
    err = capfd.readouterr().err
    assert "constructor arguments in the object store" not in err and " E " not in err


def test_the_stderr_filter_drops_only_the_matching_lines(capfd):
    import os
    import re

    from morphlake.steps.embed.ray_engine import stderr_without

    with stderr_without(re.compile(rb"noise")):
        os.write(2, b"keep 1\nsome noise here\nkeep 2")  # the last line unfinished: still passed on
    os.write(2, b"\nnoise after\n")
    assert capfd.readouterr().err == "keep 1\nkeep 2\nnoise after\n"
