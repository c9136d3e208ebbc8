"""Exceptions raised by opflow for inputs a user got wrong.

Every message names the argument, what was expected and what was given, so
that a mistake is fixed from the message alone, without a traceback from deep
inside torch or a file library.
"""

from __future__ import annotations

__all__ = [
    "OpflowError",
    "InvalidArgumentError",
    "ShapeError",
    "GridMismatchError",
    "UnknownVariableError",
    "FileFormatError",
    "CorruptFileError",
    "SolverError",
    "describe",
]


class OpflowError(Exception):
    """Base class of every error opflow raises on purpose."""


class InvalidArgumentError(OpflowError, ValueError):
    """An argument has a value outside what the function accepts.

    Parameters
    ----------
    argument : str
        Name of the argument (as the caller wrote it).
    expected : str
        What it should have been, in words.
    got : object
        The value received (described briefly in the message).
    """

    def __init__(self, argument: str, expected: str, got: object):
        self.argument, self.expected, self.got = argument, expected, got
        super().__init__(f"argument `{argument}`: expected {expected}, got {describe(got)}")


class ShapeError(InvalidArgumentError):
    """A tensor argument has the wrong number of dimensions or sizes.

    Parameters
    ----------
    argument : str
        Name of the argument (as the caller wrote it).
    expected : str
        What it should have been, in words.
    got : object
        The value received (described briefly in the message).
    """


class GridMismatchError(InvalidArgumentError):
    """Two Fields (or a Field and a Grid) that must share a Grid do not.

    Parameters
    ----------
    argument : str
        Name of the argument (as the caller wrote it).
    expected : str
        What it should have been, in words.
    got : object
        The value received (described briefly in the message).
    """


class UnknownVariableError(OpflowError, KeyError):
    """A variable or axis name that does not exist was asked for.

    Parameters
    ----------
    argument : str
        Name of the argument that held the name.
    name : str
        The name asked for.
    available : iterable of str
        The names that exist (listed in the message).
    """

    def __init__(self, argument: str, name: str, available):
        self.argument, self.name, self.available = argument, name, list(available)
        super().__init__(
            f"argument `{argument}`: unknown name {name!r}; available: {self.available}"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class FileFormatError(OpflowError, ValueError):
    """A file is not in a format opflow can read (not netCDF, not HDF5, ...)."""


class CorruptFileError(FileFormatError):
    """A file has a known format but cannot be read: truncated or damaged."""


class SolverError(OpflowError, RuntimeError):
    """A solver was asked for something it cannot do (not a numerical failure:
    those are reported through ``Solution.retcode``)."""


def describe(value: object) -> str:
    """Short human description of ``value`` for error messages.

    Parameters
    ----------
    value : object
        Anything; tensors and arrays are described by shape and dtype.

    Returns
    -------
    str
    """
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float)):
        return f"{type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
