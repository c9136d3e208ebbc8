"""Argument types and error reporting shared by the ``opflow`` subcommands."""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .errors import OpflowError

__all__ = ["command_errors", "flag_message", "key_value"]

_ARGUMENT = re.compile(r"^argument `([^`]+)`")


def key_value(text: str) -> tuple[str, Any]:
    """``--option KEY=VALUE``: VALUE is read as JSON when it parses (numbers, lists,
    booleans), else kept as a string (``geometries=square,lshape``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def flag_message(error: BaseException, flags: Mapping[str, str]) -> str:
    """``error``'s message with the argument it names replaced by the flag the user typed.

    Parameters
    ----------
    error : BaseException
        An opflow error, whose message starts with ``argument `NAME`:``
        when it names an argument.
    flags : mapping of str to str
        Argument names of the functions a command calls -> its flags,
        e.g. ``{"batch_size": "--batch-size", "fine_factor": "--option fine_factor"}``.

    Returns
    -------
    str
    """
    text = str(error)
    match = _ARGUMENT.match(text)
    if match is None or match.group(1) not in flags:
        return text
    return f"argument `{flags[match.group(1)]}`" + text[match.end():]


def _option_flags(args: argparse.Namespace) -> dict[str, str]:
    """``--option KEY=VALUE`` pairs: the name ``KEY`` is reported as ``--option KEY``."""
    return {key: f"--option {key}" for key, _ in getattr(args, "option", None) or []}


def command_errors(command: str, flags: Mapping[str, str] | None = None) -> Callable:
    """Decorate ``run(args, ...) -> int`` so opflow's errors print one line and return 1.

    An :class:`~opflow.errors.OpflowError` or ``FileNotFoundError`` becomes
    ``opflow COMMAND: error: MESSAGE`` on stderr, where an argument named by
    its Python name is renamed to its flag (``flags``, then every
    ``--option KEY``; see :func:`flag_message`). Other exceptions propagate.

    Parameters
    ----------
    command : str
        The subcommand's name.
    flags : mapping of str to str, optional
        Argument names raised by the code the command runs -> the flags that set them.
    """

    def wrap(func: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(func)
        def run(args: argparse.Namespace, *rest: Any, **kwargs: Any) -> int:
            try:
                return func(args, *rest, **kwargs)
            except (OpflowError, FileNotFoundError) as e:
                table = {**(flags or {}), "options": "--option", **_option_flags(args)}
                print(f"opflow {command}: error: {flag_message(e, table)}", file=sys.stderr)
                return 1

        return run

    return wrap
