"""The table models and data tests dbt compiled, kept with a build and replayed by the next incremental build."""

from __future__ import annotations

import time

import duckdb

from morphlake.common.sqltext import literal

# An incremental build does not start dbt (its start-up and parse cost more than the work at most sizes): the SQL's
# definitions are the same as in the last full build, so the views in the copied warehouse, and the SQL dbt compiled
# then, still hold. Table models are re-created from their compiled SQL; each test is run the way dbt runs one
# (dbt's default `get_test_sql`): its query wrapped in `select fail_calc as failures, fail_calc warn_if as
# should_warn, fail_calc error_if as should_error`. Tests configured with var in_build_scope look only at the
# experiments in the DuckDB variable morphlake_scope. Unit tests are not run again: they depend on the definitions
# only.

SCOPE_VARIABLE = "morphlake_scope"
PER_EXPERIMENT = "per_experiment"  # a table model's meta `refresh`: its rows are per experiment (refresh_tables)
EXAMPLES = 5  # failing rows named in a test's report


def name_examples(con: duckdb.DuckDBPyConnection, problems: list[dict]) -> list[dict]:
    """Each failing or warning test's report with the first rows its query returns (`examples`, e.g. the snips a
    test is about): a test's result count alone names no item. Takes the compiled SQL out of the entries."""
    named = []
    for problem in problems:
        entry, sql = dict(problem), problem.get("sql")
        entry.pop("sql", None)
        if sql and entry["status"] in ("fail", "warn"):
            try:
                rows = con.execute(f"select * from (\n{sql}\n) limit {EXAMPLES}").fetchall()
                entry["examples"] = [", ".join(map(str, row)) for row in rows]
            except duckdb.Error:
                pass
        named.append(entry)
    return named


def compiled_nodes(result) -> dict[str, list[dict]]:
    """The table models and data tests of a dbtRunner result, in the order dbt ran them, with what running them
    again needs."""
    tables, tests = [], []
    for node_result in getattr(result.result, "results", None) or []:
        node = node_result.node
        kind = str(node.resource_type).lower().rsplit(".", 1)[-1]
        if not node.compiled_code:
            continue
        if kind == "model" and node.config.materialized == "table":
            per_experiment = (node.config.meta or {}).get("refresh") == PER_EXPERIMENT
            tables.append({"name": node.alias or node.name, "sql": node.compiled_code, PER_EXPERIMENT: per_experiment})
        if kind != "test":
            continue
        config = node.config
        tests.append(
            {
                "name": node.name,
                "sql": node.compiled_code,
                "severity": str(config.severity).lower(),
                "fail_calc": config.fail_calc,
                "warn_if": config.warn_if,
                "error_if": config.error_if,
                "limit": config.limit,
                "hint": " ".join(str((config.meta or {}).get("hint", "")).split()) or None,
            }
        )
    return {"tables": tables, "tests": tests}


def refresh_tables(
    con: duckdb.DuckDBPyConnection, tables: list[dict], *, keep: list[str] | None = None, redo: list[str] | None = None
) -> None:
    """Re-create each table model from its compiled SQL. One marked per-experiment (its rows for an experiment come
    from that experiment's df02 and embeddings partitions only, the build's inputs), given the experiments whose
    inputs are unchanged (`keep`) and those rewritten (`redo`), keeps the former's rows and computes only the latter's:
    the filter on experiment_date reaches the Parquet scans, so the work is the changed experiments'."""
    for table in tables:
        name, sql = table["name"], table["sql"]
        if not (table.get(PER_EXPERIMENT) and keep is not None and redo is not None):
            con.execute(f'create or replace table "{name}" as (\n{sql}\n)')
            continue
        kept, redone = (", ".join(literal(exp) for exp in exps) or "null" for exps in (keep, redo))
        con.execute(
            f'create or replace table "{name}" as (\n'
            f'select * from "{name}" where experiment_date in ({kept})\n'
            f"union all by name\nselect * from (\n{sql}\n) where experiment_date in ({redone})\n"
            "order by experiment_date)"
        )


def scope_to(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> None:
    """Make the scoped tests look at these experiments only (this connection)."""
    con.execute(f"set variable {SCOPE_VARIABLE} = $exps::varchar[]", {"exps": experiments})


def run_tests(con: duckdb.DuckDBPyConnection, tests: list[dict]) -> tuple[list[dict], dict[str, int], dict]:
    """Run each test; returns (failing and warning tests with dbt's message, their hint and first rows; count per
    status; seconds per test)."""
    counts: dict[str, int]
    failures, counts, seconds = [], {}, {}
    for test in tests:
        start = time.perf_counter()
        limit = f"\nlimit {test['limit']}" if test.get("limit") is not None else ""
        calc = test["fail_calc"]
        try:
            failed, warn, error = con.execute(
                f"select {calc} as failures, {calc} {test['warn_if']} as should_warn, "
                f"{calc} {test['error_if']} as should_error from (\n{test['sql']}{limit}\n) dbt_internal_test"
            ).fetchall()[0]
        except duckdb.Error as problem:  # as dbt reports a test whose query fails: an error, not a crash
            counts["error"] = counts.get("error", 0) + 1
            failures.append({"node": test["name"], "status": "error", "message": str(problem), "failures": None})
            continue
        if test["severity"] == "error" and error:
            status, condition = "fail", test["error_if"]
        elif warn:
            status, condition = "warn", test["warn_if"]
        else:
            status, condition = "pass", None
        counts[status] = counts.get(status, 0) + 1
        seconds[test["name"]] = round(time.perf_counter() - start, 4)
        if status != "pass":
            noun = "result" if failed == 1 else "results"
            entry = {
                "node": test["name"],
                "status": status,
                "message": f"Got {failed} {noun}, configured to {status} if {condition}",
                "failures": failed,
                **({"hint": test["hint"]} if test.get("hint") else {}),
                "sql": test["sql"],
            }
            failures.append(entry)
    return name_examples(con, failures), counts, seconds
