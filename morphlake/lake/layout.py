"""Where every lake table, partition, run record and the warehouse live (DESIGN §2)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from morphlake.ingest.errors import InputError
from morphlake.ingest.naming import check_segment

if TYPE_CHECKING:
    import pyarrow as pa

PART_FILE = "part-00000.parquet"
ROW_GROUP_ROWS = 131_072  # rows per Parquet row group the lake writes: DuckDB reads row groups in parallel
# characters a lake path cannot hold: dbt-duckdb reads the warehouse path as a URL (? and #), and DuckDB's globs,
# which read the lake's Parquet, cannot match a backslash literally
UNBUILDABLE = "?#\\"
WAREHOUSE_FILE = "warehouse.duckdb"  # at the lake's root (a link) and in each build folder under the same name
TABLES = {
    "df02": ("raw", "df02"),
    "train": ("raw", "train"),
    "snips": ("raw", "snips"),
    "embeddings": ("embeddings",),
    "df03_export": ("exports", "df03"),
}
# Each table's Hive partition keys, in folder order: <table>/<k1>=<v1>/…/part-00000.parquet.
PARTITION_KEYS = {
    "df02": ("experiment_date",),
    "train": ("train_name",),
    "snips": ("experiment_date",),
    "embeddings": ("model_name", "experiment_date"),
    "df03_export": ("experiment_date",),
}


def table_files(table: str) -> str:
    """A table's Parquet files as a glob relative to the lake root (raw/df02/*/*.parquet), as dbt's sources read
    them (models/staging/_lake__sources.yml, rendered from morphlake.lake.schemas)."""
    return "/".join([*TABLES[table], *("*" for _ in PARTITION_KEYS[table]), "*.parquet"])


def read_part(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file of the lake as a pyarrow Table, as written (no Hive columns from its path).

    ParquetFile, not pq.read_table: read_table loads pyarrow.dataset, which imports pandas where it is installed."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as part:
        return part.read(columns=columns)


def write_part(table: pa.Table, path: Path | str, *, compression: str = "zstd") -> None:
    """One Parquet file of the lake: dictionary-encoded where it pays (ids, names, flags), not for floating columns.

    A float32 embedding barely repeats: pyarrow's default dictionary pass made the embeddings files ~45% larger and
    ~40% slower for DuckDB to read (benchmarks/README.md, "df03 at every size")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary = [field.name for field in table.schema if not pa.types.is_floating(field.type)]
    pq.write_table(table, path, compression=compression, use_dictionary=dictionary, row_group_size=ROW_GROUP_ROWS)


def default_lake() -> Path:
    """--lake default: MORPHLAKE_LAKE, else ./lake."""
    return Path(os.environ.get("MORPHLAKE_LAKE") or "lake")


@dataclass(frozen=True)
class Lake:
    """Paths of one lake root; nothing here touches the disk."""

    root: Path

    @classmethod
    def at(cls, root: Path | str | None) -> Lake:
        """The lake at `root` (default: default_lake()). Quotes, brackets, `*`, spaces and non-ASCII in its path
        work in every command; `?`, `#` and a backslash are refused here, up front (UNBUILDABLE says why)."""
        path = Path(root if root is not None else default_lake()).absolute()
        odd = " and ".join(sorted({f"'{char}'" for char in str(path) if char in UNBUILDABLE}))
        if odd:
            raise InputError(
                f"the lake path {path} holds {odd}: dbt-duckdb reads ? and # in the "
                "warehouse's path as part of a URL, and DuckDB cannot match a backslash in the paths it reads, so no "
                "warehouse could be built there",
                "choose a lake folder whose path has no ?, # or \\ (--lake or MORPHLAKE_LAKE)",
            )
        return cls(path)

    def table_dir(self, table: str) -> Path:
        return self.root.joinpath(*TABLES[table])

    def partition_dir(self, table: str, **keys: str) -> Path:
        """<table>/<k1>=<v1>/…; every value is checked as a safe path segment first."""
        path = self.table_dir(table)
        for key, value in keys.items():
            path = path / f"{key}={check_segment(key, value)}"
        return path

    def partition_file(self, table: str, **keys: str) -> Path:
        return self.partition_dir(table, **keys) / PART_FILE

    def partition_values(self, table: str, key: str = "experiment_date") -> list[str]:
        """The sorted values of a table's first-level partition key (empty when the table has none yet)."""
        base = self.table_dir(table)
        return sorted(p.name.split("=", 1)[1] for p in base.glob(f"{key}=*")) if base.is_dir() else []

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def warehouse(self) -> Path:
        """The warehouse readers open: a link to the current build's (lake.builds)."""
        return self.root / WAREHOUSE_FILE

    @property
    def builds_dir(self) -> Path:
        """<lake>/builds/: one folder per build snapshot and the `current` link (lake.builds)."""
        return self.root / "builds"

    @property
    def dbt_target(self) -> Path:
        """dbt's target folder for `morphlake build` (manifest, run_results.json, compiled SQL)."""
        return self.root / ".dbt" / "target"

    @property
    def dbt_logs(self) -> Path:
        return self.root / ".dbt" / "logs"

    def models_dir(self, model_name: str) -> Path:
        """<lake>/models/<model>/: encoders exported from a state dict, and --precision copies."""
        return self.root / "models" / check_segment("model name", model_name)

    @property
    def df03_export(self) -> Path:
        """The df03 Parquet export (Hive partitions by experiment_date)."""
        return self.table_dir("df03_export")

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))
