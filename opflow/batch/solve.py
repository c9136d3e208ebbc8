"""Solve a named problem for every sample of a netCDF/HDF5 file: ``opflow solve``.

::

    opflow solve darcy --data coeffs.nc --vars a --out u.nc --chunk 16
    opflow solve burgers --data u0.h5 --vars u0 --out u1.nc --t-final 1 \\
        --scheduler distributed --workers 4

The input variable has dims ``(sample, *grid)`` with coordinate variables on
the grid dims; the output file holds ``u`` (float64, same dims and
coordinates), ``failed`` (1 for samples that could not be solved, whose ``u``
is NaN) and provenance attributes. See :mod:`opflow.batch.jobs` for how the
job runs, resumes and writes, and :mod:`opflow.batch.problems` for the problems.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgumentError, UnknownVariableError
from ..io.files import open_dataset
from .jobs import _check_chunk, check_output_path, run_job
from .problems import PROBLEMS, SolveTask, check_input, problem_grid, resolve_options
from .scheduler import Scheduler

__all__ = ["solve_file"]


def _device(device: str | torch.device | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        raise InvalidArgumentError("device", "a torch device such as 'cpu' or 'cuda:0'",
                                   device) from None


def _command(problem: str, input: Path, var: str, out: Path, chunk: int,  # noqa: A002
             sample_dim: str, options: Mapping[str, Any], device: str) -> str:
    """The equivalent command line (scheduler flags left out: they do not change the file)."""
    words = ["opflow", "solve", problem, "--data", str(input), "--vars", var, "--out", str(out),
             "--chunk", str(chunk), "--sample-dim", sample_dim, "--device", device]
    for key, value in options.items():
        if value is None:
            continue
        words += ["--option", f"{key}={value}"]
    return shlex.join(words)


def solve_file(
    problem: str,
    input: str | os.PathLike,  # noqa: A002 - mirrors the --input flag
    out: str | os.PathLike,
    *,
    var: str | None = None,
    chunk: int = 16,
    sample_dim: str = "sample",
    options: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    scheduler: str | None = None,
    workers: int = 1,
    address: str | None = None,
    progress: bool | str = False,
    restart: bool = False,
) -> Path:
    """Solve ``problem`` for every sample of ``input`` and write the solutions to ``out``.

    Parameters
    ----------
    problem : {"darcy", "burgers", "heat"}
        See :data:`opflow.batch.problems.PROBLEMS`.
    input : str or os.PathLike
        netCDF/HDF5 file; read lazily, ``chunk`` samples at a time.
    out : str or os.PathLike
        netCDF4 file to write (atomically, when complete): ``u`` of dims
        ``(sample_dim, *grid)``, ``failed`` of dim ``(sample_dim,)``.
    var : str, optional
        Input variable, dims ``(sample_dim, *grid)`` (default: the problem's
        ``ProblemSpec.variable``, ``a`` for darcy and ``u0`` for the others).
    chunk : int
        Samples per chunk: one solver call and one part file each.
    sample_dim : str
        Dimension indexing the samples.
    options : mapping, optional
        Problem options (darcy: ``forcing``, ``bc``, ``rtol``,
        ``max_cycles``; burgers: ``nu``, ``t_final``, ``dt``, ``scheme``;
        heat: ``nu``, ``t_final``).
    device : str or torch.device, optional
        Where chunks are solved (default ``cuda`` when available).
    scheduler : {"threads", "processes", "distributed", "sync"}, optional
        dask scheduler computing the chunks (see :class:`Scheduler`); default
        ``"distributed"`` with an ``address``, else ``"threads"``.
    workers : int
        Threads, processes or LocalCluster workers.
    address : str, optional
        ``HOST:PORT`` of a ``dask.distributed`` scheduler (implies distributed).
    progress : bool or "always"
        Progress bar with samples per second.
    restart : bool
        Discard an unfinished job with other inputs or settings.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        Unknown problem, bad chunk size, bad options, an output path that
        cannot be written or is the input file, a grid the solver cannot use
        (a spectral problem on an axis marked non-periodic); raised before
        any solving.
    opflow.errors.UnknownVariableError
        ``var`` or ``sample_dim`` not in the file.
    opflow.errors.ShapeError
        ``var`` has the wrong number of dims for the problem.
    """
    opts = resolve_options(problem, options)
    spec = PROBLEMS[problem]
    chunk = _check_chunk(chunk)
    out = check_output_path(out, inputs={"input": input})
    device = _device(device)
    sched = Scheduler(scheduler, workers, address)
    var = var or spec.variable
    with warnings.catch_warnings():  # --chunk need not align with the file's own chunks
        warnings.filterwarnings("ignore", message="The specified chunks separate")
        source = open_dataset(input, chunks={sample_dim: chunk})
    try:
        if var not in source.data_vars:
            raise UnknownVariableError("var", var, list(source.data_vars))
        grid_dims = check_input(problem, source[var], sample_dim)
        grid = problem_grid(source[var], grid_dims, spec.periodic)
        spec.check(grid, opts)
        n = int(source.sizes[sample_dim])
        check_output_path(out, bytes_needed=2 * n * (8 * int(np.prod(grid.shape)) + 1))
        task = SolveTask(problem, var, sample_dim, grid_dims, opts, device)
        settings = {"problem": problem, "variable": var, "grid_dims": list(grid_dims),
                    "options": opts, "device": torch.device(device).type, "dtype": "float64"}
        attrs = {"title": f"opflow solve {problem}: {spec.description}",
                 "source": str(input),
                 "opflow_command": _command(problem, Path(input), var, out, chunk, sample_dim,
                                            opts, device)}
        with sched:
            return run_job(source, task, out, variables=[var], sample_dim=sample_dim,
                           chunk=chunk, settings=settings, inputs={"input": input},
                           attrs=attrs, scheduler=sched, progress=progress, restart=restart,
                           desc=f"solve {problem}")
    finally:
        source.close()
