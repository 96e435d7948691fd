"""The one way morphlake writes a file: to a hidden temporary beside it, fsynced, then renamed into place."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from morphlake.common.durable import fsync_dir, fsync_file
from morphlake.errors import MorphlakeError


def refuse_inside(root: Path, output: Path, *, option: str) -> Path:
    """`output` (a file the user names, e.g. `-o`) made absolute, refused when it would land inside the lake
    `root` (symlinks resolved): only morphlake's writers, under the lake lock, write there."""
    output = Path(output).absolute()
    if Path(os.path.realpath(output)).is_relative_to(os.path.realpath(root)):
        raise MorphlakeError(
            f"{option} {output} is inside the lake {root}; morphlake writes the lake only through its own steps",
            f"write it outside the lake (e.g. {option} ~/{output.name})",
        )
    return output


def remove_stale_temporaries(path: Path) -> None:
    """Temporaries a killed writer left beside `path` (hidden, never read as outputs)."""
    for stale in path.parent.glob(f".{path.name}.tmp*") if path.parent.is_dir() else []:
        stale.unlink(missing_ok=True)


def _temporary(path: Path, scratch: Path | None) -> Path:
    """Where to write `path`'s temporary: in `scratch` (e.g. the run's staging in the lake, which the next run
    sweeps after a crash) when it is on the same filesystem, so a killed run leaves nothing in the user's
    folder; else hidden beside `path`, where the next write of `path` removes it."""
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        if os.stat(scratch).st_dev == os.stat(path.parent).st_dev:
            return scratch / f"{path.name}.tmp{os.getpid()}"
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_file(path: Path, *, replace: bool = True, scratch: Path | None = None) -> Iterator[BinaryIO]:
    """`with atomic_file(path) as handle:` — what is written appears at `path` whole, or not at all.

    The temporary is fsynced, renamed into place and the folder fsynced. replace=False never replaces a file
    that exists by then (a hard link fails where a rename would not), raising MorphlakeError. `scratch`: a
    folder for the temporary (used when it shares `path`'s filesystem).
    """
    with atomic_path(path, replace=replace, scratch=scratch) as tmp, open(tmp, "wb") as handle:
        yield handle


@contextmanager
def atomic_path(path: Path, *, replace: bool = True, scratch: Path | None = None) -> Iterator[Path]:
    """`with atomic_path(path) as tmp:` — for writers that take a file name (DuckDB's COPY, a library's save):
    whatever they write at `tmp` appears at `path` whole, or not at all, as with atomic_file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary(path, scratch)
    try:
        yield tmp
        fsync_file(tmp)
        try:
            _into_place(tmp, path, replace=replace)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # scratch and target share a device number but not a mount (bind mounts, container volumes):
            # copy beside the target first, then move it in from there
            beside = path.with_name(f".{path.name}.tmp{os.getpid()}")
            try:
                shutil.copyfile(tmp, beside)
                fsync_file(beside)
                _into_place(beside, path, replace=replace)
            finally:
                beside.unlink(missing_ok=True)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _into_place(tmp: Path, path: Path, *, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise MorphlakeError(
            f"{path} appeared while morphlake was writing it; it was not replaced",
            "move it away and run again (or allow replacing it)",
        ) from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise
        # a filesystem without hard links (some SMB shares, exFAT): check, then rename (a narrow race)
        if path.exists():
            raise MorphlakeError(
                f"{path} appeared while morphlake was writing it; it was not replaced",
                "move it away and run again (or allow replacing it)",
            ) from None
        os.replace(tmp, path)


def write_atomic(
    path: Path, data: bytes | Callable[[BinaryIO], None], *, replace: bool = True, scratch: Path | None = None
) -> Path:
    """Write bytes (or whatever `data(handle)` writes) to `path` with atomic_file; returns the path."""
    with atomic_file(path, replace=replace, scratch=scratch) as handle:
        handle.write(data) if isinstance(data, bytes) else data(handle)
    return Path(path)
