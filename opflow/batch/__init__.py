"""Batch jobs over large netCDF/HDF5 files: ``opflow solve`` and ``opflow predict``.

* :func:`solve_file` solves a named problem (:data:`PROBLEMS`) for every
  sample of a file;
* :func:`run_job` is the chunk loop underneath both commands: lazy chunked
  reading, per-chunk compute on a dask :class:`Scheduler` (threads,
  processes or ``dask.distributed``), finished chunks written to a work
  folder, resuming after a kill, an atomic final rename and provenance attributes.
"""

from .jobs import check_output_path, file_sha256, run_job, work_dir
from .problems import PROBLEMS, ProblemSpec, SolveTask
from .scheduler import SCHEDULERS, Scheduler
from .solve import solve_file

__all__ = ["PROBLEMS", "ProblemSpec", "SCHEDULERS", "Scheduler", "SolveTask",
           "check_output_path", "file_sha256", "run_job", "solve_file", "work_dir"]
