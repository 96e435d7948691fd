"""Progress of a long step: a rich bar on a terminal; without one, a log line every few seconds (done/total,
rate, time left), so a cluster job's log shows where the step is."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("morphlake")

LOG_EVERY_S = 10.0
EVERY_VARIABLE = "MORPHLAKE_PROGRESS_SECONDS"  # seconds between log lines (a job's log), default LOG_EVERY_S


def log_every() -> float:
    try:
        return max(0.0, float(os.environ.get(EVERY_VARIABLE) or LOG_EVERY_S))
    except ValueError:
        return LOG_EVERY_S


def duration(seconds: float) -> str:
    """12s, 4m05s, 2h03m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StepProgress:
    """`update(done)` with the count done so far; draws a bar or logs a line at most every `every` seconds."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "items",
        every: float = LOG_EVERY_S,
        bar: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit, self.every, self.bar, self.clock = label, total, unit, every, bar, clock
        self.start = self.last = clock()
        self.done = 0
        self.logged: int | None = None  # the count the last log line showed
        self._task = bar.add_task(label, total=total, rate="-") if bar else None

    def line(self) -> str:
        """'embed: 1200/5000 snips (24%), 310/s, 12s left' (the rate and time left from the start of the step)."""
        elapsed = self.clock() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        left = f", {duration((self.total - self.done) / rate)} left" if rate > 0 and self.total else ""
        return f"{self.label}: {self.done}/{self.total} {self.unit}{share}, {rate:,.0f}/s{left}"

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if self.bar is not None and self._task is not None:  # the task is there whenever the bar is
            elapsed = now - self.start
            self.bar.update(self._task, completed=done, rate=f"{done / elapsed:,.0f}" if elapsed > 0 else "-")
        elif now - self.last >= self.every:
            self.last, self.logged = now, done
            log.info("%s", self.line())

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)


@contextmanager
def step_progress(label: str, total: int, *, unit: str = "items", every: float | None = None, stream: IO | None = None):
    """`with step_progress("embed", n, unit="snips") as p: ... p.update(done)`.

    On a terminal (stderr by default) a transient rich bar; otherwise a log line every `every` seconds and one
    at the end, so a job's log shows done/total, the rate and the time left. `every` defaults to
    $MORPHLAKE_PROGRESS_SECONDS, else 10 s.
    """
    stream = stream if stream is not None else sys.stderr
    every = log_every() if every is None else every
    if total and stream.isatty():
        bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} " + unit + "/s"),
            TimeRemainingColumn(),
            transient=True,
            console=Console(file=stream),
        )
        with bar:
            yield StepProgress(label, total, unit=unit, every=every, bar=bar)
        return
    progress = StepProgress(label, total, unit=unit, every=every)
    yield progress
    if total and progress.logged not in (None, progress.done):  # lines were logged: end with the final count
        log.info("%s", progress.line())
