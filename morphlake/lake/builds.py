"""Build snapshots: each build's warehouse and df03 export side by side, made current as a pair (lake/README.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from morphlake.lake.faults import crash_point
from morphlake.lake.files import fsync_dir
from morphlake.lake.layout import WAREHOUSE_FILE, Lake
from morphlake.lake.runs import write_json_atomic

CURRENT = "current"
MANIFEST = "build.json"
WAREHOUSE = WAREHOUSE_FILE
DF03 = "df03"
REMOVING = ".removing-"  # a build folder renamed out of the way, being deleted
SCHEMA = "df03_schema.parquet"  # df03's columns, no rows: beside the export, never in it (steps/build/df03_export.py)


class Builds:
    """The build snapshots of one lake."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.dir = lake.builds_dir

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
        write_json_atomic(self.path(build_id) / MANIFEST, manifest)

    def make_current(self, build_id: str) -> None:
        """Make `build_id` current: its files made durable, then one rename of the `current` symlink."""
        os.sync()  # every file and folder of the build (hard links included) on disk before it can be current
        _link_atomically(self.dir / CURRENT, Path(build_id), crash_before="build-switch")
        crash_point("build-switched")

    def tidy(self) -> list[str]:
        """Point the public paths through `current` and remove every build folder but the current one and the one
        it replaced (a reader may still have that open): leftovers of failed or killed builds too. Idempotent;
        every build runs it under the lake lock, whatever it then does. Returns the folders removed."""
        current = self.current_id()
        if current is None:
            return []
        self._public_links()
        kept = {CURRENT, current, (self.manifest(current) or {}).get("previous_build")}
        removed = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name in kept:
                continue
            if entry.is_dir() and not entry.is_symlink():
                # out of its readers' paths in one step, then deleted: a reader still on this build gets an error
                # (no files where its views look), never the part of its rows not yet deleted
                doomed = entry if entry.name.startswith(REMOVING) else self.dir / f"{REMOVING}{entry.name}"
                if doomed != entry:
                    os.replace(entry, doomed)
                    crash_point("build-tidy")
                shutil.rmtree(doomed, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
            crash_point("build-tidy")
        return removed

    def _public_links(self) -> None:
        """<lake>/warehouse.duckdb and <lake>/exports/df03 as links through builds/current (once per lake; a lake
        from before snapshots has a plain file and folder there, replaced here)."""
        current = self.dir / CURRENT
        links = {self.lake.warehouse: current / WAREHOUSE, self.lake.df03_export: current / DF03}
        for public, inside in links.items():
            target = Path(os.path.relpath(inside, public.parent))  # relative: the lake can be moved or mounted
            if public.is_symlink() and Path(os.readlink(public)) == target:
                continue
            public.parent.mkdir(parents=True, exist_ok=True)
            if public.is_dir() and not public.is_symlink():
                # a folder cannot be renamed over: move the old export aside first (a crash right here leaves no
                # public export until the next morphlake build, which links it first thing, and never a wrong one)
                os.replace(public, self.dir / f".retired-{public.name}-{os.getpid()}")
                crash_point("build-retired")
            _link_atomically(public, target)


def _link_atomically(link: Path, target: Path, *, crash_before: str | None = None) -> None:
    """Point `link` at `target` in one rename (readers see the old target or the new one, never none), durably."""
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    if crash_before:
        crash_point(crash_before)
    os.replace(tmp, link)
    fsync_dir(link.parent)
