"""``opflow solve``: the command line of :func:`opflow.batch.solve_file`.

::

    opflow solve PROBLEM --data IN.(nc|h5) [--vars a] --out OUT.nc [--chunk K]
        [--scheduler threads|processes|distributed|sync --workers N | --address HOST:PORT]
        [--t-final T] [--nu NU] [--dt DT] [--rtol TOL] [--option KEY=VALUE ...]
        [--device DEV] [--restart] [--quiet]

A killed run started again with the same command resumes from its finished
chunks (kept in ``.OUT.nc.parts/`` beside the output). The old spellings
``--input FILE`` and ``--var VAR`` still work, hidden, with a warning.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .._argparse import add_alias, add_quiet, command_errors, key_value, require
from ..errors import InvalidArgumentError
from .problems import PROBLEMS
from .scheduler import SCHEDULERS
from .solve import solve_file

__all__ = ["SOLVE_FLAGS", "add_solve_parser", "main", "solve_command"]

# Flags that set a problem option (dest -> option name).
_OPTION_FLAGS = {"t_final": "t_final", "nu": "nu", "dt": "dt", "rtol": "rtol"}
# Argument names raised by solve_file (and the readers and solvers it calls) -> flags.
SOLVE_FLAGS = {"input": "--data", "path": "--data", "obj": "--data", "var": "--vars",
               "out": "--out", "chunk": "--chunk", "sample_dim": "--sample-dim",
               "scheduler": "--scheduler", "workers": "--workers", "address": "--address",
               "device": "--device", "t_final": "--t-final", "nu": "--nu", "dt": "--dt",
               "rtol": "--rtol"}


def add_solve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``opflow solve`` to ``subparsers`` (from ``parser.add_subparsers()``).

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; ``args.func(args)`` runs it.
    """
    problems = ", ".join(f"{k} ({v.description}; --vars {v.variable} by default)"
                         for k, v in PROBLEMS.items())
    p = subparsers.add_parser(
        "solve", help="solve a problem for every sample of a netCDF/HDF5 file, chunk by chunk",
        description=f"Solve PROBLEM for every sample of a netCDF/HDF5 file on dask, chunk by "
                    f"chunk, resumably. Problems: {problems}.")
    p.add_argument("problem", metavar="PROBLEM", help=f"one of {', '.join(PROBLEMS)}")
    p.add_argument("--data", metavar="FILE", help="netCDF/HDF5 input file (required)")
    add_alias(p, "--input", "--data", "data", metavar="FILE")
    p.add_argument("--vars", nargs="+", metavar="VAR",
                   help="the input variable of --data, dims (sample, *grid) (default: per "
                        "problem, see above)")
    add_alias(p, "--var", "--vars", "vars", nargs="+", metavar="VAR")
    p.add_argument("--out", required=True, metavar="OUT.nc", help="netCDF file to write")
    p.add_argument("--chunk", type=int, default=16, help="samples per chunk (default: 16)")
    p.add_argument("--sample-dim", default="sample",
                   help="dimension indexing samples (default: sample)")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help="dask scheduler computing the chunks (default: threads, or "
                        "distributed with --address)")
    p.add_argument("--workers", type=int, default=1,
                   help="threads, processes or LocalCluster workers (default: 1)")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="connect to this dask.distributed scheduler (implies distributed)")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument("--t-final", type=float, help="burgers/heat: final time (default: 1)")
    p.add_argument("--nu", type=float, help="burgers: viscosity (0.1); heat: diffusivity (1)")
    p.add_argument("--dt", type=float, help="burgers: time step (default: t_final / 1000)")
    p.add_argument("--rtol", type=float, help="darcy: multigrid relative residual (1e-8)")
    p.add_argument("--option", type=key_value, action="append", metavar="KEY=VALUE",
                   help="any other problem option, e.g. forcing=2.0 (repeatable)")
    p.add_argument("--restart", action="store_true",
                   help="discard an unfinished job with other inputs or settings")
    add_quiet(p)
    p.set_defaults(func=solve_command)
    return p


def _solve_flags(args: argparse.Namespace) -> dict[str, str]:
    return {**SOLVE_FLAGS, f"options of {args.problem!r}": "--option"}


@command_errors("solve", _solve_flags)
def solve_command(args: argparse.Namespace) -> int:
    """Run ``opflow solve`` with parsed ``args``; returns the exit status.

    Errors opflow raises on purpose (and missing files) are printed as one
    line on stderr, naming the flag, with exit status 1.
    """
    options = {opt: getattr(args, dest) for dest, opt in _OPTION_FLAGS.items()
               if getattr(args, dest) is not None}
    options.update(dict(args.option or []))
    data = require(args, "data", "--data", "a netCDF/HDF5 input file")
    var = args.vars
    if var is not None and len(var) != 1:
        raise InvalidArgumentError("--vars", f"one input variable for {args.problem!r}", var)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        path = solve_file(args.problem, data, args.out, var=None if var is None else var[0],
                          chunk=args.chunk, sample_dim=args.sample_dim, options=options,
                          device=args.device, scheduler=args.scheduler,
                          workers=args.workers, address=args.address,
                          progress=not args.quiet, restart=args.restart)
    for w in caught:
        print(f"opflow solve: warning: {w.message}", file=sys.stderr)
    print(f"opflow solve: wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m opflow.batch solve ...`` (the same as ``opflow solve ...``)."""
    parser = argparse.ArgumentParser(prog="opflow")
    add_solve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
