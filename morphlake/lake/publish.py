"""All-or-nothing writes: stage partitions away from the tables, check them, publish by atomic rename."""

from __future__ import annotations

import os
import shutil
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from morphlake.errors import MorphlakeError
from morphlake.lake.faults import crash_point
from morphlake.lake.files import fsync_dir
from morphlake.lake.layout import PART_FILE, Lake, read_part, write_part

VOLATILE_COLUMNS = ("run_id",)  # differ between runs without the data changing


@dataclass(frozen=True)
class Staged:
    """One staged partition file and where it will be published."""

    table: str
    keys: dict[str, str]
    staged: Path
    _: KW_ONLY
    target: Path
    rows: int


def check_partition(data: pa.Table, what: str, unique: str | None, *, expected_rows: int | None) -> None:
    """Raise MorphlakeError if keys repeat, z values are not finite, or the row count is off."""
    if expected_rows is not None and data.num_rows != expected_rows:
        raise MorphlakeError(
            f"{what}: staged {data.num_rows} rows, expected {expected_rows}",
            "this is a bug in morphlake; the lake was not changed",
        )
    # No Python scalars in these checks (they make pyarrow import pandas: see morphlake.lake.arrays).
    if unique and data.num_rows:
        if pc.count_distinct(data[unique]).as_py() != data.num_rows - data[unique].null_count:
            counts = pc.value_counts(data[unique])
            repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
            raise MorphlakeError(
                f"{what}: {unique} repeats: {', '.join(map(str, repeated[:5]))}",
                "remove the duplicates from the input; the lake was not changed",
            )
        if data[unique].null_count:
            raise MorphlakeError(f"{what}: {data[unique].null_count} rows have no {unique}", "the lake was not changed")
    for name in data.column_names:
        col = data[name]
        if name.startswith("z_") and pa.types.is_floating(col.type):
            # a null z_sigma is allowed: legacy stores that kept only z_mu have none; NaN and ±inf never are
            missing_ok = name.startswith("z_sigma_")
            finite = pc.all(pc.is_finite(col)).as_py() is not False  # nulls skipped
            if not finite or (col.null_count and not missing_ok):
                raise MorphlakeError(
                    f"{what}: column {name} holds non-finite{'' if missing_ok else ' or missing'} values",
                    "check the encoder and its inputs; the lake was not changed",
                )


def same_content(existing: Path, data: pa.Table) -> bool:
    """True when the published file already holds exactly this data (ignoring run ids)."""
    if not existing.is_file():
        return False
    try:
        old = read_part(existing)
    except (OSError, pa.ArrowException):
        return False
    drop = lambda t: t.drop_columns([c for c in VOLATILE_COLUMNS if c in t.column_names])  # noqa: E731
    return old.schema.equals(data.schema) and drop(old).equals(drop(data))


class Transaction:
    """Stages partition files under <lake>/.staging/<run_id>/ and publishes them after the run succeeds."""

    def __init__(self, lake: Lake, run_id: str):
        self.lake = lake
        self.dir = lake.staging_dir / run_id
        self.staged: list[Staged] = []
        self.retired: list[Path] = []  # partition folders to remove at publish

    def stage(
        self,
        table: str,
        keys: dict[str, str],
        data: pa.Table,
        *,
        unique: str | None = "snip_id",
        expected_rows: int | None = None,
    ) -> Staged:
        """Check and write one partition to the staging area (not yet visible in the lake)."""
        target = self.lake.partition_file(table, **keys)
        what = f"{table} partition {self.lake.relative(target.parent)}"
        check_partition(data, what, unique, expected_rows=expected_rows)
        staged = self.dir / target.relative_to(self.lake.root)
        staged.parent.mkdir(parents=True, exist_ok=True)
        write_part(data, staged)
        with open(staged, "rb+") as handle:
            os.fsync(handle.fileno())
        written = pq.ParquetFile(staged).metadata.num_rows
        if written != data.num_rows:
            raise MorphlakeError(f"{what}: wrote {written} rows of {data.num_rows}", "check free disk space and re-run")
        crash_point("stage")
        item = Staged(table, dict(keys), staged, target=target, rows=data.num_rows)
        self.staged = [s for s in self.staged if s.target != target] + [item]
        return item

    def current(self, table: str, keys: dict[str, str]) -> pa.Table | None:
        """The partition as this transaction leaves it so far: what it staged, else the published file (None when
        there is neither)."""
        target = self.lake.partition_file(table, **keys)
        path = next((s.staged for s in self.staged if s.target == target), target)
        return read_part(path) if path.is_file() else None

    def retire(self, table: str, keys: dict[str, str]) -> None:
        """Remove a whole partition at publish (e.g. an experiment no longer in df02)."""
        folder = self.lake.partition_dir(table, **keys)
        if folder.is_dir() and folder not in self.retired:
            self.retired.append(folder)

    def publish(self) -> dict[str, list[str]]:
        """Move every staged partition into place (one atomic rename each), skipping unchanged ones; then
        remove retired partitions (each moved out of its table with one rename, so it is whole or gone)."""
        published, unchanged, removed = [], [], []
        crash_point("before-publish")
        for item in self.staged:
            rel = self.lake.relative(item.target.parent)
            if same_content(item.target, read_part(item.staged)):
                unchanged.append(rel)
                continue
            item.target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(item.staged, item.target)
            fsync_dir(item.target.parent)
            published.append(rel)
            crash_point("publish")
        for folder in self.retired:
            trash = self.dir / ".retired" / self.lake.relative(folder)
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, trash)
            fsync_dir(folder.parent)
            removed.append(self.lake.relative(folder))
            crash_point("publish")
        crash_point("after-publish")
        self.discard()
        return {"published": published, "unchanged": unchanged, **({"removed": removed} if removed else {})}

    def discard(self) -> None:
        """Forget everything staged (the lake is untouched)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.staged, self.retired = [], []
        try:
            self.lake.staging_dir.rmdir()  # only when no other staging is left
        except OSError:
            pass

    @staticmethod
    def clean_stale(lake: Lake) -> list[str]:
        """Remove staging folders left by crashed runs; call only while holding the lake lock."""
        if not lake.staging_dir.is_dir():
            return []
        stale = sorted(p.name for p in lake.staging_dir.iterdir())
        for name in stale:
            shutil.rmtree(lake.staging_dir / name, ignore_errors=True)
        return stale


__all__ = ["Transaction", "Staged", "check_partition", "same_content", "PART_FILE"]
