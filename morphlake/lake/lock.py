"""One writer at a time: an advisory flock on <lake>/.lock, released by the OS if the holder dies."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from morphlake.errors import LakeLocked


class LakeLock:
    """Context manager holding the lake's write lock; a second writer fails at once.

    Re-entrant within one process, so a composite step (build06) can hold the lock across its sub-steps.
    """

    _held: dict[str, int] = {}  # lock path -> nesting depth in this process

    def __init__(self, lock_file: Path, command: str, run_id: str):
        self.lock_file = Path(lock_file)
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "run_id": run_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._fd: int | None = None
        self.outermost = False  # True when this holder took the lock (not a nested, re-entrant hold)

    def __enter__(self) -> LakeLock:
        key = str(self.lock_file.absolute())
        if self._held.get(key):
            self._held[key] += 1
            return self
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise LakeLocked(
                f"the lake {self.lock_file.parent} is being written by another morphlake process "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"'{holder.get('command', '?')}', run {holder.get('run_id', '?')}, since {holder.get('since', '?')})",
                "wait for it to finish, or use another --lake",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(self.holder).encode())
        os.fsync(fd)
        self._fd = fd
        self._held[key] = 1
        self.outermost = True
        return self

    @staticmethod
    def _read_holder(fd: int) -> dict:
        try:
            return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, OSError):
            return {}

    def __exit__(self, *exc) -> None:
        key = str(self.lock_file.absolute())
        self._held[key] = self._held.get(key, 1) - 1
        if self._held[key] > 0:
            return
        self._held.pop(key, None)
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_holder(lock_file: Path) -> dict | None:
    """Who holds the lake's write lock now (pid, host, command, run_id, since), read without taking it; None when
    no writer runs. A holder on this host whose process is gone (killed: the OS released its lock) is not one."""
    try:
        holder = json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not holder.get("pid"):
        return None
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, another user's
            pass
    return holder
