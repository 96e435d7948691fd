"""Named crash points for fault-injection tests.

MORPHLAKE_CRASH_AT=<point> or <point>:<n> kills the process (like SIGKILL: no cleanup, exit 137) the n-th
time it reaches that point (default the first). Unset in normal runs, where every call is a cheap no-op.
With MORPHLAKE_CRASH_ONCE=<file> as well, only the first process to get there dies (it creates the file):
a worker that a distributed engine restarts then goes on, as after a real one-off failure.
"""

from __future__ import annotations

import os

_hits: dict[str, int] = {}
ENV_VARS = ("MORPHLAKE_CRASH_AT", "MORPHLAKE_CRASH_ONCE")


def crash_point(name: str) -> None:
    wanted = os.environ.get("MORPHLAKE_CRASH_AT")
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1) and _first_to_crash():
        os._exit(137)


def _first_to_crash() -> bool:
    marker = os.environ.get("MORPHLAKE_CRASH_ONCE")
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
