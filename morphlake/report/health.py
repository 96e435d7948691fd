"""What the lake holds and how current it is: coverage of df02 per model and experiment, stale embeddings,
experiments gone from df02, the writer running now and the last failed run (for `status` and `report`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from morphlake.common.coverage import coverage_sql
from morphlake.common.sqltext import literal
from morphlake.errors import MorphlakeError
from morphlake.ingest.ledger import IMAGE_GONE
from morphlake.lake import currency
from morphlake.lake.layout import TABLES, Lake
from morphlake.lake.lock import lock_holder
from morphlake.report.lakedb import connect, model_names, model_view, require_model, views, z_mu_columns

COVERAGE_SQL = coverage_sql(df02="df02", embeddings="model_embeddings")

STALE_SQL = f"""
select e.experiment_date, count(*) as stale
from model_embeddings e
join snips s on e.snip_id = s.snip_id and e.experiment_date = s.experiment_date
where {currency.IMAGE_CHANGED_SQL}
group by 1 order by 1
"""

# ONNX embeddings of df02 snips whose image the ledger no longer has (the build's image_available test)
IMAGES_GONE_SQL = f"""
select e.experiment_date, count(*) as gone
from model_embeddings e
join df02 d on e.snip_id = d.snip_id and e.experiment_date = d.experiment_date
left join snips s on e.snip_id = s.snip_id and e.experiment_date = s.experiment_date
where e.source = 'onnx' and (s.snip_id is null or s.image_status in ({", ".join(map(literal, IMAGE_GONE))}))
group by 1 order by 1
"""


def died(record: dict, writer: dict | None) -> bool:
    """A record still `running` whose process is not the lake's writer now: killed or crashed mid-run."""
    if record.get("outcome") != "running":
        return False
    return not writer or (writer.get("pid"), writer.get("host")) != (record.get("pid"), record.get("host"))


def read_runs(lake: Lake) -> list[dict]:
    """Every run record, oldest first (run ids sort by start time); a partial run's skipped items attached; a run
    that died (killed or crashed before it could finish its record) has outcome `died` and says so."""
    if not lake.runs_dir.is_dir():
        return []
    records = []
    for path in sorted(lake.runs_dir.glob("*.json")):
        if path.name.endswith(".partial.json"):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        manifest = Path(record.get("partial_manifest") or lake.runs_dir / f"{path.stem}.partial.json")
        if manifest.is_file():
            try:
                record["skipped_items"] = json.loads(manifest.read_text()).get("skipped", [])
            except (OSError, ValueError):
                pass
        records.append(record)
    # the writer is read after the records: a run that started meanwhile is listed with its lock taken
    writer = lock_holder(lake.lock_file)
    for record in records:
        if died(record, writer) and died(_reread(lake, record), writer):  # not one that finished meanwhile
            record["outcome"] = "died"
            record["error"] = (
                f"Died: its process (pid {record.get('pid', '?')} on {record.get('host', '?')}) ended before the run "
                "finished: killed or crashed. The lake holds nothing of it, or whole partitions it had published\n"
                "  hint: run the command again: it finishes the job (and removes the dead run's staging)"
            )
    return records


def _reread(lake: Lake, record: dict) -> dict:
    try:
        return json.loads((lake.runs_dir / f"{record.get('run_id')}.json").read_text())
    except (OSError, ValueError):
        return record


def split_error(error: str) -> tuple[str, str]:
    """A run record's error ('InputError: message\\n  hint: …') -> (message, hint), the class name left out."""
    message, _, hint = (error or "").partition("\n  hint:")
    return re.sub(r"^[A-Z]\w*: ", "", message.strip()), hint.strip()


def last_failed(runs: list[dict]) -> dict | None:
    """The latest failed run, when no run of the same command completed after it."""
    for index in range(len(runs) - 1, -1, -1):
        run = runs[index]
        if run.get("outcome") not in ("failed", "died"):
            continue
        same = [r for r in runs[index + 1 :] if r.get("command") == run.get("command")]
        if any(r.get("outcome") not in ("failed", "died") for r in same):
            return None
        message, hint = split_error(run.get("error", ""))
        return {
            "run_id": run.get("run_id"),
            "command": run.get("command"),
            "started": run.get("started"),
            "error": message,
            "hint": hint,
        }
    return None


def table_counts(lake: Lake) -> dict[str, dict]:
    """Partition files and rows of each lake table (from the Parquet footers), embeddings per model too."""
    out = {}
    for table in TABLES:
        base = lake.table_dir(table)
        # partition files only (an export from before df03_schema.parquet moved beside it still holds _schema.parquet)
        files = sorted(p for p in base.rglob("*.parquet") if not p.name.startswith("_")) if base.is_dir() else []
        if not files:
            continue
        rows = {f: pq.ParquetFile(f).metadata.num_rows for f in files}
        entry = {"files": len(files), "rows": sum(rows.values())}
        if table == "embeddings":
            per_model: dict[str, int] = {}
            for f, n in rows.items():
                model = f.parent.parent.name.split("=", 1)[1]
                per_model[model] = per_model.get(model, 0) + n
            entry["models"] = per_model
        out[table] = entry
    return out


def not_in_df02(lake: Lake) -> dict[str, list[str]]:
    """Experiments the ledger or the embeddings still hold but df02 no longer lists (kept: they cost to make)."""
    in_df02 = set(lake.partition_values("df02"))
    if not in_df02:
        return {}
    found = {"snips": set(lake.partition_values("snips")), "embeddings": set()}
    for model in model_names(lake):
        folder = lake.partition_dir("embeddings", model_name=model)
        found["embeddings"] |= {p.name.split("=", 1)[1] for p in folder.glob("experiment_date=*")}
    return {table: sorted(exps - in_df02) for table, exps in found.items() if exps - in_df02}


def model_coverage(con: duckdb.DuckDBPyConnection, lake: Lake, model_name: str) -> dict:
    """Coverage of df02 by one model's embeddings, overall and per experiment, with stale rows per experiment."""
    model_view(con, lake, model_name)
    have = views(con)
    rows = con.execute(COVERAGE_SQL).fetchall() if "df02" in have else []
    stale = dict(con.execute(STALE_SQL).fetchall()) if "snips" in have else {}
    gone = dict(con.execute(IMAGES_GONE_SQL).fetchall()) if {"snips", "df02"} <= have else {}
    zero = zero_norm(con)
    keys = ("df02_rows", "embedded", "usable_rows", "usable_embedded", "legacy_rows", "onnx_rows")
    experiments = [
        {
            "experiment_date": r[0],
            **dict(zip(keys, r[1:])),
            "stale": stale.get(r[0], 0),
            "image_gone": gone.get(r[0], 0),
            "zero_norm": zero.get(r[0], 0),
        }
        for r in rows
    ]
    total = {k: sum(e[k] for e in experiments) for k in (*keys, "stale", "image_gone")}
    total["zero_norm"] = sum(zero.values())  # of experiments gone from df02 too
    total["stale"] = sum(stale.values())  # stale rows of experiments gone from df02 count too
    return {"model_name": model_name, "total": total, "experiments": experiments}


def zero_norm(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Embeddings per experiment whose z_mu is all zeros (cosine similarity is undefined for them: `neighbours`
    leaves them out)."""
    zs = z_mu_columns(con, "model_embeddings")
    if not zs:
        return {}
    where = " and ".join(f'"{z}" = 0' for z in zs)
    rows = con.execute(f"select experiment_date, count(*) from model_embeddings where {where} group by 1").fetchall()
    return dict(rows)


def lake_health(lake: Lake, model_name: str | None = None) -> dict:
    """Everything `status` shows, as plain data (`status --json` prints it). A lake file that cannot be read (damaged,
    or changed outside morphlake) is a MorphlakeError naming it, never a traceback."""
    try:
        return _health(lake, model_name)
    except (duckdb.Error, pa.ArrowException, OSError) as error:
        raise MorphlakeError(
            f"cannot read the lake {lake.root}: {str(error).strip().splitlines()[0]}",
            "a file there is damaged or was changed outside morphlake: run the step that writes it again "
            "(e.g. `morphlake ingest`), or restore it",
        ) from None


def _health(lake: Lake, model_name: str | None) -> dict:
    con = connect(lake)
    if model_name:
        require_model(lake, model_name)
    models = [model_name] if model_name else model_names(lake)
    runs = read_runs(lake)
    return {
        "lake": str(lake.root),
        "tables": table_counts(lake),
        "models": [model_coverage(con, lake, m) for m in models],
        "not_in_df02": not_in_df02(lake),
        "writer": lock_holder(lake.lock_file),
        "last_failed_run": last_failed(runs),
        "recent_runs": [
            {k: r.get(k) for k in ("run_id", "command", "outcome", "started", "elapsed_s")} for r in runs[-5:]
        ],
        "warehouse": str(lake.warehouse) if lake.warehouse.exists() else None,
    }
