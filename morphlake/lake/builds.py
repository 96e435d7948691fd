"""Build snapshots: the warehouse and the df03 export of each build side by side, made current as a pair.

    <lake>/builds/<build_id>/warehouse.duckdb      df03 in it is a view over this folder's df03/
    <lake>/builds/<build_id>/df03/experiment_date=<exp>/part-00000.parquet
    <lake>/builds/<build_id>/build.json            what the build read (fingerprints) and ran (compiled tests)
    <lake>/builds/current -> <build_id>            switched by one atomic rename
    <lake>/warehouse.duckdb -> builds/current/warehouse.duckdb
    <lake>/exports/df03 -> ../builds/current/df03

Readers open the two public paths; both resolve through `builds/current`, so at any instant they name the same
build: the old pair or the new pair. Partitions a build did not change are hard links to the previous build's
files. The previous build stays on disk (a reader that opened it keeps reading it); older ones are removed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from morphlake.lake.faults import crash_point
from morphlake.lake.files import fsync_dir
from morphlake.lake.layout import Lake

CURRENT = "current"
MANIFEST = "build.json"
WAREHOUSE = "warehouse.duckdb"
DF03 = "df03"


class Builds:
    """The build snapshots of one lake."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.dir = lake.root / "builds"

    def path(self, build_id: str) -> Path:
        return self.dir / build_id

    def current_id(self) -> str | None:
        """The published build, or None before the first one."""
        link = self.dir / CURRENT
        return os.readlink(link) if link.is_symlink() else None

    def manifest(self, build_id: str | None) -> dict | None:
        """What a build recorded (None when there is no build or its record is unreadable)."""
        if build_id is None:
            return None
        try:
            return json.loads((self.path(build_id) / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def new(self, build_id: str) -> Path:
        """An empty folder for a build in progress; not visible to readers until `switch`."""
        folder = self.path(build_id)
        (folder / DF03).mkdir(parents=True)
        return folder

    def write_manifest(self, build_id: str, manifest: dict) -> None:
        path = self.path(build_id) / MANIFEST
        path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

    def switch(self, build_id: str) -> None:
        """Make `build_id` current (one rename of a symlink), then point the public paths through `current`."""
        fsync_dir(self.path(build_id))
        tmp = self.dir / f".{CURRENT}.tmp{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(build_id, tmp)
        crash_point("build-switch")
        os.replace(tmp, self.dir / CURRENT)
        fsync_dir(self.dir)
        crash_point("build-switched")
        self._public_links()

    def _public_links(self) -> None:
        """<lake>/warehouse.duckdb and <lake>/exports/df03 as links through builds/current (once per lake; a lake
        from before snapshots has a plain file and folder there, replaced here)."""
        links = {
            self.lake.warehouse: Path("builds") / CURRENT / WAREHOUSE,
            self.lake.df03_export: Path("..") / "builds" / CURRENT / DF03,
        }
        for public, target in links.items():
            if public.is_symlink() and Path(os.readlink(public)) == target:
                continue
            public.parent.mkdir(parents=True, exist_ok=True)
            if public.is_dir() and not public.is_symlink():
                # a folder cannot be renamed over; move the old export aside first (a crash right here leaves
                # no public export until the next build, and never a wrong one)
                os.replace(public, self.dir / f".retired-{public.name}-{os.getpid()}")
            tmp = public.with_name(f".{public.name}.tmp{os.getpid()}")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, public)
            fsync_dir(public.parent)

    def collect(self, *, keep: int = 2) -> list[str]:
        """Remove every build folder but the newest `keep` published ones (current and the one before it, which a
        reader may still have open), and folders of builds that never became current. Returns what was removed."""
        current = self.current_id()
        if current is None or not self.dir.is_dir():
            return []
        published = sorted(p.name for p in self.dir.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
        kept = {current, *[name for name in published if name <= current][-keep:]}
        removed = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name == CURRENT or entry.name in kept:
                continue
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed
