"""Helpers shared by the benchmarks: synthetic snips, medians over interleaved rounds, peak memory, tables."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from morphlake.demo.images import brightfield_snip, embryo_snip
from morphlake.embed.reader import SnipRef, decode_chunk

PERTURBATIONS = ["wt", "atf6", "tbxta"]


SNIP_KINDS = ("noisy-jpeg", "noisy-png", "easy-jpeg")


def make_snips(folder: Path, count: int, seed: int = 0, *, kind: str = "noisy-jpeg") -> list[SnipRef]:
    """`count` 576x256 snips of one kind (SNIP_KINDS), 100 per experiment folder."""
    noisy, ext = kind.startswith("noisy"), ".png" if kind.endswith("png") else ".jpg"
    rng = np.random.default_rng(seed)
    refs = []
    for i in range(count):
        exp = f"2025{i // 100:04d}"
        path = folder / kind / exp / f"{exp}_A01_e{i % 100 // 10:02d}_t{i % 10:04d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        snip = (brightfield_snip if noisy else embryo_snip)(rng, 24 + (i % 40), PERTURBATIONS[i % 3])
        snip.save(path, **({"quality": 92} if ext == ".jpg" else {}))
        refs.append(SnipRef(path.stem, exp, str(path)))
    return refs


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_core_seconds(refs: list[SnipRef], encoder, batch_size: int) -> tuple[float, float]:
    """One core's decode and inference seconds per image on these snips (legacy decode; the encoder's batches
    padded to `batch_size`, as the pipeline runs them)."""

    decode = seconds(lambda: decode_chunk(refs, len(refs))) / len(refs)
    pixels = decode_chunk(refs[:batch_size], batch_size).pixels
    batches = -(-len(refs) // batch_size)
    infer = seconds(lambda: [encoder.run(pixels) for _ in range(batches)]) / (batches * batch_size)
    return decode, infer


class Rounds:
    """Named measurements taken in interleaved rounds; medians damp a shared machine's noise."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> float:
        self.values.setdefault(name, []).append(value)
        return value

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])

    def spread(self, name: str) -> str:
        v = self.values[name]
        return f"{min(v):.0f}-{max(v):.0f}" if len(v) > 1 else ""


# Runs a command in a child of its own and reports that child's peak RSS. Linux carries a process's peak RSS
# into the children it forks (exec does not reset it), so a child of the benchmark itself would report at
# least the benchmark's own peak; forked from this small launcher, the command's peak is its own (within the
# launcher's few MB).
_LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.flush()
print("\\n__peak_kib__", usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""
_PEAK_MARK = "__peak_kib__"


def peak_of(args: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, output) of a command, its peak read from its own rusage via wait4."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    wall = time.perf_counter() - start
    output, _, peak = proc.stdout.decode(errors="replace").rpartition(_PEAK_MARK)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{output[-3000:]}")
    return wall, int(peak.split()[0]) / 1024, output.rstrip("\n")


def table(title: str, header: list[str], rows: list[list]) -> str:
    """A small fixed-width text table."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(r: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([title, line(header), *(line(r) for r in cells)])
