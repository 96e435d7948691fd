"""One run lifecycle for every writing command: lock, run record, staging, strict/partial policy, publish."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field

from morphlake.errors import PartialResult
from morphlake.ingest.errors import Skipped
from morphlake.lake.layout import Lake
from morphlake.lake.lock import LakeLock
from morphlake.lake.publish import Transaction
from morphlake.lake.runs import RunRecord

log = logging.getLogger("morphlake")

EXIT_COMPLETE, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 2
EXIT_USAGE = 64  # a usage error (BSD sysexits' EX_USAGE): never 2, which means a partial run


@dataclass(frozen=True)
class RunResult:
    """What a writing command did: its run id and exit code, its record, the items it skipped, and (for a
    build) the dbt nodes that failed."""

    run_id: str
    exit_code: int
    record: dict
    _: KW_ONLY
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)


@dataclass
class LakeRun:
    """A run in progress: its record, its staging transaction, what it skipped, and how it failed."""

    lake: Lake
    record: RunRecord
    txn: Transaction
    _: KW_ONLY
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    error: str | None = None
    _result: RunResult | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def result(self) -> RunResult:
        """The outcome, set when the `with lake_run(...)` block ends (a run that raised has none)."""
        if self._result is None:
            raise RuntimeError(f"run {self.run_id} has no result yet: read run.result after its `with` block")
        return self._result

    @result.setter
    def result(self, value: RunResult) -> None:
        self._result = value

    def skip(self, items: list[Skipped]) -> None:
        self.skipped += items

    def fail(self, error: str, failures: list[dict] | None = None) -> None:
        """End as failed without an exception (e.g. dbt tests that failed): nothing staged is published."""
        self.error, self.failures = error, failures or []


@contextmanager
def lake_run(lake: Lake, command: str, params: dict, *, allow_partial: bool = False) -> Iterator[LakeRun]:
    """`with lake_run(lake, "embed", params) as run:` — the body stages into `run.txn` and lists skipped items
    with `run.skip`. On leaving: a strict run with skipped items fails (PartialResult), else the staging is
    published; a run that raised or called `run.fail` publishes nothing. Every run leaves its record, failed
    ones too; `run.result` holds the outcome (an exception is re-raised after the record is written)."""
    record = RunRecord(command, params)
    record.set("lake", str(lake.root))
    with LakeLock(lake.lock_file, command, record.run_id) as lock:
        if lock.outermost:  # a nested run (build06's steps) must not sweep its parent's staging
            stale = Transaction.clean_stale(lake)
            if stale:
                log.warning("removed staging left by interrupted run(s): %s", ", ".join(stale))
        run = LakeRun(lake, record, Transaction(lake, record.run_id))
        record.start(lake.runs_dir)
        try:
            with record.notes_from("morphlake.ingest"):
                yield run
            if run.error is None:
                if run.skipped and not allow_partial:
                    raise PartialResult(run.skipped, "items")
                with record.timed("publish"):
                    partitions = run.txn.publish()
                if any(partitions.values()):
                    record.set("partitions", partitions)
        except BaseException as exc:
            run.txn.discard()
            problems = getattr(exc, "skipped", None)
            if problems:
                record.set("problems", [s.to_dict() for s in problems])
            record.finish(lake.runs_dir, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if run.error is not None:
            run.txn.discard()
            record.finish(lake.runs_dir, "failed", error=run.error)
            run.result = RunResult(run.run_id, EXIT_FAILED, record.data, skipped=run.skipped, failures=run.failures)
            return
        record.finish(lake.runs_dir, "partial" if run.skipped else "complete", skipped=run.skipped)
        run.result = RunResult(
            run.run_id, EXIT_PARTIAL if run.skipped else EXIT_COMPLETE, record.data, skipped=run.skipped
        )
