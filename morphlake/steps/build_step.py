"""`morphlake build`: run dbt build in-process on the lake's warehouse, under the lake lock, with a run record."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from morphlake.errors import MorphlakeError
from morphlake.ingest.naming import check_segment
from morphlake.lake.data_root import DataRoot
from morphlake.lake.embeddings_table import model_latent_dim
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import Lake
from morphlake.steps.lifecycle import RunResult, lake_run

log = logging.getLogger("morphlake")
Z_SCHEMAS = ("auto", "flat", "bio_nuisance")
LEGACY_LATENT_DIM, LEGACY_ZN_FRAC = 100, 0.2  # the legacy encoder's, for a model with no embeddings / no config


def find_project(project_dir: Path | None = None) -> Path:
    """The dbt project: --project-dir, $MORPHLAKE_DBT_PROJECT, dbt_project/ beside the packages (an editable
    install from a checkout), or dbt_project/ in the current folder."""
    candidates = [
        project_dir,
        os.environ.get("MORPHLAKE_DBT_PROJECT"),
        Path(__file__).resolve().parents[2] / "dbt_project",
        Path.cwd() / "dbt_project",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "dbt_project.yml").is_file():
            return Path(candidate).resolve()
    raise MorphlakeError(
        "cannot find the dbt project (dbt_project/dbt_project.yml)",
        "install morphlake editable from its checkout (pip install -e), run from the checkout, "
        "or pass --project-dir / set MORPHLAKE_DBT_PROJECT to its dbt_project folder",
    )


@contextmanager
def _environment(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stage_warehouse(lake: Lake, staging: Path) -> Path:
    """A private copy of the published warehouse (or a new file) for dbt to build into."""
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / "warehouse.duckdb"
    if lake.warehouse.is_file():
        shutil.copy2(lake.warehouse, staged)
    return staged


def release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in-process, so other readers (and processes) can open it."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    if env is not None:
        env.close()
    DuckDBConnectionManager.close_all_connections()


def dbt_vars(model_name: str, z_schema: str, coverage_threshold: float | None, coverage_severity: str | None) -> dict:
    if z_schema not in Z_SCHEMAS:
        raise MorphlakeError(f"--z-schema {z_schema!r} is not known", f"choose one of: {', '.join(Z_SCHEMAS)}")
    values = {"model_name": check_segment("model name", model_name), "z_schema": z_schema}
    if coverage_threshold is not None:
        if not 0 <= coverage_threshold <= 1:
            raise MorphlakeError(f"--coverage-threshold {coverage_threshold} is not a share", "use a value from 0 to 1")
        values["coverage_threshold"] = coverage_threshold
    if coverage_severity is not None:
        values["coverage_severity"] = coverage_severity
    return values


def shape_vars(model_name: str, shape: dict) -> dict:
    """latent_dim and zn_frac as dbt vars keyed by model ({model: value}): a width belongs to one model, and
    dbt's unit tests switch var model_name to a test model of the legacy width (dbt_project.yml says more)."""
    return {"latent_dim": {model_name: shape["latent_dim"]}, "zn_frac": {model_name: shape["zn_frac"]}}


def config_zn_frac(config: Path) -> float | None:
    """zn_frac from a model_config.json, or None when the file is missing or does not give a share."""
    try:
        value = float(json.loads(config.read_text())["zn_frac"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return value if 0 <= value <= 1 else None


def model_configs(lake: Lake, model_name: str) -> Iterator[Path]:
    """model_config.json files the lake's runs point to for this model, newest run first (read lazily: the
    first usable one ends the search): the model folder of an ingest's data root, and the folder of an
    embed's encoder (models/legacy/<model>/encoder.onnx)."""
    for path in sorted(lake.runs_dir.glob("*.json"), reverse=True) if lake.runs_dir.is_dir() else []:
        if path.name.endswith(".partial.json") or not ("-ingest-" in path.name or "-embed-" in path.name):
            continue
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        params, encoder = run.get("params") or {}, run.get("encoder") or {}
        if run.get("command") == "ingest" and params.get("model_name") == model_name and params.get("data_root"):
            yield DataRoot.at(params["data_root"]).model_config(model_name)
        elif run.get("command") == "embed" and encoder.get("model_name") == model_name and encoder.get("path"):
            yield Path(encoder["path"]).parent / "model_config.json"


def model_shape(lake: Lake, model_name: str) -> dict:
    """latent_dim (counted in the model's embeddings; 100 when it has none) and zn_frac (from the model's
    config, found through the runs that wrote its embeddings; else 0.2), each with where it came from."""
    dim = model_latent_dim(lake, model_name)
    shape = {
        "latent_dim": dim or LEGACY_LATENT_DIM,
        "latent_dim_from": "embeddings" if dim else "default (no embeddings)",
        "zn_frac": LEGACY_ZN_FRAC,
        "zn_frac_from": "default",
    }
    for config in model_configs(lake, model_name):
        value = config_zn_frac(config)
        if value is not None:
            shape.update(zn_frac=value, zn_frac_from=str(config))
            break
    return shape


def run_build(
    lake: Lake,
    model_name: str,
    *,
    z_schema: str = "auto",
    coverage_threshold: float | None = None,
    coverage_severity: str | None = None,
    select: list[str] | None = None,
    project_dir: Path | None = None,
    quiet: bool = False,
) -> RunResult:
    """dbt build against a staged copy of <lake>/warehouse.duckdb, published only when every node passed;
    failing nodes are collected with their messages (exit code 1, the published warehouse kept)."""
    from dbt.cli.main import dbtRunner  # slow import: only when building

    project = find_project(project_dir)
    variables = dbt_vars(model_name, z_schema, coverage_threshold, coverage_severity)
    params = {
        "model_name": model_name,
        "z_schema": z_schema,
        "vars": variables,
        "select": select,
        "project_dir": str(project),
    }
    lake.root.mkdir(parents=True, exist_ok=True)
    with lake_run(lake, "build", params) as run:
        shape = model_shape(lake, model_name)  # under the lock: the embeddings cannot change meanwhile
        run.record.set("latent", shape)
        variables.update(shape_vars(model_name, shape))  # the record's params hold this same dict
        args = [
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(lake.dbt_target),
            "--log-path",
            str(lake.dbt_logs),
            "--vars",
            json.dumps(variables),
        ]
        if select:
            args += ["--select", *select]
        if quiet:
            args.append("--quiet")
        # dbt writes a copy of the warehouse in the staging area; readers keep the published one open
        # meanwhile, and the copy replaces it (one rename) only when the build succeeded. The path is
        # the same every build (the lock admits one at a time) so dbt's partial parsing, which
        # restarts from scratch whenever the profile changes, keeps working (about 2 s per build).
        staging = lake.staging_dir / "build"
        staged = stage_warehouse(lake, staging)
        env = {
            "MORPHLAKE_LAKE": str(lake.root),
            "MORPHLAKE_LAKE_ROOT": str(lake.root),
            "MORPHLAKE_WAREHOUSE": str(staged),
            "MORPHLAKE_LOCK_HELD": run.run_id,
        }
        try:
            with _environment(env), run.record.timed("dbt_build"):
                crash_point("dbt-start")
                try:
                    result = dbtRunner().invoke(args)
                finally:
                    release_warehouse()
                crash_point("dbt-done")
            failures, counts, skipped = summarise(result)
            ok = result.success and not failures
            if ok:
                os.replace(staged, lake.warehouse)
                crash_point("warehouse-publish")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        exception = str(result.exception) if result.exception else None
        run.record.set(
            "dbt",
            {
                "success": result.success,
                "counts": counts,
                "failures": failures,
                "skipped": skipped,
                "exception": exception,
            },
        )
        if not ok:
            run.record.set("warehouse", "unchanged: the build failed, so the published warehouse was kept")
            run.fail(exception or f"{len(failures)} dbt node(s) failed", failures)
    return run.result


def summarise(result) -> tuple[list[dict], dict[str, int], list[str]]:
    """(failed nodes with messages, count per status, skipped node names) of a dbtRunner result."""
    failures, counts, skipped = [], {}, []
    nodes = result.result if result.result is not None and hasattr(result.result, "__iter__") else []
    for node in nodes:
        status = str(node.status).lower().rsplit(".", 1)[-1]
        counts[status] = counts.get(status, 0) + 1
        if status == "skipped":
            skipped.append(node.node.name)
        if status in ("error", "fail", "runtime error"):
            failures.append(
                {
                    "node": node.node.name,
                    "status": status,
                    "message": (node.message or "").strip(),
                    "failures": node.failures,
                }
            )
    return failures, counts, skipped
