"""The project's data tests as dbt compiled them, kept with a build and run again by the next incremental build.

An incremental build does not start dbt (its start-up and parse cost more than the work at most sizes): the SQL's
definitions are the same as in the last full build, so the views in the copied warehouse and the tests dbt
compiled then still hold. Each test is run the way dbt runs one (dbt's default `get_test_sql`): its query
wrapped in `select fail_calc as failures, fail_calc warn_if as should_warn, fail_calc error_if as should_error`.
Unit tests are not run again: they depend on the definitions only.
"""

from __future__ import annotations

import duckdb


def compiled_tests(result) -> list[dict]:
    """The data tests of a dbtRunner result, with what running them again needs."""
    tests = []
    for node_result in getattr(result.result, "results", None) or []:
        node = node_result.node
        if str(node.resource_type).lower().rsplit(".", 1)[-1] != "test" or not node.compiled_code:
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
            }
        )
    return tests


def run_tests(con: duckdb.DuckDBPyConnection, tests: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Run each test; returns (failing tests with dbt's message, count per status)."""
    failures, counts = [], {}
    for test in tests:
        limit = f"\nlimit {test['limit']}" if test.get("limit") is not None else ""
        calc = test["fail_calc"]
        failed, warn, error = con.execute(
            f"select {calc} as failures, {calc} {test['warn_if']} as should_warn, "
            f"{calc} {test['error_if']} as should_error from (\n{test['sql']}{limit}\n) dbt_internal_test"
        ).fetchone()
        if test["severity"] == "error" and error:
            status, condition = "fail", test["error_if"]
        elif warn:
            status, condition = "warn", test["warn_if"]
        else:
            status, condition = "pass", None
        counts[status] = counts.get(status, 0) + 1
        if status == "fail":
            noun = "result" if failed == 1 else "results"
            failures.append(
                {
                    "node": test["name"],
                    "status": status,
                    "message": f"Got {failed} {noun}, configured to fail if {condition}",
                    "failures": failed,
                }
            )
    return failures, counts
