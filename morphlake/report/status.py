"""`morphlake status`: a text summary of the lake read from Parquet footers and run records."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from morphlake.lake.layout import TABLES, Lake


def not_in_df02(lake: Lake) -> list[str]:
    """Experiments the ledger or the embeddings still hold but df02 no longer lists (kept: they cost to make)."""
    in_df02 = set(lake.partition_values("df02"))
    lines = []
    for table in ("snips", "embeddings"):
        base = lake.table_dir(table)
        found = {p.name.split("=", 1)[1] for p in base.rglob("experiment_date=*")} if base.is_dir() else set()
        gone = sorted(found - in_df02)
        if gone and in_df02:
            lines.append(f"  not in df02 (kept in {table}, left out of df03): {', '.join(gone)}")
    return lines


def lake_status(lake: Lake) -> str:
    if not lake.root.is_dir():
        return f"no lake at {lake.root} (run `morphlake ingest` or `morphlake demo`)"
    lines = [f"lake {lake.root}"]
    for table in TABLES:
        files = sorted(lake.table_dir(table).rglob("*.parquet"))
        if not files:
            continue
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        lines.append(f"  {table:<12} {len(files):>4} partition file(s) {rows:>10} rows")
        groups: dict[str, int] = {}
        for f in files:
            rel = f.parent.relative_to(lake.table_dir(table)).parts
            key = rel[0] if table == "embeddings" and len(rel) > 1 else ""
            if key:
                groups[key] = groups.get(key, 0) + pq.ParquetFile(f).metadata.num_rows
        for key, n in groups.items():
            lines.append(f"    {key:<40} {n:>10} rows")
    lines += not_in_df02(lake)
    runs = sorted(lake.runs_dir.glob("*.json")) if lake.runs_dir.is_dir() else []
    runs = [r for r in runs if not r.name.endswith(".partial.json")][-5:]
    if runs:
        lines.append("  recent runs:")
        for path in runs:
            rec = json.loads(path.read_text())
            lines.append(f"    {rec['run_id']:<40} {rec.get('outcome', '?'):<9} {rec.get('elapsed_s', '?')}s")
    if lake.warehouse.exists():
        lines.append(f"  warehouse {lake.warehouse}")
    return "\n".join(lines)


__all__ = ["lake_status"]
