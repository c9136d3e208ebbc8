"""Atomic file writes: write a temporary sibling, then rename it into place.

A reader never sees a half-written file under the final name, and a failed
write leaves nothing behind (an older file under the final name is kept).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "remove_stale_temporaries", "temporary_name"]

_TMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")  # what temporary_name writes


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


def remove_stale_temporaries(folder: str | os.PathLike, prefix: str) -> None:
    """Delete temporaries of killed runs (named by ``temporary_name``) whose process is gone.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to look.
    prefix : str
        Only names starting with ``prefix`` are considered (``"."`` for all
        temporaries, ``".<name>"`` for those of one final file).
    """
    for path in Path(folder).glob(f"{prefix}*.tmp-*"):
        match = _TMP.search(path.name)
        if match is None:
            continue
        if not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    """Whether another process ``pid`` runs (this one's own temporaries are stale here)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
