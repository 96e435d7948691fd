"""`morphlake build`: run dbt build in-process on the lake's warehouse, under the lake lock, with a run record."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from morphlake.errors import MorphlakeError
from morphlake.ingest.naming import check_segment
from morphlake.lake.builds import DF03, WAREHOUSE, Builds
from morphlake.lake.data_root import DataRoot
from morphlake.lake.embeddings_table import model_latent_dim
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import Lake
from morphlake.lake.runs import library_versions
from morphlake.steps.build_plan import (
    FULL,
    UNCHANGED,
    compile_facts,
    definitions,
    export_files,
    partition_inputs,
    plan_build,
    tested_inputs,
)
from morphlake.steps.data_tests import compiled_nodes, refresh_tables, run_tests, scope_to
from morphlake.steps.df03_export import export_df03, point_df03_at, reads_export
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


def stage_warehouse(lake: Lake, staged: Path) -> None:
    """A private copy of the published warehouse (or no file, for dbt to make) to build into."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)
    if lake.warehouse.is_file():  # through the link, the current build's file
        shutil.copy2(lake.warehouse, staged)


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
    full: bool = False,
    project_dir: Path | None = None,
    quiet: bool = False,
) -> RunResult:
    """Build the warehouse and the df03 export as one new snapshot, made current only when every test passed
    (else exit code 1 and the published pair kept). Only what changed since the last build is redone: dbt runs
    when the SQL's definitions changed (or `full`), and only changed experiments' partitions are rewritten."""
    project = find_project(project_dir)
    variables = dbt_vars(model_name, z_schema, coverage_threshold, coverage_severity)
    params = {
        "model_name": model_name,
        "z_schema": z_schema,
        "vars": variables,
        "full": full,
        "project_dir": str(project),
    }
    lake.root.mkdir(parents=True, exist_ok=True)
    with lake_run(lake, "build", params) as run:
        shape = model_shape(lake, model_name)  # under the lock: the embeddings cannot change meanwhile
        run.record.set("latent", shape)
        variables.update(shape_vars(model_name, shape))  # the record's params hold this same dict
        builds = Builds(lake)
        previous = builds.manifest(builds.current_id())
        forced = "asked for (--full)" if full else None
        if previous and not forced and "compiled" not in previous:
            forced = "the last build's record is from an older morphlake"
        elif previous and not forced and not reads_export(lake.warehouse, Path(previous["df03_folder"])):
            forced = "the warehouse's df03 was re-created outside morphlake build (a plain dbt build)"
        with run.record.timed("plan"):
            plan = plan_build(
                previous,
                definitions=definitions(project, variables, compile_facts(lake, model_name), library_versions()),
                tested=tested_inputs(lake),
                inputs=partition_inputs(lake, model_name),
                force_full=forced,
            )
        run.record.set("build", plan.record())
        log.info("build: %s (%s); %d partition(s) to write", plan.mode, plan.reason, len(plan.rebuild))
        if plan.mode == UNCHANGED:
            run.record.set("warehouse", f"unchanged: build {previous['build_id']} is current")
        else:
            _build_snapshot(run, builds, plan, previous, project=project, variables=variables, quiet=quiet)
    return run.result


def _build_snapshot(run, builds: Builds, plan, previous: dict | None, *, project: Path, variables: dict, quiet: bool):
    """Make the new build's folder, fill it, check it and switch to it; on any failure remove it."""
    lake, build_id = run.lake, run.run_id
    folder = builds.new(build_id)
    # dbt builds a copy of the warehouse at one path every build (the lock admits one at a time) so its
    # partial parsing, which restarts from scratch whenever the profile changes, keeps working
    staged = lake.staging_dir / "build" / WAREHOUSE
    published = False
    try:
        stage_warehouse(lake, staged)
        if plan.mode == FULL:
            compiled = _full(run, staged, folder, plan, project=project, variables=variables, quiet=quiet)
        else:
            compiled = _incremental(run, staged, folder, plan, previous)
        if run.error is not None:
            run.record.set("warehouse", "unchanged: the build failed, so the published warehouse and export were kept")
            return
        os.replace(staged, folder / WAREHOUSE)
        builds.write_manifest(
            build_id,
            {
                "build_id": build_id,
                "definitions": plan.definitions,
                "tested_inputs": plan.tested_inputs,
                "inputs": plan.inputs,
                "df03_folder": str(folder / DF03),
                "compiled": compiled,
            },
        )
        crash_point("build-ready")
        with run.record.timed("publish"):
            builds.switch(build_id)
            published = True
            run.record.set("removed_builds", builds.collect())
        run.record.set("warehouse", f"published: build {build_id}")
    finally:
        if not published:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(staged.parent, ignore_errors=True)


def _dbt(run, args: list[str], env: dict[str, str], step: str):
    from dbt.cli.main import dbtRunner  # slow import: only when dbt must run

    with _environment(env), run.record.timed(step):
        crash_point(f"{step}-start")
        try:
            return dbtRunner().invoke(args)
        finally:
            release_warehouse()


def _full(run, staged: Path, folder: Path, plan, *, project: Path, variables: dict, quiet: bool) -> dict:
    """dbt builds everything but df03; morphlake writes every partition from int_df03; dbt builds df03 (a view over
    the new export) and runs its tests on it. Returns the compiled table models and data tests, for the next
    incremental builds."""
    lake = run.lake
    base = ["build", "--project-dir", str(project), "--profiles-dir", str(project), "--target-path"]
    base += [str(lake.dbt_target), "--log-path", str(lake.dbt_logs), "--vars", json.dumps(variables)]
    base += ["--quiet"] if quiet else []
    env = {
        "MORPHLAKE_LAKE": str(lake.root),
        "MORPHLAKE_LAKE_ROOT": str(lake.root),
        "MORPHLAKE_WAREHOUSE": str(staged),
        "MORPHLAKE_DF03_EXPORT": str(folder / DF03),
    }
    results = [_dbt(run, [*base, "--exclude", "df03"], env, "dbt_build")]
    if _dbt_failed(run, results):
        return {}
    with run.record.timed("export"), duckdb.connect(str(staged)) as con:
        counts = export_df03(
            con, folder / DF03, model_name=variables["model_name"], rebuild=sorted(plan.rebuild), keep={}
        )
    run.record.count("df03_rows", sum(counts.values()))
    results.append(_dbt(run, [*base, "--select", "df03"], env, "dbt_df03"))
    if _dbt_failed(run, results):
        return {}
    compiled = [compiled_nodes(result) for result in results]
    return {kind: [node for nodes in compiled for node in nodes[kind]] for kind in ("tables", "tests")}


def _dbt_failed(run, results: list) -> bool:
    """Record dbt's outcome so far; True (and the run failed) when a node failed."""
    failures, counts, skipped, exception = [], {}, [], None
    for result in results:
        more_failures, more_counts, more_skipped = summarise(result)
        failures += more_failures
        skipped += more_skipped
        for status, n in more_counts.items():
            counts[status] = counts.get(status, 0) + n
        exception = exception or (str(result.exception) if result.exception else None)
    ok = all(result.success for result in results) and not failures
    run.record.set(
        "dbt", {"success": ok, "counts": counts, "failures": failures, "skipped": skipped, "exception": exception}
    )
    if not ok:
        run.fail(exception or f"{len(failures)} dbt node(s) failed", failures)
    return not ok


def _incremental(run, staged: Path, folder: Path, plan, previous: dict) -> dict:
    """No dbt: the copied warehouse's views still hold. Write the changed partitions, link the others from the
    previous build, point df03 at the new folder, re-create the table models and run the data tests dbt compiled
    in the last full build, on the experiments whose files changed."""
    compiled = previous["compiled"]
    old_folder = Path(previous["df03_folder"])
    kept = export_files(old_folder)
    with duckdb.connect(str(staged)) as con:
        # the export and every test open the same Parquet footers (~200 columns each) again: read them once
        con.execute("SET parquet_metadata_cache = true")
        with run.record.timed("export"):
            counts = export_df03(
                con,
                folder / DF03,
                model_name=run.record.data["params"]["model_name"],
                rebuild=sorted(plan.rebuild),
                keep={exp: kept[exp] for exp in plan.keep if exp in kept},  # an experiment with no rows has no file
            )
            point_df03_at(con, old_folder, folder / DF03)
        run.record.count("df03_rows_written", sum(counts.values()))
        with run.record.timed("tables"):
            refresh_tables(con, compiled["tables"])
        with run.record.timed("tests"):
            scope_to(con, plan.retest)
            failures, counts, seconds = run_tests(con, compiled["tests"])
    run.record.set(
        "dbt",
        {
            "success": not failures,
            "counts": counts,
            "failures": failures,
            "ran": "the data tests compiled by the last full build, without starting dbt (definitions unchanged)",
            "seconds": seconds,
        },
    )
    if failures:
        run.fail(f"{len(failures)} data test(s) failed", failures)
    return compiled


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
