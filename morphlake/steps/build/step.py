"""`morphlake build`: plan what changed since the last build and make the next build snapshot, under the lake lock."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import morphlake
from morphlake.errors import MorphlakeError
from morphlake.ingest.naming import check_segment
from morphlake.lake.builds import Builds
from morphlake.lake.data_root import DataRoot
from morphlake.lake.embeddings_table import model_latent_dim
from morphlake.lake.layout import Lake
from morphlake.lake.runs import library_versions
from morphlake.steps.build.plan import (
    UNCHANGED,
    compile_facts,
    definitions,
    partition_inputs,
    plan_build,
    tested_inputs,
)
from morphlake.steps.build.snapshot import build_snapshot, published_changed
from morphlake.steps.lifecycle import RunResult, lake_run

log = logging.getLogger("morphlake")
Z_SCHEMAS = ("auto", "flat", "bio_nuisance")
LEGACY_LATENT_DIM, LEGACY_ZN_FRAC = 100, 0.2  # the legacy encoder's, for a model with no embeddings / no config


def find_project(project_dir: Path | None = None) -> Path:
    """The dbt project: --project-dir, $MORPHLAKE_DBT_PROJECT, the one installed with morphlake (package data:
    morphlake/dbt_project/ in a wheel), the checkout's dbt_project/ (an editable install), or dbt_project/ in the
    current folder."""
    here = Path(morphlake.__file__).resolve().parent  # the morphlake package, wherever this module lives in it
    candidates = [
        project_dir,
        os.environ.get("MORPHLAKE_DBT_PROJECT"),
        here / "dbt_project",
        here.parent / "dbt_project",
        Path.cwd() / "dbt_project",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "dbt_project.yml").is_file():
            return Path(candidate).resolve()
    raise MorphlakeError(
        f"cannot find the dbt project (dbt_project.yml in {here / 'dbt_project'}, {here.parent / 'dbt_project'} "
        "or ./dbt_project)",
        "reinstall morphlake (a wheel carries its dbt project), or pass --project-dir / set MORPHLAKE_DBT_PROJECT "
        "to a dbt_project folder",
    )


def dbt_files(project: Path) -> dict[str, bytes]:
    """What dbt reads of a project (its .yml and .sql files, as a wheel ships them): path in the project -> bytes.
    A checkout's lint settings (.sqlfluff, sqlfluff_context/) and dbt's own output are left out."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.suffix in (".yml", ".sql")
        and path.relative_to(project).parts[0] not in ("target", "logs", "dbt_packages")
    }


def warn_if_shadowed(project: Path) -> None:
    """Say so when ./dbt_project (a checkout's, being edited) differs from the project this build runs (the one
    installed with morphlake, after a non-editable install): its edits would be silently left out."""
    here = Path.cwd() / "dbt_project"
    if (here / "dbt_project.yml").is_file() and here.resolve() != project and dbt_files(here) != dbt_files(project):
        log.warning(
            "build: the dbt project in use is %s; ./dbt_project differs from it and is not used. To build with it, "
            "pass --project-dir dbt_project (or install morphlake editable: pip install -e .)",
            project,
        )


def dbt_vars(
    model_name: str, z_schema: str, coverage_threshold: float | None, *, coverage_severity: str | None
) -> dict:
    if z_schema not in Z_SCHEMAS:
        raise MorphlakeError(f"--z-schema {z_schema!r} is not known", f"choose one of: {', '.join(Z_SCHEMAS)}")
    values: dict[str, str | float] = {"model_name": check_segment("model name", model_name), "z_schema": z_schema}
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
        if run.get("outcome") == "running":  # unfinished, or died: what it read may not have been used
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
) -> RunResult:
    """Build the warehouse and the df03 export as one new snapshot, made current only when every test passed
    (else exit code 1 and the published pair kept). Only what changed since the last build is redone: dbt runs
    when the SQL's definitions changed (or `full`), and only changed experiments' partitions are rewritten."""
    project = find_project(project_dir)
    if project_dir is None:
        warn_if_shadowed(project)
    variables = dbt_vars(model_name, z_schema, coverage_threshold, coverage_severity=coverage_severity)
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
        with run.record.timed("tidy"):  # leftovers of a killed build go, whatever this build then does
            run.record.set("removed_builds", builds.tidy())
        forced = "asked for (--full)" if full else None
        if previous and not forced:
            forced = published_changed(builds, previous)
        with run.record.timed("plan"):
            plan = plan_build(
                previous,
                definitions=definitions(
                    project, variables, compile_facts(lake, model_name), versions=library_versions()
                ),
                tested=tested_inputs(lake),
                inputs=partition_inputs(lake, model_name),
                force_full=forced,
            )
        run.record.set("build", plan.record())
        log.info("%s", plan.summary())
        if plan.mode == UNCHANGED:
            assert previous is not None  # an unchanged build is the previous one
            run.record.set("warehouse", f"unchanged: build {previous['build_id']} is current")
        else:
            build_snapshot(run, builds, plan, previous=previous, project=project, variables=variables)
    return run.result
