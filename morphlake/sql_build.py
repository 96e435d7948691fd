"""`morphlake build`: run dbt build in-process on the lake's warehouse, under the lake lock, with a run record."""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest.naming import check_segment
from morphlake.errors import MorphlakeError
from morphlake.faults import crash_point
from morphlake.layout import Lake
from morphlake.lock import LakeLock
from morphlake.publish import Transaction
from morphlake.runs import RunRecord
from morphlake.step import EXIT_COMPLETE, EXIT_FAILED

log = logging.getLogger("morphlake")
Z_SCHEMAS = ("auto", "flat", "bio_nuisance")


def find_project(project_dir: Path | None = None) -> Path:
    """The dbt project: --project-dir, $MORPHLAKE_DBT_PROJECT, or dbt_project/ beside the packages."""
    candidates = [project_dir, os.environ.get("MORPHLAKE_DBT_PROJECT"), Path(__file__).resolve().parents[1] / "dbt_project"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "dbt_project.yml").is_file():
            return Path(candidate).resolve()
    raise MorphlakeError("cannot find the dbt project (dbt_project/dbt_project.yml)",
                         "run from a morphlake checkout, or pass --project-dir / set MORPHLAKE_DBT_PROJECT")


@dataclass
class BuildResult:
    run_id: str
    exit_code: int
    record: dict
    failures: list[dict] = field(default_factory=list)


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


def build(lake: Lake, model_name: str, z_schema: str = "auto", coverage_threshold: float | None = None,
          coverage_severity: str | None = None, select: list[str] | None = None,
          project_dir: Path | None = None, quiet: bool = False) -> BuildResult:
    """dbt build against <lake>/warehouse.duckdb; failures are collected with their messages."""
    from dbt.cli.main import dbtRunner  # slow import: only when building

    project = find_project(project_dir)
    variables = dbt_vars(model_name, z_schema, coverage_threshold, coverage_severity)
    record = RunRecord("build", {"model_name": model_name, "z_schema": z_schema, "vars": variables,
                                 "select": select, "project_dir": str(project)})
    record.set("lake", str(lake.root))
    lake.root.mkdir(parents=True, exist_ok=True)
    args = ["build", "--project-dir", str(project), "--profiles-dir", str(project),
            "--target-path", str(lake.root / ".dbt" / "target"), "--log-path", str(lake.root / ".dbt" / "logs"),
            "--vars", json.dumps(variables)]
    if select:
        args += ["--select", *select]
    if quiet:
        args.append("--quiet")
    with LakeLock(lake.lock_file, "build", record.run_id):
        Transaction.clean_stale(lake)
        # dbt writes a copy of the warehouse in the staging area; readers keep the published one open
        # meanwhile, and the copy replaces it (one rename) only when the build succeeded. The path is
        # the same every build (the lock admits one at a time) so dbt's partial parsing, which
        # restarts from scratch whenever the profile changes, keeps working (about 2 s per build).
        staging = lake.staging_dir / "build"
        staged = stage_warehouse(lake, staging)
        env = {"MORPHLAKE_LAKE": str(lake.root), "MORPHLAKE_LAKE_ROOT": str(lake.root),
               "MORPHLAKE_WAREHOUSE": str(staged), "MORPHLAKE_LOCK_HELD": record.run_id}
        try:
            with _environment(env), record.timed("dbt_build"):
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
            try:
                lake.staging_dir.rmdir()
            except OSError:
                pass
        record.set("dbt", {"success": result.success, "counts": counts, "failures": failures, "skipped": skipped,
                           "exception": str(result.exception) if result.exception else None})
        error = None if ok else (str(result.exception) if result.exception else f"{len(failures)} dbt node(s) failed")
        if not ok:
            record.set("warehouse", "unchanged: the build failed, so the published warehouse was kept")
        record.finish(lake.runs_dir, "complete" if ok else "failed", error=error)
    return BuildResult(record.run_id, EXIT_COMPLETE if ok else EXIT_FAILED, record.data, failures)


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
            failures.append({"node": node.node.name, "status": status, "message": (node.message or "").strip(),
                             "failures": node.failures})
    return failures, counts, skipped
