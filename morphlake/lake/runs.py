"""Run records: <lake>/runs/<run_id>.json for every run, and <run_id>.partial.json for skipped items."""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import socket
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from morphlake import __version__
from morphlake.common.peak_memory import PhasePeaks
from morphlake.lake.files import write_atomic

_LIBRARIES = (
    "polars",
    "pyarrow",
    "duckdb",
    "onnxruntime-gpu",
    "onnxruntime",
    "numpy",
    "pillow",
    "dbt-core",
    "dbt-duckdb",
)


def new_run_id(command: str) -> str:
    """Sortable by start time (to the millisecond), unique: 20261122T110807.123Z-ingest-1a2b3c."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z-{command}-{secrets.token_hex(3)}"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "morphlake": __version__}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_json_atomic(path: Path, payload: dict, *, scratch: Path | None = None) -> None:
    write_atomic(path, (json.dumps(payload, indent=2, default=str) + "\n").encode(), scratch=scratch)


class RunRecord:
    """Collects what a run did (inputs, counts, timings, outcome) and writes it at the end."""

    def __init__(self, command: str, params: dict):
        self.run_id = new_run_id(command)
        self.data: dict = {
            "run_id": self.run_id,
            "command": command,
            "argv": sys.argv[1:],
            "params": params,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
            "counts": {},
            "timings_s": {},
            "outcome": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        self._t0 = time.perf_counter()
        self._peaks = PhasePeaks()

    def start(self, runs_dir: Path) -> None:
        """Write the record as `running` before the run does anything: a run killed before `finish` still leaves
        it (`status` shows such a run as died: its process is no longer the lake's writer)."""
        write_json_atomic(runs_dir / f"{self.run_id}.json", self.data)

    @contextmanager
    def timed(self, step: str):
        """Time a phase into `timings_s`, and its peak resident memory into `peak_rss_mib` (what the phase reached,
        not what the process held before it)."""
        start = time.perf_counter()
        self._peaks.enter(step)
        try:
            yield
        finally:
            self._peaks.leave(step)
            self.data["timings_s"][step] = round(self.data["timings_s"].get(step, 0) + time.perf_counter() - start, 4)
            self.data["peak_rss_mib"] = self._peaks.snapshot()

    @contextmanager
    def notes_from(self, logger: str):
        """Keep what the libraries log meanwhile (e.g. a CSV's dropped index column) in the record's `notes`."""
        record = self

        class Collect(logging.Handler):
            def emit(self, entry: logging.LogRecord) -> None:
                record.data.setdefault("notes", []).append(entry.getMessage())

        handler, target = Collect(logging.INFO), logging.getLogger(logger)
        old_level = target.level
        target.addHandler(handler)
        if target.getEffectiveLevel() > logging.INFO:
            target.setLevel(logging.INFO)
        try:
            yield
        finally:
            target.removeHandler(handler)
            target.setLevel(old_level)

    def count(self, key: str, value) -> None:
        self.data["counts"][key] = value

    def set(self, key: str, value) -> None:
        self.data[key] = value

    def finish(self, runs_dir: Path, outcome: str, error: str | None = None, *, skipped: list | None = None) -> Path:
        """Write the record (and the partial manifest when items were skipped); return the record path."""
        self.data.update(
            outcome=outcome,
            ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            elapsed_s=round(time.perf_counter() - self._t0, 3),
        )
        if error:
            self.data["error"] = error
        if skipped:
            manifest = runs_dir / f"{self.run_id}.partial.json"
            write_json_atomic(
                manifest,
                {"run_id": self.run_id, "command": self.data["command"], "skipped": [s.to_dict() for s in skipped]},
            )
            self.data["partial_manifest"] = str(manifest)
            self.data["counts"]["skipped"] = len(skipped)
        path = runs_dir / f"{self.run_id}.json"
        write_json_atomic(path, self.data)
        return path
