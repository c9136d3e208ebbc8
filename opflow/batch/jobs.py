"""The chunk loop shared by ``opflow solve`` and ``opflow predict``.

:func:`run_job` reads a lazily opened (xarray + dask) dataset ``chunk``
samples at a time, computes each chunk with a task (a solver or a model) on
a :class:`~opflow.batch.scheduler.Scheduler`, and writes every finished
chunk as its own small netCDF file (atomically) in a work folder next to the
output, ``.<OUT name>.parts/``. When all chunks are there they are copied one
by one into a temporary file that is renamed to the output, and the work
folder is removed. Memory holds a few chunks at a time, whatever the file size.

Resuming
--------
The work folder holds ``job.json`` with the job's key: the sha256 of the
inputs (file checksums), the settings, the chunk size and the opflow version.
A job killed at any point (even SIGKILL) and started again with the same
command finds its key, keeps the finished chunks and computes only the rest;
the output is then byte-for-byte the file an uninterrupted run writes (the
final file is always assembled from the parts in the same way, and the
parts are computed deterministically). If the key differs (another input
file, other settings), the job stops with :class:`~opflow.errors.InvalidArgumentError`
naming the work folder; ``restart=True`` (``--restart``) deletes it and starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import InvalidArgumentError, UnknownVariableError
from ..io import atomic_path, remove_stale_temporaries
from ..io.outputs import check_output_path
from ..progress import Progress
from .scheduler import Scheduler

__all__ = ["FAILED_VARIABLE", "check_output_path", "file_sha256", "run_job", "work_dir"]

FAILED_VARIABLE = "failed"
_PART = re.compile(r"^(\d{12})-(\d{12})\.nc$")
_COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}


# ------------------------------------------------------------------ checks
def _check_chunk(chunk: Any) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise InvalidArgumentError("chunk", "a positive number of samples per chunk", chunk)
    return int(chunk)


def file_sha256(path: str | os.PathLike, block: int = 2**20) -> str:
    """Hex sha256 of a file, read ``block`` bytes at a time.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    block : int
        Bytes read at a time.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for data in iter(lambda: fh.read(block), b""):
            digest.update(data)
    return digest.hexdigest()


def work_dir(out: str | os.PathLike) -> Path:
    """The folder that holds the finished chunks of a job writing ``out``.

    Parameters
    ----------
    out : str or os.PathLike
        The job's output file.

    Returns
    -------
    pathlib.Path
        ``.<name>.parts`` beside ``out``.
    """
    out = Path(out)
    return out.parent / f".{out.name}.parts"


# ------------------------------------------------------------ work folder
def _open_work_dir(out: Path, manifest: dict, restart: bool) -> Path:
    work = work_dir(out)
    job = work / "job.json"
    if work.exists() and restart:
        shutil.rmtree(work)
    if job.exists():
        try:
            old = json.loads(job.read_text(encoding="utf-8")).get("key")
        except (OSError, ValueError):
            old = None
        if old != manifest["key"]:
            raise InvalidArgumentError(
                "out", f"the job whose unfinished parts are in {str(work)!r} (the same input "
                f"checksums and settings, to resume it), but {_differences(job, manifest)}; "
                "pass --restart (restart=True) to discard those parts, or delete that folder",
                "another job")
    work.mkdir(exist_ok=True)
    remove_stale_temporaries(work, ".")
    remove_stale_temporaries(out.parent, f".{out.name}")
    if not job.exists():
        with atomic_path(job) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                           encoding="utf-8")
    return work


def _differences(job: Path, manifest: dict) -> str:
    try:
        old = _flatten(json.loads(job.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return "its job.json is unreadable"
    new = _flatten(manifest)
    changed = [f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}"
               for k in sorted(set(old) | set(new)) if k != "key" and old.get(k) != new.get(k)]
    return "changed: " + ("; ".join(changed[:4]) if changed else "key")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (to name what changed between two jobs)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _finished_parts(work: Path, key: str) -> dict[int, Path]:
    """Parts of this job already on disk, by first sample."""
    import netCDF4

    done = {}
    for path in work.glob("*.nc"):
        match = _PART.match(path.name)
        if match is None:
            continue
        try:
            with netCDF4.Dataset(path) as nc:
                ok = getattr(nc, "opflow_job", None) == key
        except OSError:
            ok = False
        if ok:
            done[int(match.group(1))] = path
    return done


def _part_path(work: Path, start: int, stop: int) -> Path:
    return work / f"{start:012d}-{stop:012d}.nc"


def _write_part(path: Path, part: xr.Dataset, key: str) -> None:
    part = part.copy()
    part.attrs["opflow_job"] = key
    with atomic_path(path) as tmp:
        part.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")


# --------------------------------------------------------------- assembly
def _check_part(part: Any, sample_dim: str, size: int, start: int) -> xr.Dataset:
    if not isinstance(part, xr.Dataset):
        raise InvalidArgumentError("task", "a function returning an xarray.Dataset", part)
    if part.sizes.get(sample_dim) != size:
        raise InvalidArgumentError(
            "task", f"a Dataset with {size} samples along {sample_dim!r} for the chunk at "
            f"{start}", dict(part.sizes))
    for name, var in part.variables.items():
        if sample_dim in var.dims and var.dims[0] != sample_dim:
            raise InvalidArgumentError("task", f"{sample_dim!r} as the first dim of {name!r}",
                                       var.dims)
    return part


def _assemble(parts: Sequence[Path], tmp: Path, sample_dim: str, chunk: int,
              attrs: Mapping[str, Any]) -> int:
    """Copy the parts in order into ``tmp``; returns the number of failed samples."""
    import netCDF4

    with xr.open_dataset(parts[0], engine="netcdf4", decode_times=False,
                         decode_timedelta=False) as first:
        first.load()
    first.attrs.pop("opflow_job", None)
    first.attrs.update(attrs)
    encoding = {}
    for name, var in first.variables.items():
        if var.dims[:1] == (sample_dim,) and var.dtype.kind in "fiu":
            encoding[name] = {**_COMPRESSION, "chunksizes": (chunk, *var.shape[1:])}
    first.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", unlimited_dims=[sample_dim],
                    encoding=encoding)
    start = first.sizes[sample_dim]
    failed = _count_failed(first)
    with netCDF4.Dataset(tmp, "a") as nc:
        nc.set_auto_maskandscale(False)
        for path in parts[1:]:
            with netCDF4.Dataset(path) as src:
                src.set_auto_maskandscale(False)
                size = src.dimensions[sample_dim].size
                for name, var in src.variables.items():
                    if var.dimensions[:1] == (sample_dim,):
                        nc[name][start:start + size, ...] = var[...]
                if FAILED_VARIABLE in src.variables:
                    failed += int(np.count_nonzero(src[FAILED_VARIABLE][...]))
            start += size
        nc.setncattr("opflow_failed_samples", failed)
    return failed


def _count_failed(ds: xr.Dataset) -> int:
    if FAILED_VARIABLE not in ds.variables:
        return 0
    return int(np.count_nonzero(ds[FAILED_VARIABLE].values))


# ------------------------------------------------------------------ the job
def _job_manifest(settings: Mapping[str, Any], inputs: Mapping[str, str | os.PathLike],
                  n: int, chunk: int, sample_dim: str) -> dict:
    manifest = {
        "settings": json.loads(json.dumps(dict(settings), sort_keys=True, default=str)),
        "inputs": {label: file_sha256(path) for label, path in sorted(inputs.items())},
        "samples": n, "chunk": chunk, "sample_dim": sample_dim, "opflow_version": __version__,
    }
    manifest["key"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return manifest


def _provenance(manifest: dict, inputs: Mapping[str, str | os.PathLike],
                attrs: Mapping[str, Any]) -> dict[str, Any]:
    sources = {label: {"path": str(path), "sha256": manifest["inputs"][label]}
               for label, path in sorted(inputs.items())}
    return {"Conventions": "CF-1.8", "opflow_version": __version__,
            "opflow_settings": json.dumps(manifest["settings"], sort_keys=True),
            "opflow_inputs": json.dumps(sources, sort_keys=True),
            "opflow_job": manifest["key"], **attrs}


def run_job(
    source: xr.Dataset,
    task: Callable[[xr.Dataset], xr.Dataset],
    out: str | os.PathLike,
    *,
    variables: Sequence[str],
    sample_dim: str = "sample",
    chunk: int = 64,
    settings: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    attrs: Mapping[str, Any] | None = None,
    scheduler: Scheduler | None = None,
    progress: bool | str = False,
    restart: bool = False,
    desc: str = "batch",
) -> Path:
    """Run ``task`` on ``source`` chunk by chunk and write the results to ``out``.

    Parameters
    ----------
    source : xarray.Dataset
        Opened lazily (dask chunks or lazily indexed); holds ``variables``
        with ``sample_dim`` as their first dim, ``n`` samples.
    task : callable
        ``task(chunk) -> xarray.Dataset``: ``chunk`` holds ``variables`` for
        ``B <= chunk`` samples (numpy-backed); the result has ``B`` samples
        along ``sample_dim``, the first dim of every variable that has it.
        Must be deterministic for resumed files to equal uninterrupted ones,
        and picklable for the ``processes``/``distributed`` schedulers. A
        variable ``failed`` (1 per failed sample) is counted into the
        ``opflow_failed_samples`` attribute.
    out : str or os.PathLike
        netCDF4 file written atomically when every chunk is done.
    variables : sequence of str
        Variables of ``source`` passed to ``task``.
    sample_dim : str
    chunk : int
        Samples per chunk (one task call and one part file each).
    settings : mapping, optional
        Everything besides the inputs that determines the result (JSON-able);
        part of the job key and stored as the ``opflow_settings`` attribute.
    inputs : mapping of str to path, optional
        Files the result depends on; their sha256 enter the key and the
        ``opflow_inputs`` attribute. ``out`` must not resolve to any of them
        (see :func:`opflow.io.outputs.check_output_path`).
    attrs : mapping, optional
        More global attributes of the output (not part of the key), e.g.
        ``opflow_command``.
    scheduler : Scheduler, optional
        Where the chunks are computed (default: dask's ``"sync"`` scheduler).
        Must already be entered (``with``) for processes or distributed.
    progress : bool or "always"
        Progress over samples: a bar on a terminal, otherwise one line per chunk
        (at most every few seconds) on stderr; False: nothing.
    restart : bool
        Discard an unfinished job of other settings instead of raising.
    desc : str
        Label of the progress bar.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    chunk = _check_chunk(chunk)
    out = check_output_path(out, suffix=False, inputs=inputs)
    for name in variables:
        if name not in source.data_vars:
            raise UnknownVariableError("var", name, list(source.data_vars))
        if source[name].dims[:1] != (sample_dim,):
            raise InvalidArgumentError("sample_dim", f"the first dim of {name!r}",
                                       source[name].dims)
    n = int(source.sizes[sample_dim])
    if n == 0:
        raise InvalidArgumentError("input", f"a file with samples along {sample_dim!r}", n)
    manifest = _job_manifest(settings or {}, inputs or {}, n, chunk, sample_dim)
    work = _open_work_dir(out, manifest, restart)
    done = _finished_parts(work, manifest["key"])
    starts = list(range(0, n, chunk))
    todo = [s for s in starts if s not in done]
    scheduler = scheduler or Scheduler("sync")
    with Progress(n, desc, progress, unit="sample",
                  initial=n - sum(min(chunk, n - s) for s in todo)) as bar:
        results = scheduler.map(_delayed_chunks(source, task, variables, sample_dim, chunk,
                                                n, todo))
        for start, part in zip(todo, results):
            stop = min(start + chunk, n)
            part = _check_part(part, sample_dim, stop - start, start)
            done[start] = _part_path(work, start, stop)
            _write_part(done[start], part, manifest["key"])
            bar.update(stop - start)
    extra = {**_provenance(manifest, inputs or {}, attrs or {})}
    with atomic_path(out) as tmp:
        failed = _assemble([done[s] for s in starts], tmp, sample_dim, min(chunk, n), extra)
    shutil.rmtree(work, ignore_errors=True)
    if failed:
        warnings.warn(f"{failed} of {n} samples could not be computed (NaN in {str(out)!r}; "
                      f"see its variable {FAILED_VARIABLE!r})", RuntimeWarning, stacklevel=2)
    return out


def _delayed_chunks(source: xr.Dataset, task: Callable, variables: Sequence[str],
                    sample_dim: str, chunk: int, n: int, starts: Sequence[int]) -> Iterator:
    """One dask ``Delayed`` per chunk: read the samples, then call ``task``."""
    selected = source[list(variables)]
    for start in starts:
        sub = selected.isel({sample_dim: slice(start, min(start + chunk, n))})
        yield dask.delayed(task, pure=False)(sub)
