"""What `build` and `demo` print after a green dbt build: where df03 is, its coverage, and a query to try."""

from __future__ import annotations

import duckdb

from morphlake.layout import Lake


def describe_df03(lake: Lake) -> str:
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        rows = con.execute("select count(*) from df03").fetchall()[0][0]
        coverage = con.execute(
            "select experiment_date, usable_rows, embedded_rows, coverage from df03_coverage order by 1").fetchall()
    usable = sum(r[1] for r in coverage)
    embedded = sum(r[2] for r in coverage)
    lines = [
        f"df03: {rows} rows — view df03 in {lake.warehouse}; Parquet in {lake.root / 'exports' / 'df03'}/",
        f"coverage: {embedded}/{usable} usable df02 rows have an embedding"
        + (f" ({embedded / usable:.1%})" if usable else ""),
    ]
    lines += [f"  {exp:<32} {emb:>6}/{use:<6} {'' if cov is None else f'{cov:.1%}'}" for exp, use, emb, cov in coverage]
    lines.append("try:  python -c \"import duckdb; print(duckdb.connect('"
                 f"{lake.warehouse}', read_only=True).sql('select * from df03_coverage'))\"")
    return "\n".join(lines)
