"""The df03 export's Parquet writer at the machine's limit: DuckDB's partitioned COPY, pyarrow's writer and Polars'
writer side by side, each in a process of its own (so its peak memory is its own).

Run from the repository root:  .venv/bin/python -m benchmarks.export_writers [--rows 1000000] [--lake-snips 1000000]

1. The writers alone: one in-memory Arrow table shaped like df03 (df02's 19 columns, 7 of provenance, then 100
   float32 z_mu, and for 235 columns 100 z_sigma too; 100 experiments) written as one snappy file per experiment:
   rows/s, MB/s of Parquet written, peak memory above the table's own, row groups; beside them the physical bounds
   (this disk's write speed with fsync, and one core's snappy encode and plain copy speed).
2. From a lake: a legacy-shaped data root ingested and built, then int_df03 exported from a copy of its warehouse by
   DuckDB's partitioned COPY (the export before #26) and by morphlake's export (DuckDB's join into Arrow runs,
   pyarrow's writer on threads), alternately, twice each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import peak_of, table

EXPERIMENTS = 100
MORPHLAKE = str(Path(sys.executable).parent / "morphlake")


def df03_like(rows: int, z_columns: int):
    """A df03-shaped Arrow table: the benchmarks' df02 (19 columns, `rows` // 100 snips per experiment), 7 columns of
    provenance, then `z_columns` float32 columns (z_mu, then z_sigma)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    from benchmarks.legacy_root import df02_frame

    rng = np.random.default_rng(0)
    source = pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("legacy_csv")).otherwise(pl.lit("onnx"))
    frame = df02_frame(rows, rng, max(1, rows // EXPERIMENTS)).with_columns(
        model_name=pl.lit("20241107_ds_sweep01_optimum"),
        embedding_source=source,
        encoder_weights=pl.lit("trained"),
        model_sha256=pl.lit("0" * 64),
        image_fingerprint=pl.int_range(pl.len()).cast(pl.String).str.zfill(16),
        embed_options=pl.lit(None, pl.String),
        embedding_run_id=pl.lit("20261204T000000.000Z-embed-000000"),
    )
    z = rng.standard_normal((rows, z_columns), dtype=np.float32)
    names = [f"z_mu_{j:02d}" if j < 100 else f"z_sigma_{j - 100:02d}" for j in range(z_columns)]
    table = pl.concat([frame, pl.DataFrame(z, schema=names)], how="horizontal").to_arrow()
    # as DuckDB hands the export its rows: strings as `string`, not Polars' `large_string`
    strings = [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
    return table.cast(pa.schema(strings))


def write_alone(writer: str, rows: int, z_columns: int, out: Path) -> dict:
    """Child: build the table, then time one writer writing it as one snappy file per experiment."""
    import duckdb
    import polars as pl
    import pyarrow.compute as pc

    from morphlake.common.peak_memory import PhasePeaks
    from morphlake.lake.layout import write_part

    data = df03_like(rows, z_columns).sort_by("experiment_date")
    experiments = pc.unique(data["experiment_date"]).to_pylist()
    peaks = PhasePeaks()
    peaks.enter("held")
    peaks.leave("held")
    peaks.enter("write")
    start = time.perf_counter()
    if writer == "duckdb COPY PARTITION_BY":
        con = duckdb.connect()
        con.execute("SET preserve_insertion_order = false")
        con.register("data", data)
        con.execute(f"COPY data TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (experiment_date))")
    elif writer.startswith("pyarrow"):
        from concurrent.futures import ThreadPoolExecutor

        threads = 1 if writer.endswith("1 thread") else os.cpu_count() or 1
        counts = pc.value_counts(data["experiment_date"]).field("counts").to_pylist()
        offsets = [sum(counts[:k]) for k in range(len(counts))]
        with ThreadPoolExecutor(threads) as pool:
            jobs = [
                pool.submit(write_part, data.slice(o, n), out / f"{exp}.parquet", compression="snappy")
                for exp, o, n in zip(experiments, offsets, counts)
            ]
            [job.result() for job in jobs]
    elif writer == "polars write_parquet":
        frame = pl.from_arrow(data)
        for (exp,), part in frame.group_by("experiment_date", maintain_order=True):
            part.write_parquet(out / f"{exp}.parquet", compression="snappy")
    seconds = time.perf_counter() - start
    peaks.leave("write")
    files = [p for p in out.rglob("*.parquet")]
    size = sum(p.stat().st_size for p in files)
    import pyarrow.parquet as pq

    groups = [pq.ParquetFile(p).metadata.num_row_groups for p in files]
    return {
        "seconds": seconds,
        "bytes": size,
        "files": len(files),
        "row_groups": sum(groups),
        "above_table_mib": peaks.peaks["write"] - peaks.peaks["held"],
    }


ROWS_BEFORE_26 = 100_000  # rows per run before #26 (runs are now bounded in values: df03_export.RUN_VALUES)


def export_from_lake(method: str, warehouse: Path, out: Path) -> dict:
    """Child: export int_df03 of a built lake's warehouse (a private copy) into `out`, by one method."""
    import duckdb

    from morphlake.common.peak_memory import PhasePeaks
    from morphlake.steps.build.df03_export import experiment_rows, export_df03, export_groups

    copy = out.parent / f"{out.name}.duckdb"
    shutil.copy(warehouse, copy)
    con = duckdb.connect(str(copy))
    experiments = [r[0] for r in con.execute("select distinct experiment_date from stg_df02 order by 1").fetchall()]
    peaks = PhasePeaks()
    peaks.enter("export")
    start = time.perf_counter()
    if method == "morphlake (join into Arrow runs, pyarrow writer threads)":
        written = export_df03(con, out, model_name="m", rebuild=experiments)
    else:  # the export before #26: one partitioned COPY per run of experiments
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET parquet_metadata_cache = true")
        for i, group in enumerate(export_groups(experiment_rows(con, experiments), max_rows=ROWS_BEFORE_26)):
            con.execute(
                "COPY (select * from int_df03 where experiment_date in (select unnest($exps))) TO "
                f"'{out}/run-{i}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (experiment_date))",
                {"exps": group},
            )
        written = {}
    seconds = time.perf_counter() - start
    peaks.leave("export")
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    return {"seconds": seconds, "bytes": size, "peak_mib": peaks.peaks["export"], "experiments": len(written)}


def disk_write_mb_s(folder: Path, mib: int = 512) -> float:
    """This disk's sequential write speed: `mib` MiB of random bytes written and fsynced."""
    block = os.urandom(1 << 20)
    path = folder / "disk-speed.bin"
    start = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return mib / seconds


def encode_mb_s() -> tuple[float, float]:
    """One core's snappy compression and plain copy speed over 256 MiB of float32 (what PLAIN encoding does)."""
    import numpy as np
    import pyarrow as pa

    data = np.random.default_rng(0).standard_normal(64 << 20, dtype=np.float32)
    start = time.perf_counter()
    pa.compress(pa.py_buffer(data), codec="snappy")
    snappy = data.nbytes / 2**20 / (time.perf_counter() - start)
    target = np.empty_like(data)
    target[:] = 0  # its pages mapped first: the copy alone is timed
    start = time.perf_counter()
    np.copyto(target, data)
    return snappy, data.nbytes / 2**20 / (time.perf_counter() - start)


WRITERS = [
    "duckdb COPY PARTITION_BY",
    "pyarrow write_table, 1 thread",
    "pyarrow write_table, every core",
    "polars write_parquet",
]
METHODS = ["duckdb COPY per run (before #26)", "morphlake (join into Arrow runs, pyarrow writer threads)"]


def child(argv: list[str]) -> None:
    kind, name, *rest = argv
    out = Path(rest[-1])
    out.mkdir(parents=True)
    if kind == "alone":
        result = write_alone(name, int(rest[0]), int(rest[1]), out)
    else:
        result = export_from_lake(name, Path(rest[0]), out)
    shutil.rmtree(out)
    print("RESULT " + json.dumps(result))


def run_child(*args: str) -> tuple[dict, float]:
    _, peak, output = peak_of([sys.executable, "-m", "benchmarks.export_writers", "--child", *args])
    return json.loads(output.rsplit("RESULT ", 1)[1].splitlines()[0]), peak


def alone_rows(rows: int, tmp: Path) -> list[list]:
    out = []
    for z_columns in (200, 100):
        for writer in WRITERS:
            result, peak = run_child("alone", writer, str(rows), str(z_columns), str(tmp / "alone"))
            mb = result["bytes"] / 2**20
            out.append(
                [
                    f"{26 + z_columns} columns: {writer}",
                    result["seconds"],
                    f"{rows / result['seconds'] / 1000:,.0f}k",
                    f"{mb / result['seconds']:,.0f}",
                    f"{mb:,.0f}",
                    f"{result['above_table_mib']:,.0f}",
                    f"{rows // result['row_groups']:,}",
                ]
            )
    return out


def lake_rows(snips: int, tmp: Path) -> list[list]:
    from benchmarks.legacy_root import write_data_root

    root, lake = tmp / "root", tmp / "lake"
    write_data_root(root, snips)
    subprocess.run([MORPHLAKE, "-q", "ingest", "--root", root, "--data-root", root, "--lake", lake], check=True)
    subprocess.run([MORPHLAKE, "-q", "build", "--lake", lake], check=True)
    warehouse = (lake / "warehouse.duckdb").resolve()
    results: dict[str, list] = {m: [] for m in METHODS}
    for round_ in range(2):
        for method in METHODS:
            results[method].append(run_child("lake", method, str(warehouse), str(tmp / f"export-{round_}")))
    out = []
    for method, runs in results.items():
        best = min(runs, key=lambda r: r[0]["seconds"])[0]
        out.append(
            [
                method,
                best["seconds"],
                f"{snips / best['seconds'] / 1000:,.0f}k",
                f"{best['bytes'] / 2**20 / best['seconds']:,.0f}",
                f"{best['bytes'] / 2**20:,.0f}",
                f"{max(r[0]['peak_mib'] for r in runs):,.0f}",
            ]
        )
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lake-snips", type=int, default=1_000_000, help="0 skips the lake table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-writers-") as name:
        tmp = Path(name)
        disk = disk_write_mb_s(tmp)
        snappy, copy = encode_mb_s()
        header = ["", "s", "rows/s", "MB/s written", "MB", "peak MiB above the table", "rows per row group"]
        print(
            table(
                f"the writers alone, {args.rows:,} rows, one snappy file per experiment",
                header,
                alone_rows(args.rows, tmp),
            )
        )
        print(
            f"\nphysical bounds: this disk writes {disk:,.0f} MB/s (512 MiB, fsync); one core encodes "
            f"{snappy:,.0f} MB/s of float32 with snappy and copies {copy:,.0f} MB/s (PLAIN)"
        )
        if args.lake_snips:
            header = ["", "s", "rows/s", "MB/s written", "MB", "peak MiB (process)"]
            rows = lake_rows(args.lake_snips, tmp)
            print()
            print(table(f"int_df03 of a {args.lake_snips:,}-snip lake exported (best of 2)", header, rows))


if __name__ == "__main__":
    main()
