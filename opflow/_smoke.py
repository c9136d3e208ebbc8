"""``OPFLOW_SMOKE=1``: every ``opflow`` command that takes sizes runs at toy sizes.

With the variable set, :func:`opflow.cli.main` lowers sample counts,
resolutions, epochs and steps of the parsed arguments to the caps below
before the command runs, and the command prints one line on stderr saying
what it changed. The README's commands then run in seconds each (the
README run-through test does this); the results are only a check that the
commands work, not data or models to use. Unset it (or set it to ``0``) for
the sizes typed.

The caps are the one table here: :data:`CAPS` per subcommand and
:data:`GENERATE_CAPS` per ``opflow generate`` recipe.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["CAPS", "ENV", "GENERATE_CAPS", "apply_smoke", "smoke_enabled"]

ENV = "OPFLOW_SMOKE"

# subcommand (``demo`` with its demo's name) -> argument dest -> largest value. A size
# left at its default (None for some flags) is set to the cap: every default is larger.
CAPS: dict[str, dict[str, Any]] = {
    "demo heat": {"resolution": 16, "batch": 2},
    "demo darcy": {"resolution": 17, "n_train": 16, "n_test": 4, "epochs_scale": 0.05},
    "generate": {"n": 8},
    "train": {"epochs": 2},
    "pretrain": {"samples": 12, "resolution": 32, "steps": 3, "inner_steps": 2, "support": 4,
                 "query": 4, "width": 8, "modes": 6},
    "finetune": {"samples": 12, "shots": 4, "steps": 3},
    "solve": {"workers": 2},
}

# opflow generate: recipe -> largest --resolution and --option values. Options not
# given are added at the cap; recipes not listed get ``"*"``.
GENERATE_CAPS: dict[str, dict[str, Any]] = {
    "darcy": {"resolution": 33},
    "burgers": {"resolution": 128},
    "navier-stokes": {"resolution": 16, "n_saves": 2},
    "multitask": {"resolution": 17},
    "diffusion-sorption": {"resolution": 32, "n_t": 5},
    "kuramoto-sivashinsky": {"resolution": 64, "n_saves": 2, "t_start": 5.0},
    "grf": {"resolution": 32},
    "*": {"resolution": 32},
}


def smoke_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OPFLOW_SMOKE`` is set to a true value (anything but ``""``, ``0``,
    ``false``, ``no``, ``off``)."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _cap(args: argparse.Namespace, caps: Mapping[str, Any], changed: list[str]) -> None:
    for dest, cap in caps.items():
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value is None or value > cap:
            setattr(args, dest, cap)
            was = "default" if value is None else value
            changed.append(f"{_flag(dest)} {cap} (was {was})")


def _cap_options(args: argparse.Namespace, caps: Mapping[str, Any], changed: list[str]) -> None:
    options = list(args.option or [])
    given = dict(options)
    for key, cap in caps.items():
        value = given.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= cap:
            continue
        options = [(k, v) for k, v in options if k != key] + [(key, cap)]
        changed.append(f"--option {key}={cap} (was {'default' if value is None else value})")
    args.option = options


def apply_smoke(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> list[str]:
    """Cap the sizes of parsed ``opflow`` arguments when ``OPFLOW_SMOKE`` is set.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`opflow.cli.build_parser`; changed in place.
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    list of str
        The changes (``"--n 8 (was 1000)"``, ...); empty when the variable is
        unset or the command takes no sizes. When set, a command that takes
        sizes prints one line on stderr saying so.
    """
    command = getattr(args, "command", None)
    key = f"{command} {args.which}" if command == "demo" else command
    if not smoke_enabled(environ) or key not in CAPS:
        return []
    changed: list[str] = []
    _cap(args, CAPS[key], changed)
    if command == "generate":
        recipe = dict(GENERATE_CAPS.get(args.problem, GENERATE_CAPS["*"]))
        _cap(args, {"resolution": recipe.pop("resolution")}, changed)
        _cap_options(args, recipe, changed)
    what = ", ".join(changed) if changed else "sizes already within the toy limits"
    print(f"opflow {command}: {ENV}=1, toy sizes for a quick check: {what}; unset {ENV} for "
          "the sizes typed", file=sys.stderr)
    return changed
