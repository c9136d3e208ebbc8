"""Atomic file writes: write a temporary sibling, then rename it into place.

A reader never sees a half-written file under the final name, and a failed
write leaves nothing behind (an older file under the final name is kept).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """Hidden sibling of ``path`` used while writing it: ``.<name>.tmp-<pid>-<random>``."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name. Its directory must exist.

    Yields
    ------
    pathlib.Path
        Temporary file in the same directory (so the rename is atomic).
        On any exception (including ``KeyboardInterrupt``) the temporary file
        is removed and the exception propagates.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "directory to write into does not exist",
                                str(parent))
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
