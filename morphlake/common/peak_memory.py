"""Peak resident memory per phase of a run, sampled every 20 ms while the phase runs."""

# The process's own high-water mark (VmHWM) is left alone: resetting it per phase would hide the whole run's peak
# from getrusage, time(1) and the benchmarks. Sampling misses spikes shorter than the interval.

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from pathlib import Path

_STATM = Path("/proc/self/statm")
INTERVAL_S = 0.02


def resident_mib() -> float:
    """The process's resident size now (Linux); elsewhere its peak so far (then a phase's peak is the run's so far)."""
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


class PhasePeaks:
    """`enter(step)` … `leave(step)`: the highest resident size seen while each step was open (nested steps too),
    from a sampling thread that runs only while a step is open."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.peaks: dict[str, float] = {}
        self._open: list[str] = []
        self._interval = interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = resident_mib()
        with self._lock:
            for step in self._open:
                self.peaks[step] = round(max(self.peaks.get(step, 0.0), rss), 1)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._open:
                    self._thread = None
                    return
            self._sample()
            time.sleep(self._interval)

    def enter(self, step: str) -> None:
        with self._lock:
            self._open.append(step)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
                self._thread.start()
        self._sample()

    def leave(self, step: str) -> None:
        self._sample()
        with self._lock:
            self._open.remove(step)

    def snapshot(self) -> dict[str, float]:
        """Each phase's peak so far (a copy, taken while the sampler cannot write)."""
        with self._lock:
            return dict(self.peaks)
