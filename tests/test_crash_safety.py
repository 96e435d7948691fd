"""Fault injection: real `morphlake` subprocesses killed (exit 137, no cleanup) at named points and at
random moments, then checked: every file reads, no partition is torn or doubled, the lock is free, no
half-written file is left, and the next run ends where an uninterrupted run ends.

CI runs the points marked `quick` and one killed Ray worker; `pytest -m slow tests/test_crash_safety.py` runs
every point (the ray engine's on the session's local Ray instance, skipped without the ray extra).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from morphlake import DEFAULT_MODEL_NAME

ENCODER = Path("models/legacy") / DEFAULT_MODEL_NAME / "encoder.onnx"
DF03 = Path("metadata/combined_metadata_files/embryo_metadata_df03.csv")


def command_args(command: str, root: Path, lake: Path, ray_address: str | None = None) -> list[str]:
    if command == "build":  # a full build over a published one: dbt, export, switch all run
        return ["build", "--lake", str(lake), "--full"]
    if command == "build-incremental":  # one experiment changed: export, links, replayed tests, switch
        return ["build", "--lake", str(lake)]
    if command == "ingest":
        return ["ingest", "--root", str(root), "--lake", str(lake)]
    if command == "embed":
        return ["embed", "--model", str(root / ENCODER), "--lake", str(lake), "--batch-size", "4"]
    if command == "embed-ray":  # the session's Ray instance: a killed driver's workers die with its job
        return [
            *command_args("embed", root, lake),
            "--batch-size",
            "2",
            "--engine",
            "ray",
            "--ray-address",
            ray_address,
        ]
    return [
        "build06",
        "--root",
        str(root),
        "--data-root",
        str(root),
        "--lake",
        str(lake),
        "--generate-missing-latents",
        "--export-analysis-copies",
        "--overwrite",
        "--allow-partial",
    ]


def run(args: list[str], crash: str | None = None, kill_after: float | None = None, once: Path | None = None) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MORPHLAKE_CRASH_AT", None)
    env.pop("MORPHLAKE_CRASH_ONCE", None)
    if crash:
        env["MORPHLAKE_CRASH_AT"] = crash
    if once:
        env["MORPHLAKE_CRASH_ONCE"] = str(once)
    proc = subprocess.Popen(
        [sys.executable, "-m", "morphlake.cli", "-q", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    run.last_output = out + err
    return proc.returncode


def lake_state(lake: Path) -> dict[str, pl.DataFrame]:
    """Every published table partition, read back (run ids, paths and mtimes dropped: they differ between copies)."""
    state = {}
    export = lake / "exports" / "df03"  # a link to the current build: rglob does not follow it
    for path in sorted([*lake.rglob("*.parquet"), *export.glob("*/*.parquet")]):
        rel = path.relative_to(lake)
        if rel.parts[0].startswith(".") or rel.parts[0] == "builds":  # the current build is read via exports/df03
            continue
        frame = pl.from_arrow(pq.read_table(path, partitioning=None))  # raises on a torn file
        volatile = [c for c in frame.columns if c.endswith("run_id") or c in ("mtime_ns", "path", "z_mu")]
        state[str(rel)] = frame.drop(volatile)  # z_mu repeats the z_mu_NN columns, compared with a tolerance
    return state


def check_invariants(lake: Path, root: Path) -> None:
    for table in ("raw/df02", "raw/snips", "raw/train", "embeddings", "exports/df03"):
        base = lake / table
        for folder in (p for p in base.rglob("*") if p.is_dir()) if base.is_dir() else []:
            files = [f.name for f in folder.iterdir() if f.is_file()]
            assert files in ([], ["part-00000.parquet"]), (folder, files)  # whole partitions, one file each
    state = lake_state(lake)
    for prefix in ("raw/df02/", "raw/snips/", f"embeddings/model_name={DEFAULT_MODEL_NAME}/"):
        frames = [f for k, f in state.items() if k.startswith(prefix)]
        if frames:
            ids = pl.concat([f.select("snip_id") for f in frames])["snip_id"]
            assert ids.is_unique().all(), prefix  # no duplicated rows across partitions
    leftovers = [p for p in root.rglob(".*.tmp*")]
    assert leftovers == [], leftovers
    check_pair(lake)


def check_pair(lake: Path) -> None:
    """The warehouse and the df03 export are one build's: df03 reads the current build's export, row for row."""
    if not (lake / "warehouse.duckdb").exists():
        assert not (lake / "exports" / "df03").exists()
        return
    current = os.readlink(lake / "builds" / "current")
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        view = con.execute("select sql from duckdb_views() where view_name = 'df03'").fetchone()[0]
        rows = con.execute("select count(*) from df03").fetchone()[0]
    assert f"/builds/{current}/**/*.parquet" in view  # its export and the schema file beside it
    exported = sum(pq.ParquetFile(f).metadata.num_rows for f in (lake / "exports" / "df03").glob("*/*.parquet"))
    assert rows == exported


def assert_same_lake(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        a, b = got[key], want[key]
        assert a.columns == b.columns and a.height == b.height, key
        zs = [c for c in a.columns if c.startswith(("z_mu_", "z_sigma_"))]
        others = [c for c in a.columns if c not in zs]
        assert a.select(others).equals(b.select(others)), key
        if zs:  # re-embedding in other batch compositions agrees to 1e-5
            diff = a.select(zs).to_numpy() - b.select(zs).to_numpy()
            assert abs(diff).max() <= 1e-5, key


# build06 completes: it generates the tiny root's missing store file and (--overwrite) appends the gaps of the
# partially covered one (csv:1 and csv:2 are those two store writes)
EXPECTED = {"ingest": 0, "embed": 0, "embed-ray": 0, "build06": 0, "build": 0, "build-incremental": 0}
BUILDS = ("build", "build-incremental")  # over a lake with a published build
# the ray engine must leave the local engine's lake, value for value
REFERENCE = {"embed-ray": "embed"}


def prepare(command: str, template: Path, workdir: Path) -> tuple[Path, Path]:
    root, lake = workdir / "root", workdir / "lake"
    shutil.copytree(template, root, symlinks=True)
    if command.startswith("embed") or command in BUILDS:
        assert run(command_args("ingest", root, lake)) == 0, run.last_output
    if command in BUILDS:
        assert run(command_args("embed", root, lake)) == 0, run.last_output
        assert run(["build", "--lake", str(lake)]) == 0, run.last_output  # the published pair to keep
        (lake / "raw/df02/experiment_date=20240626/part-00000.parquet").touch()  # and a change to build
    return root, lake


@pytest.fixture(scope="module")
def reference(demo_template, tmp_path_factory):
    """The lake (and legacy files) each command leaves when nothing goes wrong."""
    refs = {}
    for command in ("ingest", "embed", "build06", "build", "build-incremental"):
        root, lake = prepare(command, demo_template, tmp_path_factory.mktemp(f"ref-{command}"))
        assert run(command_args(command, root, lake)) == EXPECTED[command], run.last_output
        refs[command] = (lake_state(lake), (root / DF03).read_bytes() if command == "build06" else None)
    return refs


def point(command, crash=None, kill_after=None, quick=False):
    marks = [] if quick else [pytest.mark.slow]
    name = crash or f"sigkill-after-{kill_after}s"
    return pytest.param(command, crash, kill_after, marks=marks, id=f"{command}-{name}")


POINTS = [
    point("ingest", "stage:1", quick=True),
    point("ingest", "stage:5"),
    point("ingest", "stage:9"),
    point("ingest", "before-publish"),
    point("ingest", "publish:1"),
    point("ingest", "publish:4"),
    point("ingest", "publish:9"),
    point("ingest", "after-publish"),
    point("ingest", kill_after=0.8),
    point("ingest", kill_after=1.2),
    point("ingest", kill_after=1.6),
    point("embed", "embed-batch:1"),
    point("embed", "embed-batch:2"),
    point("embed", "stage:1"),
    point("embed", "stage:2"),
    point("embed", "before-publish"),
    point("embed", "publish:1", quick=True),
    point("embed", "publish:2"),
    point("embed", "after-publish"),
    point("embed", kill_after=1.0),
    point("embed", kill_after=1.5),
    point("embed", kill_after=2.0),
    point("embed-ray", "embed-batch:2"),  # the driver dies while results stream back
    point("embed-ray", "embed-batch:1"),
    point("embed-ray", "stage:2"),
    point("embed-ray", "before-publish"),
    point("embed-ray", "publish:1"),
    point("embed-ray", kill_after=3.0),
    point("embed-ray", kill_after=4.5),
    point("embed-ray", kill_after=6.0),
    point("build06", "stage:3"),
    point("build06", "publish:2"),
    point("build06", "embed-batch:1"),
    point("build06", "dbt_build-start"),
    point("build06", "export-run"),
    point("build06", "build-switch"),
    point("build06", "csv:1"),
    point("build06", "csv:2"),
    point("build06", kill_after=3.0),
    point("build06", kill_after=5.0),
    point("build06", kill_after=7.0),
    point("build", "dbt_build-start"),
    point("build", "export-run"),
    point("build", "dbt_df03-start"),
    point("build", "build-ready"),
    point("build", "build-switch", quick=True),
    point("build", "build-switched"),
    point("build", kill_after=4.0),
    point("build-incremental", "export-run"),
    point("build-incremental", "build-ready"),
    point("build-incremental", "build-switch", quick=True),
    point("build-incremental", "build-switched"),
]


@pytest.mark.parametrize("command, crash, kill_after", POINTS)
def test_killed_run_leaves_a_readable_lake_and_the_next_run_finishes_it(
    command, crash, kill_after, demo_template, reference, tmp_path, request
):
    root, lake = prepare(command, demo_template, tmp_path)
    address = request.getfixturevalue("ray_address") if command == "embed-ray" else None
    args = command_args(command, root, lake, address)
    code = run(args, crash=crash, kill_after=kill_after)
    if crash:
        assert code == 137, run.last_output  # the point was reached and the process died there
    else:
        assert code in (EXPECTED[command], -signal.SIGKILL), run.last_output
    check_invariants(lake, root)
    assert run(args) == EXPECTED[command], run.last_output  # the lock of the dead process does not block
    check_invariants(lake, root)
    want_lake, want_df03 = reference[REFERENCE.get(command, command)]
    assert_same_lake(lake_state(lake), want_lake)
    assert not (lake / ".staging").exists()
    if (lake / "builds").exists():  # the build a killed run left is gone: the current one and the one before it
        assert len([p for p in (lake / "builds").iterdir() if p.name != "current"]) <= 2
    if want_df03 is not None:
        assert (root / DF03).read_bytes() == want_df03


@pytest.mark.parametrize(
    "crash",
    [
        pytest.param("ray-encode:2", id="actor-killed-in-its-second-batch"),  # in CI
        pytest.param("ray-encode:1", id="actor-killed-in-its-first-batch", marks=pytest.mark.slow),
        pytest.param("ray-decode:3", id="actor-killed-while-decoding", marks=pytest.mark.slow),
    ],
)
def test_a_killed_ray_worker_is_retried_and_the_run_completes(crash, demo_template, reference, tmp_path, ray_address):
    root, lake = prepare("embed-ray", demo_template, tmp_path)
    once = tmp_path / "crashed"  # one worker dies once (as after a node's hiccup); its restart goes on
    assert run(command_args("embed-ray", root, lake, ray_address), crash=crash, once=once) == 0, run.last_output
    assert once.exists()  # the worker did die
    check_invariants(lake, root)
    assert_same_lake(lake_state(lake), reference["embed"][0])
