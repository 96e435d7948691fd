"""Make one build snapshot: fill a new builds/<id>/ (dbt, or the replayed SQL), check it, and make it current."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import duckdb

from morphlake.common.sqltext import glob_literal
from morphlake.errors import MorphlakeError
from morphlake.lake.builds import DF03, SCHEMA, WAREHOUSE, Builds
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import Lake
from morphlake.steps.build.data_tests import compiled_nodes, name_examples, refresh_tables, run_tests, scope_to
from morphlake.steps.build.dbt_runner import counts_text, invoke_dbt, outcome, summarise
from morphlake.steps.build.df03_export import SOURCE, export_df03, point_df03_at, view_reads
from morphlake.steps.build.plan import FULL, BuildPlan, export_files, file_state
from morphlake.steps.lifecycle import LakeRun

log = logging.getLogger("morphlake")


def stage_warehouse(lake: Lake, staged: Path) -> None:
    """A private copy of the published warehouse (or no file, for dbt to make) to build into."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)
    if lake.warehouse.is_file():  # through the link, the current build's file
        shutil.copy2(lake.warehouse, staged)


def build_snapshot(
    run: LakeRun, builds: Builds, plan: BuildPlan, *, previous: dict | None, project: Path, variables: dict
) -> None:
    """Make the new build's folder, fill it, check it and make it current; on any failure before that, remove it
    and leave the published pair as it was."""
    lake, build_id = run.lake, run.run_id
    folder = builds.new(build_id)
    # dbt builds a copy of the warehouse at one path every build (the lock admits one at a time) so its
    # partial parsing, which restarts from scratch whenever the profile changes, keeps working
    staged = lake.staging_dir / "build" / WAREHOUSE
    try:
        stage_warehouse(lake, staged)
        blocker = plan.mode != FULL and previous is not None and incremental_blocker(staged, previous)
        if blocker:
            plan.make_full(blocker)
            run.record.set("build", plan.record())
        if plan.mode == FULL or previous is None:  # only a full build has no previous one
            compiled, exported = _full(
                run, staged=staged, folder=folder, plan=plan, project=project, variables=variables
            )
        else:
            compiled, exported = _incremental(
                run, staged=staged, folder=folder, plan=plan, previous=previous, model_name=variables["model_name"]
            )
        if run.error is not None:
            run.record.set("warehouse", "unchanged: the build failed, so the published warehouse and export were kept")
            return
        os.replace(staged, folder / WAREHOUSE)
        manifest = {
            "build_id": build_id,
            # morphlake never writes a published warehouse again: another state means someone else did (dbt)
            "warehouse_state": file_state(folder / WAREHOUSE),
            "previous_build": builds.current_id(),
            "definitions": plan.definitions,
            "tested_inputs": plan.tested_inputs,
            "inputs": plan.inputs,
            "exported": exported,
            "df03_folder": str(folder / DF03),
            "compiled": compiled,
        }
        builds.write_manifest(build_id, manifest)
        crash_point("build-ready")
        with run.record.timed("publish"):
            builds.make_current(build_id)
            run.record.set("removed_builds", builds.tidy())
        run.record.set("warehouse", f"published: build {build_id}")
    finally:
        if builds.current_id() != build_id:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(staged.parent, ignore_errors=True)


def published_changed(builds: Builds, previous: dict) -> str | None:
    """Why the published build cannot be the base of the next one (so that one is full), if so: its record is from
    an older morphlake, or its warehouse was written outside `morphlake build` since it was published (a plain
    `dbt build`, `dbt run -s df03`: its df03 may no longer read its own build's export)."""
    if "compiled" not in previous or "warehouse_state" not in previous:
        return "the last build's record is from an older morphlake"
    if file_state(builds.path(previous["build_id"]) / WAREHOUSE) != previous["warehouse_state"]:
        return (
            f"the warehouse of build {previous['build_id']} is not the file that build published: written outside "
            "morphlake build since (e.g. a plain `dbt build` or `dbt run`), or the lake was copied or restored"
        )
    return None


def incremental_blocker(staged: Path, previous: dict) -> str | None:
    """Why an incremental build cannot reuse the last build's SQL and files (so the build runs in full), if so."""
    old = Path(previous["df03_folder"]).parent
    if not (old / SCHEMA).is_file():
        return "the last build's export has no schema file beside it (it was made by an older morphlake)"
    with duckdb.connect(str(staged), read_only=True) as con:
        if not view_reads(con, old):
            return "the warehouse's df03 was re-created outside morphlake build (a plain dbt build)"
        describe = "select column_name, column_type from (describe select * from {})"
        now = con.execute(describe.format(SOURCE)).fetchall()
        before = con.execute(describe.format(f"read_parquet({glob_literal(old / SCHEMA)})")).fetchall()
    if now != before:
        return "df03's columns changed (e.g. a df02 column added or removed)"
    return None


def _full(
    run: LakeRun, *, staged: Path, folder: Path, plan: BuildPlan, project: Path, variables: dict
) -> tuple[dict, dict[str, int]]:
    """dbt parses the project once and builds everything but df03; morphlake writes every partition from int_df03;
    dbt builds df03 (a view over the new export) and runs its tests on it, from the same parse. Returns the compiled
    table models and data tests (for the next incremental builds) and the rows written per experiment.

    dbt's unit tests are left out, as dbt advises for production builds: they check the SQL's definitions on fixed
    rows, not the lake's data (`dbt test --select test_type:unit` runs them; so does morphlake's test suite)."""
    lake = run.lake
    options = ["--project-dir", str(project), "--profiles-dir", str(project), "--target-path", str(lake.dbt_target)]
    options += ["--log-path", str(lake.dbt_logs), "--vars", json.dumps(variables)]
    env = {
        "MORPHLAKE_LAKE": str(lake.root),
        "MORPHLAKE_LAKE_ROOT": str(lake.root),
        "MORPHLAKE_WAREHOUSE": str(staged),
        "MORPHLAKE_BUILD_DIR": str(folder),
    }
    log_file = dbt_log(run)
    run.record.set("dbt_log", str(log_file))
    results: list = []
    log.info("build: dbt: parse the project")
    parsed = invoke_dbt(run.record, ["parse", *options], env=env, step="dbt_parse", log=log_file)
    if not parsed.success:  # e.g. a yml that does not load: the record and the console say dbt's reason
        run.record.set("dbt", outcome([parsed]))
        run.fail(f"dbt could not parse the project {project} (dbt's reason below)")
        return {}, {}

    def dbt(step: str, select: list[str], what: str) -> bool:
        """One dbt build from the parsed project, said on the console; True when it failed."""
        log.info("build: dbt: %s", what)
        args = ["build", *options, *select, "--exclude-resource-type", "unit_test"]
        results.append(invoke_dbt(run.record, args, env=env, step=step, log=log_file, manifest=parsed.result))
        return _failed(run, results, step=step, staged=staged)

    first = "staging views, int_df03, df03_coverage, train_embeddings, their tests"
    if dbt("dbt_build", ["--exclude", "df03+"], first):
        return {}, {}
    with run.record.timed("export"), duckdb.connect(str(staged)) as con:
        exported = export_df03(con, folder, model_name=variables["model_name"], rebuild=sorted(plan.rebuild))
    run.record.count("df03_rows", sum(exported.values()))
    if dbt("dbt_df03", ["--select", "df03+"], "df03 over the new export, df03_z_sigma, their tests"):
        return {}, {}
    compiled = [compiled_nodes(result) for result in results]
    return {kind: [node for nodes in compiled for node in nodes[kind]] for kind in ("tables", "tests")}, exported


def dbt_log(run: LakeRun) -> Path:
    """The file a run's dbt lines go to, beside its run record."""
    return run.lake.runs_dir / f"{run.run_id}.dbt.log"


def _failed(run: LakeRun, results: list, *, step: str, staged: Path) -> bool:
    """Record dbt's outcome so far, each failing or warning test with its first rows, and say the last invocation's;
    True (and the run failed) when a node failed."""
    dbt = outcome(results)
    problems = dbt["failures"] + dbt["warnings"]
    if any("sql" in p for p in problems) and staged.is_file():
        with duckdb.connect(str(staged), read_only=True) as con:
            problems = name_examples(con, problems)
    else:
        problems = [{k: v for k, v in p.items() if k != "sql"} for p in problems]
    dbt["failures"] = [p for p in problems if p["status"] != "warn"]
    dbt["warnings"] = [p for p in problems if p["status"] == "warn"]
    run.record.set("dbt", dbt)
    seconds = run.record.data["timings_s"].get(step, 0.0)
    log.info("build: dbt: %s in %.1f s", counts_text(summarise(results[-1])[1]), seconds)
    if not dbt["success"]:
        run.fail(dbt["exception"] or f"{len(dbt['failures'])} dbt node(s) failed", dbt["failures"])
    return not dbt["success"]


def _incremental(
    run: LakeRun, *, staged: Path, folder: Path, plan: BuildPlan, previous: dict, model_name: str
) -> tuple[dict, dict[str, int]]:
    """No dbt: the copied warehouse's views still hold. Write the changed partitions, link the others from the
    previous build, point df03 at the new folder, re-create the table models and run the data tests dbt compiled
    in the last full build, on the experiments whose files changed."""
    compiled, old = previous["compiled"], Path(previous["df03_folder"])
    files = export_files(old)
    before = previous.get("exported", {})
    missing = [exp for exp in plan.keep if before.get(exp) and exp not in files]
    if missing:
        raise MorphlakeError(
            f"the last build's df03 export lacks the partition of {', '.join(missing[:5])}",
            "run `morphlake build --full`",
        )
    keep = {exp: files[exp] for exp in plan.keep if exp in files}
    try:
        with duckdb.connect(str(staged)) as con:
            # the export and every test open the same Parquet footers (~200 columns each) again: read them once
            con.execute("SET parquet_metadata_cache = true")
            with run.record.timed("export"):
                written = export_df03(con, folder, model_name=model_name, rebuild=sorted(plan.rebuild), keep=keep)
                point_df03_at(con, old.parent, folder)
            run.record.count("df03_rows_written", sum(written.values()))
            with run.record.timed("tables"):
                refresh_tables(con, compiled["tables"], keep=plan.keep, redo=sorted(plan.rebuild))
            with run.record.timed("tests"):
                scope_to(con, plan.retest)
                problems, counts, seconds = run_tests(con, compiled["tests"])
    except duckdb.Error as error:
        raise MorphlakeError(
            f"the build could not read the lake: {str(error).splitlines()[0]}",
            "run `morphlake build --full` for dbt's report of the failing model",
        ) from None
    failures = [p for p in problems if p["status"] != "warn"]
    run.record.set(
        "dbt",
        {
            "success": not failures,
            "counts": counts,
            "failures": failures,
            "warnings": [p for p in problems if p["status"] == "warn"],
            "ran": "the data tests compiled by the last full build, without starting dbt (definitions unchanged)",
            "seconds": seconds,
        },
    )
    if failures:
        run.fail(f"{len(failures)} data test(s) failed", failures)
    exported = {exp: before[exp] for exp in keep if exp in before} | written
    return compiled, exported
