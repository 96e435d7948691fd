"""`morphlake neighbours` at 1M snips against the README's df03 query and a numpy scan, side by side.

Run from the repository root:  .venv/bin/python -m benchmarks.neighbours [--snips 1000000] [--rounds 3]

A synthetic lake (benchmarks/synthetic_lake.py, D = 100) is written straight as Parquet and built with the
real `morphlake build` (the warehouse's df03). In interleaved rounds, for a different snip each round:
- neighbours: `morphlake.report.neighbours.nearest` (what the command runs, in-process);
- the README's query: the df03 self-join with `array_cosine_similarity` on the warehouse;
- numpy: read the model's z_mu columns from Parquet (pyarrow), normalise, one matrix-vector product, top k.
Each answer's ids are checked against the README query's. The CLI's own wall time (a fresh process:
imports included) is measured once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as ds

from benchmarks.common import Rounds, peak_of, seconds, table
from benchmarks.synthetic_lake import write_lake
from morphlake import DEFAULT_MODEL_NAME
from morphlake.lake.layout import Lake
from morphlake.report.neighbours import nearest

README_QUERY = """
select b.snip_id, array_cosine_similarity(a.z_mu, b.z_mu) as similarity
from df03 a join df03 b on a.snip_id <> b.snip_id
where a.snip_id = ? order by similarity desc limit ?
"""


def numpy_scan(lake: Lake, snip: str, k: int) -> list[str]:
    data = ds.dataset(lake.partition_dir("embeddings", model_name=DEFAULT_MODEL_NAME), format="parquet")
    names = [f"z_mu_{j:02d}" for j in range(100)]
    frame = data.to_table(columns=["snip_id", *names])
    z = np.column_stack([frame[n].to_numpy() for n in names])
    ids = frame["snip_id"].to_numpy(zero_copy_only=False)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    similarity = z @ z[np.flatnonzero(ids == snip)[0]]
    similarity[ids == snip] = -np.inf
    top = np.argpartition(-similarity, k)[:k]
    return ids[top[np.argsort(-similarity[top])]].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    morphlake = str(Path(sys.executable).parent / "morphlake")
    rounds = Rounds()
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-neighbours-") as tmp:
        start = time.perf_counter()
        lake = write_lake(Path(tmp) / "lake", args.snips, companion=False)
        print(f"wrote a {args.snips:,}-snip lake in {time.perf_counter() - start:.0f} s", flush=True)
        build_s, _, _ = peak_of([morphlake, "build", "--lake", str(lake.root)])
        print(f"morphlake build: {build_s:.0f} s", flush=True)
        with duckdb.connect(str(lake.warehouse), read_only=True) as con:
            snips = [r[0] for r in con.execute(f"select snip_id from df03 using sample {args.rounds} rows").fetchall()]
            for snip in snips:
                expected = [r[0] for r in con.execute(README_QUERY, [snip, args.k]).fetchall()]
                got: list = []
                rounds.add(
                    "neighbours",
                    seconds(
                        lambda: got.extend(nearest(lake, snip, model_name=DEFAULT_MODEL_NAME, k=args.k).table.rows())
                    ),
                )
                assert [r[1] for r in got] == expected, (snip, got, expected)
                rounds.add("readme", seconds(lambda: con.execute(README_QUERY, [snip, args.k]).fetchall()))
                found: list = []
                rounds.add("numpy", seconds(lambda: found.extend(numpy_scan(lake, snip, args.k))))
                assert found == expected, (snip, found, expected)
        cli_s, _, _ = peak_of([morphlake, "neighbours", snips[0], "-k", str(args.k), "--lake", str(lake.root)])
    fast = rounds.median("neighbours")
    rows = [
        ["morphlake neighbours (in-process)", fast, 1.0],
        ["README query on the warehouse's df03", rounds.median("readme"), rounds.median("readme") / fast],
        ["numpy: read z_mu Parquet + matvec + top k", rounds.median("numpy"), rounds.median("numpy") / fast],
        ["morphlake neighbours CLI (fresh process)", cli_s, cli_s / fast],
    ]
    title = f"nearest {args.k} of {args.snips:,} snips (D = 100), median of {args.rounds} rounds; same ids in all three"
    print(table(title, ["way", "seconds", "x neighbours"], rows))


if __name__ == "__main__":
    main()
