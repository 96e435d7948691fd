"""Run a writing step under the lake lock with staging, strict/partial policy and a run record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from morphlake.errors import PartialResult
from morphlake.ingest.errors import Skipped
from morphlake.lake.layout import Lake
from morphlake.lake.lock import LakeLock
from morphlake.lake.publish import Transaction
from morphlake.lake.runs import RunRecord

log = logging.getLogger("morphlake")

EXIT_COMPLETE, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 2


@dataclass
class StepResult:
    run_id: str
    exit_code: int
    record: dict
    skipped: list[Skipped] = field(default_factory=list)


StepBody = Callable[[Transaction, RunRecord], list[Skipped]]


def run_step(lake: Lake, command: str, params: dict, body: StepBody, allow_partial: bool) -> StepResult:
    """Lock, stage (body), enforce strict/partial, publish, record. Raises on failure (lake unchanged)."""
    record = RunRecord(command, params)
    record.set("lake", str(lake.root))
    with LakeLock(lake.lock_file, command, record.run_id):
        stale = Transaction.clean_stale(lake)
        if stale:
            log.warning("removed staging left by interrupted run(s): %s", ", ".join(stale))
        txn = Transaction(lake, record.run_id)
        try:
            with record.notes_from("morphlake.ingest"):
                skipped = body(txn, record)
            if skipped and not allow_partial:
                raise PartialResult(skipped, "items")
            with record.timed("publish"):
                record.set("partitions", txn.publish())
        except BaseException as exc:
            txn.discard()
            if isinstance(exc, PartialResult):
                record.set("problems", [s.to_dict() for s in exc.skipped])
            record.finish(lake.runs_dir, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        outcome = "partial" if skipped else "complete"
        record.finish(lake.runs_dir, outcome, skipped=skipped)
    return StepResult(record.run_id, EXIT_PARTIAL if skipped else EXIT_COMPLETE, record.data, skipped)
