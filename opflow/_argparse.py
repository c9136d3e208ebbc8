"""Argument types and error reporting shared by the ``opflow`` subcommands."""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidArgumentError, OpflowError

__all__ = ["add_alias", "add_quiet", "command_errors", "flag_message", "key_value",
           "require"]

# Old flags that were warned about in this process (each is warned about once).
_WARNED: set[str] = set()
# Namespace attribute: canonical flag -> the deprecated spelling the user typed.
_TYPED = "_opflow_typed_flags"

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


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of a flag: stores into the new flag's ``dest``, remembers
    that the old one was typed (errors then name it) and warns once per process."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        typed = dict(getattr(namespace, _TYPED, {}))
        typed[self.new] = option_string
        setattr(namespace, _TYPED, typed)
        key = f"{parser.prog} {option_string}"
        if key not in _WARNED:
            _WARNED.add(key)
            print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}",
                  file=sys.stderr)


def add_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str,
              **kwargs: Any) -> None:
    """Keep ``old`` as a hidden, deprecated spelling of the flag ``new`` (same ``dest``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    old, new : str
        The old and the current flag (``"--input-vars"``, ``"--vars"``).
    dest : str
        The ``dest`` of ``new``.
    **kwargs
        ``nargs``, ``metavar``, ... as for the new flag.
    """
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new,
                        help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_quiet(parser: argparse.ArgumentParser, what: str = "progress") -> None:
    """The ``--quiet`` (``-q``) flag every subcommand has.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    what : str
        What it silences, for the help text.
    """
    parser.add_argument("-q", "--quiet", action="store_true",
                        help=f"no {what} output (a bar on a terminal; otherwise one line per "
                             "epoch or chunk, at most every few seconds)")


def require(args: argparse.Namespace, dest: str, flag: str, expected: str) -> Any:
    """The value of a required flag that has a deprecated alias (argparse cannot
    require one of two spellings itself).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    dest : str
        The flag's ``dest``.
    flag : str
        The flag, for the message.
    expected : str
        What it takes, for the message.

    Returns
    -------
    object
        The value.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        The flag was not given.
    """
    value = getattr(args, dest, None)
    if value is None:
        raise InvalidArgumentError(flag, f"{expected} (the flag is required)", None)
    return value


def _option_flags(args: argparse.Namespace) -> dict[str, str]:
    """``--option KEY=VALUE`` pairs: the name ``KEY`` is reported as ``--option KEY``."""
    return {key: f"--option {key}" for key, _ in getattr(args, "option", None) or []}


Flags = Mapping[str, str] | Callable[[argparse.Namespace], Mapping[str, str]]


def command_errors(command: str, flags: Flags | None = None) -> Callable:
    """Decorate ``run(args, ...) -> int`` so opflow's errors print one line and return 1.

    An :class:`~opflow.errors.OpflowError` or ``FileNotFoundError`` becomes
    ``opflow COMMAND: error: MESSAGE`` on stderr, where an argument named by
    its Python name is renamed to its flag (``flags``, then every
    ``--option KEY``; see :func:`flag_message`). Other exceptions propagate.

    Parameters
    ----------
    command : str
        The subcommand's name.
    flags : mapping of str to str, or callable, optional
        Argument names raised by the code the command runs -> the flags that set them
        (or a function of the parsed arguments returning that mapping). A flag typed
        in a deprecated spelling (see :func:`add_alias`) is named as typed.

    Returns
    -------
    callable
        The decorator.
    """

    def wrap(func: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(func)
        def run(args: argparse.Namespace, *rest: Any, **kwargs: Any) -> int:
            try:
                return func(args, *rest, **kwargs)
            except (OpflowError, FileNotFoundError) as e:
                given = flags(args) if callable(flags) else (flags or {})
                table = {**given, "options": "--option", **_option_flags(args)}
                typed = getattr(args, _TYPED, {})
                table = {k: typed.get(v, v) for k, v in table.items()}
                text = flag_message(e, table)
                for new, old in typed.items():  # messages that name a flag themselves
                    text = text.replace(f"argument `{new}`", f"argument `{old}`")
                print(f"opflow {command}: error: {text}", file=sys.stderr)
                return 1

        return run

    return wrap
