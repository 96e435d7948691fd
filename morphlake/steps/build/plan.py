"""What a build must redo: the lake's inputs and the SQL's definitions against what the last build read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import duckdb

from morphlake.common.file_shapes import one_shape
from morphlake.common.sqltext import glob_literal, path_glob
from morphlake.lake.layout import Lake, table_files

FULL, INCREMENTAL, UNCHANGED = "full", "incremental", "unchanged"
RAW_TABLES = ("df02", "train", "snips", "embeddings")
# morphlake's own code that shapes what a build writes, every module of this package: a change here rebuilds
# everything
BUILD_CODE = Path(__file__).parent


# A df03 partition depends on two input files only: the experiment's df02 partition and the model's embeddings
# partition of that experiment (df03 joins on experiment_date). Published files are only ever replaced by a
# rename, so a file's (size, mtime, inode) changes whenever its content can have. The SQL's definitions are the
# dbt project's files, the vars, and the facts about the lake that the project's macros read while compiling.


def file_state(path: Path) -> str | None:
    """size:mtime_ns:inode of a published file, None when there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def partition_inputs(lake: Lake, model_name: str) -> dict[str, dict[str, str | None]]:
    """For each experiment of df02: the state of its df02 file and of the model's embeddings file."""
    return {
        exp: {
            "df02": file_state(lake.partition_file("df02", experiment_date=exp)),
            "embeddings": file_state(lake.partition_file("embeddings", model_name=model_name, experiment_date=exp)),
        }
        for exp in lake.partition_values("df02")
    }


def tested_inputs(lake: Lake) -> dict[str, str]:
    """A digest of the raw and embeddings files' states per experiment (and one for the training sets): the data
    tests read them all (the ledger, other models' embeddings too), so a change there tests that experiment again."""
    files: dict[str, list[str]] = {}
    for table in RAW_TABLES:
        base = lake.table_dir(table)
        for path in sorted(base.rglob("*.parquet")) if base.is_dir() else []:
            key = next((p for p in path.parent.parts[::-1] if p.startswith("experiment_date=")), "training sets")
            files.setdefault(key.removeprefix("experiment_date="), []).append(
                f"{path.relative_to(lake.root)}={file_state(path)}"
            )
    return {key: hashlib.sha256("\n".join(lines).encode()).hexdigest() for key, lines in sorted(files.items())}


def project_digest(project: Path) -> str:
    """The dbt project's files (models, macros, project and profile), and morphlake's build code."""
    digest = hashlib.sha256()
    files = [p for p in sorted(project.rglob("*")) if p.is_file() and not _generated(project, p)]
    for path in files + sorted(BUILD_CODE.glob("*.py")):
        name = path.relative_to(project) if path.is_relative_to(project) else path.name
        digest.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _generated(project: Path, path: Path) -> bool:
    top = path.relative_to(project).parts[0]
    return top in ("target", "logs", "dbt_packages", ".user.yml") or path.suffix == ".pyc"


def compile_facts(lake: Lake, model_name: str) -> dict:
    """What the project's macros read from the lake while compiling (lake_table, lake_latent_dim,
    resolve_z_schema): which tables have files and whether each one's files share one schema, and whether the
    model's store used bio/nuisance names. The latent width is in the vars."""
    facts: dict[str, str | bool] = {"lake": str(lake.root)}
    files = sorted(lake.table_dir("embeddings").glob(f"model_name={model_name}/*/*.parquet"))
    with duckdb.connect() as con:
        for table in RAW_TABLES:
            pattern = glob_literal(lake.root, table_files(table))  # dbt's lake_table globs the same, with DuckDB
            has_files = bool(con.execute(f"select count(*) > 0 from glob({pattern})").fetchall()[0][0])
            facts[f"{table}_has_files"] = has_files
            # lake_table reads a table of one shape without union_by_name: a file of another shape needs dbt again
            facts[f"{table}_one_shape"] = has_files and one_shape(con, pattern)
        facts["bio_nuisance_names"] = (
            bool(files)
            and con.execute(
                "select count(*) > 0 from read_parquet($files, hive_partitioning = false, union_by_name = true) "
                "where z_naming = 'bio_nuisance'",
                {"files": [path_glob(f) for f in files]},
            ).fetchall()[0][0]
        )
    return facts


def definitions(project: Path, variables: dict, facts: dict, *, versions: dict) -> dict[str, str]:
    """Digests of everything that decides the compiled SQL, by part (so a build can say which part changed)."""
    parts: dict = {"project": project_digest(project), "vars": variables, "lake": facts, "versions": versions}
    return {
        name: value if isinstance(value, str) else hashlib.sha256(repr(sorted(value.items())).encode()).hexdigest()
        for name, value in parts.items()
    }


@dataclass
class BuildPlan:
    """The build's mode, and for each df03 partition whether it is rewritten or kept, and why."""

    mode: str
    reason: str
    definitions: dict[str, str]
    _: KW_ONLY
    tested_inputs: dict[str, str]
    inputs: dict[str, dict]
    rebuild: dict[str, str] = field(default_factory=dict)  # experiment -> why it is rewritten
    keep: list[str] = field(default_factory=list)  # experiments whose partition is linked from the previous build
    removed: list[str] = field(default_factory=list)  # experiments of the previous build no longer in df02
    retest: list[str] = field(default_factory=list)  # experiments whose files changed: the tests look at these

    def make_full(self, reason: str) -> None:
        """Rebuild everything after all (an incremental build found it cannot reuse the last build)."""
        self.mode, self.reason = FULL, reason
        self.rebuild, self.keep = dict.fromkeys(self.inputs, "full build"), []

    def summary(self) -> str:
        """The build's line on the console: its mode, why, and what it writes."""
        if self.mode == UNCHANGED:
            return f"build: unchanged ({self.reason}); nothing to write"
        writes = f"{len(self.rebuild)} partition(s) to write" if self.rebuild else "no partition to write"
        if self.mode == INCREMENTAL:
            writes += f", {len(self.keep)} kept; the data tests run on {len(self.retest)} experiment(s)"
        return f"build: {self.mode} ({self.reason}); {writes}"

    def record(self) -> dict:
        return {
            "mode": self.mode,
            "reason": self.reason,
            "rebuilt": f"every experiment ({len(self.rebuild)})" if self.mode == FULL else self.rebuild,
            "kept": len(self.keep),
            "removed": self.removed,
            "tested": "every experiment" if self.mode == FULL else self.retest,
        }


def plan_build(
    previous: dict | None,
    *,
    definitions: dict[str, str],
    tested: dict[str, str],
    inputs: dict[str, dict],
    force_full: str | None = None,
) -> BuildPlan:
    """Compare with the previous build's manifest: everything when the definitions changed (or there is no usable
    previous build), the changed partitions when only inputs changed, nothing when nothing did."""
    plan = BuildPlan(FULL, "", definitions, tested_inputs=tested, inputs=inputs)
    if force_full or previous is None or previous.get("definitions") != definitions:
        if force_full or previous is None:
            plan.reason = force_full or "first build of this lake"
        else:
            before = d if isinstance(d := previous.get("definitions"), dict) else {}
            changed = [name for name in definitions if before.get(name) != definitions[name]]
            plan.reason = (
                "the SQL's definitions changed: " + ", ".join(changed) + f" (since build {previous['build_id']})"
            )
        plan.rebuild = dict.fromkeys(inputs, "full build")
        return plan
    before = previous.get("inputs", {})
    for exp, state in inputs.items():
        old = before.get(exp)
        if old is None:
            plan.rebuild[exp] = "new in df02"
        elif old != state:
            changed = [name for name in ("df02", "embeddings") if old.get(name) != state.get(name)]
            plan.rebuild[exp] = " and ".join(changed) + " changed"
        else:
            plan.keep.append(exp)
    plan.removed = sorted(set(before) - set(inputs))
    tested_before = d if isinstance(d := previous.get("tested_inputs"), dict) else {}
    plan.retest = sorted(
        {key for key, digest in tested.items() if tested_before.get(key) != digest} | set(plan.rebuild)
    )
    if plan.rebuild or plan.removed or plan.retest or tested_before.keys() != tested.keys():
        plan.mode = INCREMENTAL
        plan.reason = f"since build {previous.get('build_id')}: " + "; ".join(_changes(plan))
    else:
        plan.mode = UNCHANGED
        plan.reason = "nothing changed since build " + str(previous.get("build_id"))
    return plan


def _changes(plan: BuildPlan) -> list[str]:
    """What changed, for an incremental plan's reason."""
    changes = []
    if plan.rebuild:
        changes.append(f"df02 or embeddings changed in {len(plan.rebuild)} experiment(s)")
    if plan.removed:
        changes.append(f"{len(plan.removed)} experiment(s) left df02")
    tests_only = [exp for exp in plan.retest if exp not in plan.rebuild]
    if tests_only or not changes:
        changes.append(
            "files only the data tests read (the snip ledger, other models' embeddings, training sets) changed"
            + (f" in {len(tests_only)} experiment(s)" if tests_only else "")
        )
    return changes


def export_files(folder: Path) -> dict[str, Path]:
    """experiment -> its partition file in a build's df03 folder."""
    return {
        p.parent.name.split("=", 1)[1]: p
        for p in sorted(folder.glob("experiment_date=*/*.parquet"))
        if os.path.isfile(p)
    }
