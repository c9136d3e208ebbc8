"""Where a job may write its output, checked before any work starts.

:func:`check_output_path` is the one check every writing command runs
(``opflow solve``, ``predict``, ``generate``, ``train``, ``pretrain``,
``finetune``, ``demo``) before it creates anything: the output must not be
one of the job's inputs (however it is spelled: ``./``, ``..``, symbolic or
hard links), must be a file or a folder as the job expects, must lie under a
writable folder (not under a regular file), and the disk must have room.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import InvalidArgumentError
from .files import SUFFIX_ENGINES

__all__ = ["check_output_path", "same_file"]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (links and relative spellings resolved).

    Parameters
    ----------
    a, b : str or os.PathLike
        Paths; either may not exist yet.

    Returns
    -------
    bool
        ``os.path.samefile`` when both exist (hard links included), else
        whether the fully resolved paths are equal.
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or the closest of its ancestors that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_not_an_input(out: Path, targets: Iterable[Path],
                        inputs: Mapping[str, str | os.PathLike | None], argument: str) -> None:
    for label, source in inputs.items():
        if source is None:
            continue
        for target in targets:
            if same_file(target, source):
                raise InvalidArgumentError(
                    argument, f"a path that is not the {label} {str(source)!r} (writing "
                    f"{str(target)!r} would replace it)", str(out))


def _check_folder_above(out: Path, folder: Path, create: bool, argument: str) -> None:
    """The folder ``out`` goes into (``folder``; made when ``create``) must be usable."""
    if not folder.exists() and not create:
        raise InvalidArgumentError(argument, "a path in an existing directory",
                                   f"{str(out)!r} (no directory {str(folder)!r})")
    found = _nearest_existing(folder)
    if not found.is_dir():
        raise InvalidArgumentError(argument, "a path under a directory",
                                   f"{str(out)!r} ({str(found)!r} is a file)")
    if not os.access(found, os.W_OK | os.X_OK):
        raise InvalidArgumentError(argument, "a path in a writable directory",
                                   f"{str(out)!r} (cannot write in {str(found)!r})")


def _check_kind(out: Path, folder: bool, suffix: bool, argument: str) -> None:
    if folder:
        if out.exists() and not out.is_dir():
            raise InvalidArgumentError(argument, "a folder to write the run into",
                                       f"{str(out)!r}, an existing file")
        return
    if suffix and out.suffix.lower() not in SUFFIX_ENGINES:
        raise InvalidArgumentError(
            argument, f"a file name ending in one of {sorted(SUFFIX_ENGINES)}", str(out))
    if out.is_dir():
        raise InvalidArgumentError(argument, "a file name", f"{str(out)!r}, a directory")


def _check_space(out: Path, bytes_needed: int, argument: str) -> None:
    where = _nearest_existing(out.parent)
    free = shutil.disk_usage(where).free
    if free < bytes_needed:
        raise InvalidArgumentError(
            argument, f"a disk with about {bytes_needed / 2**20:.1f} MiB free for the job",
            f"{str(where)!r} with {free / 2**20:.1f} MiB free")


def check_output_path(
    out: str | os.PathLike,
    bytes_needed: int | None = None,
    suffix: bool = True,
    *,
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    folder: bool = False,
    writes: Iterable[str] = (),
    make_parents: bool = False,
    argument: str = "out",
) -> Path:
    """Check, before any work, that a job can write ``out``; returns it as a Path.

    Nothing is created or changed.

    Parameters
    ----------
    out : str or os.PathLike
        The output file, or the output folder when ``folder`` is true.
    bytes_needed : int, optional
        Estimated disk space the job needs beside ``out``; less free space raises.
    suffix : bool
        Require a ``.nc``/``.nc4``/``.h5``/``.hdf5`` file name (files only).
    inputs : mapping of str to path, optional
        The job's input files by a label for messages (``"input"``,
        ``"--checkpoint"``, ...); ``None`` values are skipped. Writing any of
        them raises.
    folder : bool
        ``out`` is a folder (made with its parents if missing) rather than a file.
    writes : iterable of str
        Folders only: names of the files the job writes in ``out``; each is
        checked against ``inputs`` too.
    make_parents : bool
        Files only: the job creates a missing parent folder (else one must exist).
    argument : str
        Name of ``out`` in error messages (the parameter or the command-line flag).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    opflow.errors.InvalidArgumentError
        ``out`` is an input, of the wrong kind (a folder for a file, a file
        for a folder), under a regular file or a missing or read-only
        folder, or the disk lacks ``bytes_needed`` bytes.
    """
    out = Path(out)
    targets = [out / name for name in writes] if folder else [out]
    _check_not_an_input(out, [out, *targets], dict(inputs or {}), argument)
    _check_kind(out, folder, suffix, argument)
    if folder and out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise InvalidArgumentError(argument, "a writable folder",
                                       f"{str(out)!r} (cannot write in it)")
    else:
        parent = out.parent if str(out.parent) else Path(".")
        _check_folder_above(out, parent, folder or make_parents, argument)
    if bytes_needed is not None:
        _check_space(out, bytes_needed, argument)
    return out
