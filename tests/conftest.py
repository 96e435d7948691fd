"""Shared fixtures: a tiny demo data root, a lake in tmp_path, and ways to run the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from morphlake import DEFAULT_MODEL_NAME
from morphlake.cli import main
from morphlake.demo.data_root import DemoSpec, make_demo_root

TINY = DemoSpec(seed=0, embryos=2, timepoints=3, experiments=3)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """Made once per session; tests copy it (never modify it)."""
    root = tmp_path_factory.mktemp("template") / "root"
    make_demo_root(root, TINY, DEFAULT_MODEL_NAME)
    return root


@pytest.fixture
def root(demo_template, tmp_path) -> Path:
    """A private copy of the tiny demo data root."""
    dest = tmp_path / "root"
    shutil.copytree(demo_template, dest, symlinks=True)
    return dest


@pytest.fixture
def lake(tmp_path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def encoder_path(root) -> Path:
    return root / "models" / "legacy" / DEFAULT_MODEL_NAME / "encoder.onnx"


class Cli:
    """Runs `morphlake` in-process through click (fast) or as a real subprocess."""

    def __init__(self, lake: Path):
        self.lake = lake

    def __call__(self, *args: str, env: dict | None = None):
        # result.output holds stdout and stderr interleaved; result.stderr only the latter.
        return CliRunner().invoke(main, [*map(str, args)], env=env, catch_exceptions=False)

    def subprocess(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "morphlake.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )


@pytest.fixture
def cli(lake) -> Cli:
    return Cli(lake)


@pytest.fixture
def ingested(cli, root, lake):
    """A lake with the tiny demo root ingested."""
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 0, result.output
    return lake


@pytest.fixture(scope="session")
def embedded_template(demo_template, tmp_path_factory) -> Path:
    """A lake with the tiny demo ingested and embedded (no warehouse: views hold absolute paths)."""
    lake = tmp_path_factory.mktemp("embedded") / "lake"
    cli = Cli(lake)
    assert cli("ingest", "--root", demo_template, "--lake", lake).exit_code == 0
    encoder = demo_template / "models" / "legacy" / DEFAULT_MODEL_NAME / "encoder.onnx"
    assert cli("embed", "--model", encoder, "--lake", lake).exit_code == 0
    return lake


@pytest.fixture
def embedded_lake(embedded_template, tmp_path) -> Path:
    dest = tmp_path / "lake"
    shutil.copytree(embedded_template, dest)
    return dest


def lake_files(lake: Path) -> dict[str, bytes]:
    """Every Parquet file in the lake with its bytes (to compare states)."""
    return {
        str(p.relative_to(lake)): p.read_bytes()
        for p in sorted(lake.rglob("*.parquet"))
        if not str(p.relative_to(lake)).startswith(".")
    }


@pytest.fixture(scope="session")
def ray_address() -> str:
    """One small local Ray instance for the whole session (skipped without the ray extra): in-process runs
    use it as it is, subprocesses join it with --ray-address."""
    ray = pytest.importorskip("ray")
    import logging

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 2**20,
        logging_level=logging.ERROR,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
