"""``opflow pretrain`` and ``opflow finetune``: meta-learning from the command line.

::

    opflow pretrain --families advection diffusion burgers reaction_diffusion \\
        --backbone fno --out runs/lemon
    opflow finetune --checkpoint runs/lemon/pretrained.pt --data porous_medium \\
        --lora-rank 4 --shots 10 --out runs/lemon-pm

``pretrain`` generates each family's samples (kept in ``RUN_DIR/data/``),
pretrains with first-order MAML (or ``--method joint``) and writes
``RUN_DIR/pretrained.pt`` (an opflow checkpoint whose metadata records the
families, the input variables and the grid) and ``RUN_DIR/history.json``.
``finetune`` adapts it with ``K`` samples of a netCDF file (or of a family
generated on the fly), reports the relative L2 error on the other samples
before (zero-shot) and after adaptation, and writes ``OUT/finetuned.pt``
(adapters merged: a plain model that ``opflow predict`` can load) and
``OUT/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .._argparse import add_quiet, command_errors
from ..errors import GridMismatchError, InvalidArgumentError
from ..grid import Grid
from ..io import atomic_path
from ..io.outputs import check_output_path

__all__ = ["add_finetune_parser", "add_pretrain_parser", "finetune_command",
           "pretrain_command"]


# Argument names raised by the code the commands run -> their flags.
PRETRAIN_FLAGS = {"n": "--samples", "resolution": "--resolution", "t_end": "--t-end",
                  "steps": "--steps", "lr": "--lr", "inner_steps": "--inner-steps",
                  "inner_lr": "--inner-lr", "support": "--support", "query": "--query",
                  "width": "--width", "modes": "--modes", "layers": "--layers",
                  "n_layers": "--layers", "seed": "--seed", "method": "--method",
                  "backbone": "--backbone"}
FINETUNE_FLAGS = {"n": "--samples", "shots": "--shots", "rank": "--lora-rank",
                  "mode": "--mode", "steps": "--steps", "lr": "--lr", "seed": "--seed"}
# Files `opflow finetune` writes in its --out folder.
FINETUNE_FILES = ("finetuned.pt", "metrics.json")


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------- parsers
def add_pretrain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``opflow pretrain`` to ``subparsers``; ``args.func(args)`` runs it."""
    from .families import FAMILIES

    p = subparsers.add_parser(
        "pretrain", help="pretrain one operator on several 1-D PDE families (LeMON)",
        description="Generate samples of several PDE families with opflow's spectral solver "
                    "and pretrain one operator on them with first-order MAML.")
    p.add_argument("--families", nargs="+", required=True, choices=sorted(FAMILIES),
                   metavar="FAMILY", help=f"families to pretrain on: {sorted(FAMILIES)}")
    p.add_argument("--backbone", choices=["fno", "deeponet"], default="fno")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="folder to write")
    p.add_argument("--method", choices=["fomaml", "joint"], default="fomaml",
                   help="first-order MAML (default) or joint training on pooled samples")
    p.add_argument("--samples", type=int, default=200, help="samples per family (default 200)")
    p.add_argument("--resolution", type=int, default=64, help="grid points (default 64)")
    p.add_argument("--t-end", type=float, default=1.0, help="final time of the map (default 1)")
    p.add_argument("--steps", type=int, default=500, help="outer steps (default 500)")
    p.add_argument("--lr", type=float, default=5e-3, help="outer Adam learning rate")
    p.add_argument("--inner-steps", type=int, default=5, help="inner SGD steps (default 5)")
    p.add_argument("--inner-lr", type=float, default=1e-3, help="inner SGD step size")
    p.add_argument("--support", type=int, default=10, help="support samples per task")
    p.add_argument("--query", type=int, default=20, help="query samples per task")
    p.add_argument("--width", type=int, default=32, help="model width (default 32)")
    p.add_argument("--modes", type=int, default=12, help="FNO Fourier modes (default 12)")
    p.add_argument("--layers", type=int, default=4, help="layers (default 4)")
    p.add_argument("--seed", type=int, default=0)
    add_quiet(p)
    p.set_defaults(func=pretrain_command)
    return p


def add_finetune_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``opflow finetune`` to ``subparsers``; ``args.func(args)`` runs it."""
    p = subparsers.add_parser(
        "finetune", help="adapt a pretrained operator to a new PDE family with few samples",
        description="Fine-tune a checkpoint from `opflow pretrain` on K samples of a family "
                    "(LoRA adapters, all weights, or from scratch) and report the relative "
                    "L2 error on the remaining samples.")
    p.add_argument("--checkpoint", required=True, help="RUN_DIR/pretrained.pt")
    p.add_argument("--data", required=True, metavar="FILE.nc|FAMILY",
                   help="netCDF file of a family (as in RUN_DIR/data/) or a family name to "
                        "generate")
    p.add_argument("--shots", type=int, required=True, metavar="K", help="support samples")
    p.add_argument("--lora-rank", type=int, default=4, metavar="R",
                   help="adapter rank (default 4); 0 fine-tunes every weight")
    p.add_argument("--mode", choices=["lora", "full", "scratch"],
                   help="what to train (default: lora, or full with --lora-rank 0)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder to write")
    p.add_argument("--steps", type=int, default=200, help="Adam steps (default 200)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-2 lora, 1e-3 otherwise)")
    p.add_argument("--samples", type=int, default=200,
                   help="samples to generate when --data is a family name (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the support draw and adapters")
    add_quiet(p)
    p.set_defaults(func=finetune_command)
    return p


# ---------------------------------------------------------------- pretrain
@command_errors("pretrain", PRETRAIN_FLAGS)
def pretrain_command(args: argparse.Namespace) -> int:
    """Run ``opflow pretrain``; returns the exit status (1 with a one-line error)."""
    return _pretrain(args)


def _check_pretrain_flags(args: argparse.Namespace) -> None:
    """Refuse bad sizes, rates and outputs before any folder is made or sample generated."""
    from .maml import _check_counts, _check_rates

    for flag, value, low in (("--samples", args.samples, 2), ("--resolution", args.resolution, 8),
                             ("--steps", args.steps, 1), ("--support", args.support, 1),
                             ("--query", args.query, 1)):
        if value < low:
            raise InvalidArgumentError(flag, f"an integer >= {low}", value)
    if args.support + args.query > args.samples:
        raise InvalidArgumentError("--samples", f"at least --support + --query = "
                                   f"{args.support + args.query} samples", args.samples)
    _check_counts(inner_steps=args.inner_steps, width=args.width, modes=args.modes,
                  layers=args.layers)
    _check_rates(lr=args.lr, inner_lr=args.inner_lr, t_end=args.t_end)
    check_output_path(args.out, folder=True, argument="--out")


def _pretrain(args: argparse.Namespace) -> int:
    from ..train.checkpoint import save_checkpoint
    from .families import COEFFICIENT_SCALES, INPUTS, generate_family, save_family
    from .maml import build_backbone, pretrain, task_from_dataset

    _check_pretrain_flags(args)
    model = build_backbone(args.backbone, len(INPUTS), args.resolution, width=args.width,
                           modes=args.modes, layers=args.layers, seed=args.seed)
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    tasks = []
    for i, family in enumerate(dict.fromkeys(args.families)):
        ds = generate_family(family, args.samples, args.resolution, seed=args.seed + 1000 * i,
                             t_end=args.t_end, progress=progress)
        save_family(ds, out / "data" / f"{family}.nc")
        tasks.append(task_from_dataset(ds))
    history = pretrain(model, tasks, method=args.method, steps=args.steps, lr=args.lr,
                       inner_steps=args.inner_steps, inner_lr=args.inner_lr,
                       support=args.support, query=args.query, seed=args.seed,
                       progress=progress)
    axis = tasks[0].grid.axes[0]
    metadata = {"families": [t.name for t in tasks], "method": args.method,
                "backbone": args.backbone, "variables": list(tasks[0].variables),
                "coefficient_scales": COEFFICIENT_SCALES, "t_end": args.t_end,
                "grid": [float(axis.bounds[0]), float(axis.bounds[1]), int(axis.size)]}
    save_checkpoint(out / "pretrained.pt", model, epoch=args.steps, metadata=metadata)
    _write_json(out / "history.json", history)
    print(f"pretrained {args.backbone} on {metadata['families']} ({args.method}, "
          f"{args.steps} steps): final loss {history[-1]['loss']:.4g}; wrote "
          f"{out / 'pretrained.pt'}")
    return 0


# ---------------------------------------------------------------- finetune
@command_errors("finetune", FINETUNE_FLAGS)
def finetune_command(args: argparse.Namespace) -> int:
    """Run ``opflow finetune``; returns the exit status (1 with a one-line error)."""
    return _finetune(args)


def _load_pretrained(path: str):
    from ..operators import build_operator
    from ..train.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    meta = ckpt.get("metadata") or {}
    if ckpt.get("model_config") is None or "variables" not in meta or "grid" not in meta:
        raise InvalidArgumentError("--checkpoint", "a checkpoint written by `opflow pretrain`",
                                   str(path))
    model = build_operator(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), meta


def _target_task(args: argparse.Namespace, meta: dict):
    from .families import FAMILIES, generate_family
    from .maml import task_from_dataset

    start, stop, n = meta["grid"]
    if args.data in FAMILIES:
        ds = generate_family(args.data, args.samples, int(n), seed=args.seed + 7919,
                             t_end=float(meta.get("t_end", 1.0)), progress=not args.quiet)
    elif os.path.exists(args.data):
        from ..io import open_dataset

        ds = open_dataset(args.data)
    else:
        raise InvalidArgumentError("--data", f"a netCDF file or a family in {sorted(FAMILIES)}",
                                   args.data)
    variables = meta["variables"]
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise InvalidArgumentError("--data", f"the variables the model was pretrained on "
                                   f"{variables}", f"a file without {missing}")
    task = task_from_dataset(ds, inputs=variables[:-1], output=variables[-1])
    expected = Grid.uniform(x=(float(start), float(stop), int(n)), periodic=("x",))
    if task.grid != expected:
        raise GridMismatchError("--data", f"samples on the pretraining grid {expected}",
                                task.grid)
    return task


def _finetune(args: argparse.Namespace) -> int:
    from ..operators.lora import remove_lora
    from ..train.checkpoint import save_checkpoint
    from .adapt import evaluate, finetune

    if args.lora_rank < 0:
        raise InvalidArgumentError("--lora-rank", "a non-negative rank (0: full fine-tune)",
                                   args.lora_rank)
    mode = args.mode or ("lora" if args.lora_rank > 0 else "full")
    if mode == "lora" and args.lora_rank == 0:
        raise InvalidArgumentError("--lora-rank", "a positive rank with --mode lora", 0)
    data_file = args.data if os.path.isfile(args.data) else None
    out = check_output_path(args.out, folder=True, writes=FINETUNE_FILES, argument="--out",
                            inputs={"--checkpoint": args.checkpoint, "--data": data_file})
    model, meta = _load_pretrained(args.checkpoint)
    task = _target_task(args, meta)
    support, query = task.split(args.shots, seed=args.seed)
    if len(query) == 0:
        raise InvalidArgumentError("--shots", f"fewer than the {len(task)} samples (the rest "
                                   "measure the error)", args.shots)
    zero_shot = evaluate(model, query)
    adapted, info = finetune(model, support, mode=mode, steps=args.steps, lr=args.lr,
                             rank=max(args.lora_rank, 1), seed=args.seed,
                             progress=not args.quiet)
    error = evaluate(adapted, query)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"family": task.name, "shots": args.shots, "mode": mode,
               "lora_rank": args.lora_rank if mode == "lora" else None, "steps": args.steps,
               "trainable_parameters": info["trainable"], "zero_shot_rel_l2": zero_shot,
               "rel_l2": error, "query_samples": len(query),
               "final_support_loss": info["losses"][-1] if info["losses"] else None}
    plain = remove_lora(adapted) if mode == "lora" else adapted
    save_checkpoint(out / "finetuned.pt", plain, metadata={**meta, "finetune": metrics})
    _write_json(out / "metrics.json", metrics)
    print(f"{task.name}: relative L2 zero-shot {zero_shot:.4g} -> {mode} {args.shots}-shot "
          f"{error:.4g} ({info['trainable']} trainable parameters); wrote {out}")
    return 0
