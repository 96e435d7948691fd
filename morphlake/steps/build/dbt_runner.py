"""dbt in-process for a build: invoke it with the lake's environment, and read its outcome into the run record."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from morphlake.lake.faults import crash_point
from morphlake.lake.runs import RunRecord

# dbt prints nothing: its console is off and its lines go to the run's log file (dbt's own debug log stays in
# <lake>/.dbt/logs/dbt.log); morphlake says what ran and how it ended.
QUIET = ["--log-level", "none", "--log-level-file", "debug", "--no-use-colors", "--no-use-colors-file"]
LOGGED_LEVELS = ("info", "warn", "error")


class DbtLog:
    """A dbtRunner callback: every event dbt's console would show (info and up), as plain lines in one file."""

    def __init__(self, handle: IO[str]):
        self.handle = handle

    def __call__(self, msg) -> None:
        info = msg.info
        if info.level in LOGGED_LEVELS and info.msg:
            when = info.ts.ToDatetime().strftime("%H:%M:%S")
            self.handle.write(f"{when}  {'' if info.level == 'info' else info.level + ': '}{info.msg}\n")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
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


def invoke_dbt(
    record: RunRecord, args: list[str], *, env: dict[str, str], step: str, log: Path, manifest: Any = None
) -> Any:
    """dbtRunner().invoke(args) with `env` set, timed in the record as `step` (dbt's import too, the first time), its
    console lines appended to `log`. With `manifest` (what `parse` returned), dbt does not parse the project again."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with _environment(env), record.timed(step), open(log, "a", encoding="utf-8") as handle:
        from dbt.cli.main import dbtRunner  # slow import (~1 s): only when dbt must run

        crash_point(f"{step}-start")
        try:
            return dbtRunner(manifest=manifest, callbacks=[DbtLog(handle)]).invoke([*args, *QUIET])
        finally:
            release_warehouse()


def summarise(result) -> tuple[list[dict], dict[str, int], list[str]]:
    """(failed and warning nodes with messages, their hint and compiled SQL; count per status; skipped node names)
    of a dbtRunner result."""
    counts: dict[str, int]
    problems, counts, skipped = [], {}, []
    nodes = result.result if result.result is not None and hasattr(result.result, "__iter__") else []
    for node in nodes:
        status = str(node.status).lower().rsplit(".", 1)[-1]
        counts[status] = counts.get(status, 0) + 1
        if status == "skipped":
            skipped.append(node.node.name)
        if status in ("error", "fail", "runtime error", "warn"):
            hint = (getattr(node.node.config, "meta", None) or {}).get("hint")
            sql = getattr(node.node, "compiled_code", None)
            problems.append(
                {
                    "node": node.node.name,
                    "status": status,
                    "message": (node.message or "").strip(),
                    "failures": node.failures,
                    **({"hint": " ".join(str(hint).split())} if hint else {}),
                    **({"sql": sql} if sql else {}),
                }
            )
    return problems, counts, skipped


STATUS_WORDS = {"pass": "passed", "success": "built", "warn": "warned", "fail": "failed", "error": "errored"}


def counts_text(counts: dict[str, int]) -> str:
    """'23 passed, 6 built' (dbt's node statuses, most first)."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{n} {STATUS_WORDS.get(status, status)}" for status, n in ranked) or "no nodes"


def outcome(results: list) -> dict:
    """The record's `dbt` entry for these invocations: success, counts per status, failures, warnings, skipped,
    exception. Failures and warnings still hold their compiled SQL (data_tests.name_examples takes it out)."""
    counts: dict[str, int]
    problems, counts, skipped, exception = [], {}, [], None
    for result in results:
        more_problems, more_counts, more_skipped = summarise(result)
        problems += more_problems
        skipped += more_skipped
        for status, n in more_counts.items():
            counts[status] = counts.get(status, 0) + n
        exception = exception or (str(result.exception) if result.exception else None)
    failures = [p for p in problems if p["status"] != "warn"]
    warnings = [p for p in problems if p["status"] == "warn"]
    ok = all(result.success for result in results) and not failures
    return {
        "success": ok,
        "counts": counts,
        "failures": failures,
        "warnings": warnings,
        "skipped": skipped,
        "exception": exception,
    }
