"""The ``opflow`` command line::

    opflow demo [--out DIR]        run the end-to-end demo
    opflow generate PROBLEM ...    make a benchmark data set (netCDF), resumable
    opflow train --model NAME --data FILE.nc --vars a --targets u --epochs E --out RUN_DIR
    opflow predict --checkpoint RUN_DIR/best.pt --data FILE.nc --out PRED.nc [--chunk K]
    opflow solve PROBLEM --data IN.nc --vars a --out OUT.nc [--chunk K] [--scheduler ...]
                                   solve a problem per sample (chunked, resumable)
    opflow pretrain --families advection diffusion ... --backbone fno --out RUN_DIR
    opflow finetune --checkpoint RUN_DIR/pretrained.pt --data FAMILY|FILE.nc --lora-rank R --shots K
    opflow info                    versions and available solvers

Each subcommand is one ``add_*_parser`` function next to the code it runs. One
vocabulary throughout: ``--data FILE`` is the input file, ``--vars VAR ...`` its
input variables, ``--out`` what is written, ``--quiet`` (``-q``) silences progress.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Callable

from ._argparse import add_quiet, command_errors, key_value
from ._smoke import apply_smoke
from ._version import __version__
from .batch.commands import add_solve_parser
from .data.generation import RECIPES
from .errors import InvalidArgumentError
from .io.outputs import check_output_path
from .meta.commands import add_finetune_parser, add_pretrain_parser
from .train.commands import add_predict_parser, add_train_parser

__all__ = ["main", "build_parser"]


# Argument names raised by opflow.data.generate -> the flags of `opflow generate`.
GENERATE_FLAGS = {"n": "--n", "resolution": "--resolution", "seed": "--seed", "chunk": "--chunk",
                  "out": "--out"}


@command_errors("demo")
def _demo(args) -> int:
    if args.resolution is not None and args.resolution < 8:
        raise InvalidArgumentError("--resolution", "at least 8 grid points per axis",
                                   args.resolution)
    check_output_path(args.out, folder=True, argument="--out")
    if args.which == "heat":
        from .demos.heat import run as run_heat

        run_heat(out_dir=args.out, n=args.resolution or 64, batch=args.batch, quiet=args.quiet)
        return 0
    from .demos.darcy import run as run_darcy

    run_darcy(out_dir=args.out, resolution=args.resolution or 65, n_train=args.n_train,
              n_test=args.n_test, epochs_scale=args.epochs_scale, quiet=args.quiet)
    return 0


@command_errors("generate", GENERATE_FLAGS)
def _generate(args) -> int:
    from .data.generation import generate

    options = dict(args.option or [])
    ds = generate(args.problem, n=args.n, resolution=args.resolution, seed=args.seed,
                  out=args.out, chunk=args.chunk, progress=not args.quiet, **options)
    sizes = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
    print(f"wrote {args.out}: {', '.join(map(str, ds.data_vars))} ({sizes})")
    ds.close()
    return 0


# How long each command takes on a 2-core laptop CPU at the size the README shows (CPU
# time of one thread, measured at a smaller size where the full one takes minutes and
# extrapolated linearly in the samples; start-up, about 3 s, included). Each subcommand's
# --help ends with its line (generate's lists GENERATE_TIMES); README.md gives the same
# figures next to each command.
LAPTOP = "on a 2-core laptop CPU"
GENERATE_TIMES = {
    "multitask": "--n 900 --resolution 33: about 15 s",
    "darcy": "--n 1000 --resolution 85: about 40 s",
    "grf": "--n 1000: about 5 s",
    "kuramoto-sivashinsky": "--n 1200 --resolution 256: about 20 s",
    "diffusion-sorption": "--n 200 --resolution 128: about 13 min",
    "burgers": "--n 1000 --resolution 1024: about 10 min",
    "navier-stokes": "--n 100 --resolution 64: about 16 min",
}
HELP_TIMES = {
    "demo": f"Time {LAPTOP}: about 2 min for the Darcy demo at its defaults, about 10 s for "
            "`opflow demo heat`.",
    "train": f"Time {LAPTOP}: about 45 s per epoch for MgNO on 1000 Darcy samples at 85 x 85 "
             "(--epochs 100: about 75 min); it grows with samples x epochs x grid points.",
    "predict": f"Time {LAPTOP}: about 8 s for 100 Darcy samples at 85 x 85 with MgNO, most "
               "of it start-up.",
    "solve": f"Time {LAPTOP}: darcy about 5 s for 100 samples at 85 x 85; burgers about "
             "35 s for 1000 samples at 1024 (--scheduler distributed --workers 4: about "
             "1 min, starting the workers included).",
    "pretrain": f"Time {LAPTOP}: about 1 min at the defaults (4 families).",
    "finetune": f"Time {LAPTOP}: about 10 s at the defaults (200 samples of a family, "
                "200 steps).",
    "info": f"Time {LAPTOP}: about 3 s (importing torch).",
}


def _recipes_help() -> str:
    """``opflow generate --help``: each recipe, its default resolution and options."""
    lines = ["recipes (PROBLEM), their default --resolution and --option keys (default; "
             "accepted values):"]
    for name in sorted(RECIPES):
        recipe = RECIPES[name]
        lines.append(f"  {name}: {recipe.description}; --resolution {recipe.default_resolution}")
        params = inspect.signature(recipe.make).parameters
        for key, param in params.items():
            if param.default is inspect.Parameter.empty:
                continue
            spec = recipe.options.get(key)
            accepts = f"; {spec.expected}" if spec is not None else ""
            default = param.default if isinstance(param.default, str) else json.dumps(
                param.default)
            lines.append(f"      --option {key}={default}{accepts}")
    lines += ["", f"time {LAPTOP} (grows linearly with --n):"]
    lines += [f"  {name} {GENERATE_TIMES[name]}" for name in sorted(RECIPES)
              if name in GENERATE_TIMES]
    lines += ["", "OPFLOW_SMOKE=1 in the environment: toy sizes for a quick check."]
    return "\n".join(lines)


def _info(args) -> int:
    import torch

    import opflow
    from opflow.catalog import named_problems
    from opflow.solve import registered_pairs

    print(f"opflow {opflow.__version__}, torch {torch.__version__}, "
          f"cuda {'available' if torch.cuda.is_available() else 'not available'}")
    print("solvers (opflow.solve):")
    for ptype, atype in registered_pairs():
        print(f"  solve({ptype.__name__}, {atype.__name__})")
    print("named problems (opflow generate / opflow solve):")
    for entry in named_problems():
        can = "/".join(k for k, v in (("generate", entry.recipe), ("solve", entry.solver)) if v)
        print(f"  {entry.name:14s} {can:15s} {entry.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``opflow`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="opflow", description="Differentiable physics and operator learning for PyTorch.")
    parser.add_argument("--version", action="version", version=f"opflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the end-to-end demo (writes netCDF and a PNG)")
    demo.add_argument("which", nargs="?", default="darcy", choices=["darcy", "heat"],
                      help="darcy: generate data, train MgNO and DeepONet (default); "
                           "heat: Fields, a batched ODE solve, netCDF and a plot")
    demo.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    demo.add_argument("--resolution", type=int, default=None, help="grid points per axis")
    demo.add_argument("--batch", type=int, default=8, help="heat: number of samples")
    demo.add_argument("--n-train", type=int, default=200, help="darcy: training samples")
    demo.add_argument("--n-test", type=int, default=40, help="darcy: test samples")
    demo.add_argument("--epochs-scale", type=float, default=1.0,
                      help="darcy: multiply the default epochs (quick runs: 0.1)")
    add_quiet(demo)
    demo.set_defaults(func=_demo)
    gen = sub.add_parser("generate", help="generate a benchmark data set with opflow's solvers",
                         description="Generate a benchmark data set with opflow's solvers, "
                                     "chunk by chunk, resumably.",
                         epilog=_recipes_help(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("problem", choices=sorted(RECIPES))
    gen.add_argument("--n", type=int, required=True, help="number of samples")
    gen.add_argument("--resolution", type=int, default=None,
                     help="grid points per axis (recipe default when omitted)")
    gen.add_argument("--out", required=True, help="output netCDF file")
    gen.add_argument("--seed", type=int, default=0, help="base seed (default: %(default)s)")
    gen.add_argument("--chunk", type=int, default=16,
                     help="samples per chunk; a rerun resumes after the last complete chunk")
    gen.add_argument("--option", type=key_value, action="append", metavar="KEY=VALUE",
                     help="recipe option, e.g. --option nu=0.05 (repeatable; keys below)")
    add_quiet(gen)
    gen.set_defaults(func=_generate)
    info = sub.add_parser("info", help="print versions and the registered solvers")
    info.add_argument("-q", "--quiet", action="store_true",
                      help="accepted as by every subcommand (info prints no progress)")
    info.set_defaults(func=_info)
    add_train_parser(sub)
    add_predict_parser(sub)
    add_solve_parser(sub)
    add_pretrain_parser(sub)
    add_finetune_parser(sub)
    for name, text in HELP_TIMES.items():  # generate's epilog lists them per recipe
        sub.choices[name].epilog = (f"{text} OPFLOW_SMOKE=1 in the environment: toy sizes "
                                    "for a quick check.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``opflow`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``opflow`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 for a refused input or a failed job
        (one ``opflow <command>: error: ...`` line on stderr), 2 for a usage
        error from argparse.

    Notes
    -----
    With ``OPFLOW_SMOKE=1`` in the environment, sizes are capped to toy
    values first (``opflow/_smoke.py``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    apply_smoke(args)  # OPFLOW_SMOKE=1: toy sizes (opflow/_smoke.py)
    func: Callable = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
