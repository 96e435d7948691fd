"""The benchmark scripts run end to end at a tiny size (no timing is asserted: benchmarks measure, tests check)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(name: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_embed_benchmark_reports_bound_options_drift_and_sweeps():
    pytest.importorskip("torch")
    out = bench("embed", "--snips", "128", "--rounds", "1")
    for line in (
        "shared-core bound",
        "pipeline, legacy-faithful",
        "pipeline --decode reduced --precision int8",
        "legacy PyTorch path",
        "max |dz|",
        "batch-size sweep",
        "worker / thread sweep",
    ):
        assert line in out, out
    legacy_drift = next(line for line in out.splitlines() if line.strip().startswith("legacy PyTorch path (first"))
    assert float(legacy_drift.split()[-2]) < 1e-4, legacy_drift  # the same weights give the same embeddings


def test_df03_benchmark_checks_both_ways_give_the_same_rows():
    out = bench("df03", "--snips", "3000", "--demo-rounds", "1")
    assert "pandas read_csv + merge + to_csv" in out and "build, one new 10k experiment" in out, out
    assert "morphlake build --full" in out, out
    assert "where the first build's time went, 3,000 snips" in out and "of which dbt: import and parse" in out, out
    assert not list(ROOT.glob(".bench-*")), "the benchmark left its temporary folder"


def test_export_writers_benchmark_runs_every_writer_and_both_exports():
    out = bench("export_writers", "--rows", "2000", "--lake-snips", "2000")
    for writer in ("duckdb COPY PARTITION_BY", "pyarrow write_table, every core", "polars write_parquet"):
        assert f"226 columns: {writer}" in out and f"126 columns: {writer}" in out, out
    assert "physical bounds: this disk writes" in out and "morphlake (join into Arrow runs" in out, out
    assert not list(ROOT.glob(".bench-*")), "the benchmark left its temporary folder"


def test_scale_benchmark_runs_the_real_cli():
    out = bench("scale", "--small", "60", "--large", "120", "--per-experiment", "30")
    assert "peak memory, large - small" in out and "120 snips" in out, out


@pytest.mark.slow  # ~25 s: four real embed runs, two of them Ray drivers; the ray engine itself is tested in CI
def test_engines_benchmark_runs_both_engines_at_both_sizes(ray_address):
    sizes = ["--small", "40", "--large", "80", "--per-experiment", "20", "--pool", "20"]
    out = bench("engines", *sizes, "--rounds", "1", "--ray-address", ray_address)
    assert "40 snips" in out and "80 snips" in out and "ray / local img/s at 80 snips" in out, out
    assert "ray driver peak memory, 80 - 40 snips" in out and "writer" in out, out
    assert not list(ROOT.glob(".bench-*")), "the benchmark left its temporary folder"


def test_command_benchmark_runs_the_real_cli_the_pipeline_and_the_legacy_script():
    pytest.importorskip("torch")
    sizes = ["--snips", "96", "--per-experiment", "32", "--pool", "48", "--batch-size", "16"]
    out = bench("command", *sizes, "--rounds", "1", "--min-cosine", "0.9")
    for line in ("shared-core bound", "legacy script (PyTorch, pandas)", "where the command's wall time goes"):
        assert line in out, out
    assert "morphlake embed --decode reduced --precision int8" in out and "loop / pipeline" in out, out
    assert not list(ROOT.glob(".bench-*")), "the benchmark left its temporary folder"


def test_decode_benchmark_compares_every_decoder_with_the_legacy_one():
    out = bench("decode", "--snips", "8", "--rounds", "1")
    legacy = [line for line in out.splitlines() if "(legacy)" in line]
    assert len(legacy) == 2 and all(line.split()[-3:] == ["0", "0.000", "1.000000"] for line in legacy), out
    assert "Pillow draft, DCT 1/2 (--decode reduced)" in out, out


def test_the_legacy_script_loads_only_what_the_labs_script_loads():
    """Its whole-command time is the baseline: it must not pay for morphlake's own libraries."""
    pytest.importorskip("torch")
    script = (
        "import sys, benchmarks.legacy_embed_cli as cli, benchmarks.legacy_embed, morphlake.embed.torch_reference\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'polars', 'duckdb') if m in sys.modules))\n"
        "from morphlake.lake.data_root import DF02_RELPATH; from morphlake.ingest.ledger import SNIP_SUBDIR\n"
        "assert (cli.DF02_RELPATH, str(cli.SNIP_SUBDIR)) == (DF02_RELPATH, str(SNIP_SUBDIR))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_gpu_check_runs_in_smoke_mode_where_no_gpu_is(tmp_path):
    """`python -m benchmarks.gpu` is the one command a GPU host runs (issue 25); its smoke mode runs every part on
    the CPU, so the check cannot rot between GPU sessions."""
    import json

    pytest.importorskip("torch")
    out = bench("gpu", "--smoke", "--out", str(tmp_path))
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert (tmp_path / "gpu.md").read_text() in out + "\n"
    assert result["mode"] == "smoke" and result["host"]["cores"] >= 1
    check = result["correctness"]
    assert check["fp32_vs_cpu"]["min_cosine"] > 0.99999 and check["fp16_vs_fp32"]["min_cosine"] > 0.9999
    assert {(r["precision"], r["batch"]) for r in result["encoder"]} == {("fp32", 8), ("fp16", 8)}
    assert {r["decode"] for r in result["decode"]} == {"legacy", "reduced"}
    assert [r["workers"] for r in result["legacy"]][0] == 2
    gpu = result["gpu_decode"]  # nvImageCodec's CPU backend here: the legacy pixels, through the GPU's code
    assert gpu["measured"] and gpu["device"] == "cpu" and gpu["img_s"] > 0 and gpu["vs_legacy_pixels"]["max_abs"] == 0
    runs = {run["options"]: run for run in result["commands"]}
    assert set(runs) == {
        "legacy-faithful",
        "--precision fp16",
        "--decode reduced --precision fp16",
        "--decode gpu",
        "--decode gpu --precision fp16",
    }
    assert runs["--decode gpu"]["engine"]["jpeg_decode"]["on"] == "cpu"
    assert all(run["provider"] == "CPUExecutionProvider" and run["img_s"] > 0 for run in runs.values())
    assert runs["--precision fp16"]["engine"]["batch_size"] == 64  # the CPU's batch: no GPU here
