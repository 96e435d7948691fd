"""Named crash points for fault-injection tests.

MORPHLAKE_CRASH_AT=<point> or <point>:<n> kills the process (like SIGKILL: no cleanup, exit 137) the n-th
time it reaches that point (default the first). Unset in normal runs, where every call is a cheap no-op.
"""

from __future__ import annotations

import os

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("MORPHLAKE_CRASH_AT")
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1):
        os._exit(137)
