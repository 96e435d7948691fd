"""Named crash points for fault-injection tests: MORPHLAKE_CRASH_AT=<point> kills the process there."""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    """Die abruptly (like SIGKILL, no cleanup) when the environment asks for a crash here."""
    if os.environ.get("MORPHLAKE_CRASH_AT") == name:
        os._exit(137)
