"""Which implementation the kernels use: a process-wide setting with an override.

Every kernel in :mod:`opflow.kernels` has one signature and several
implementations. By default (``"auto"``) each call picks the one that is
fastest for its device and sizes; :func:`use` changes the default for the
whole process (or for a ``with`` block), and each kernel also takes a
``backend=`` argument that wins over both.

Backends
--------
``"auto"``
    Choose per call from the device and sizes (see each kernel).
``"torch"``
    The plain torch reference (for the spectral convolution: the FFT path).
    It runs everywhere and is the ground truth in the tests.
``"fft"``
    Spectral convolution through ``torch.fft.rfftn`` / ``irfftn``.
``"dft"``
    Spectral convolution as a truncated discrete Fourier transform written as
    real matrix products (fast on CPU for few modes).
"""

from __future__ import annotations

from ..errors import InvalidArgumentError

__all__ = ["BACKENDS", "current_backend", "use", "resolve_backend"]

BACKENDS: tuple[str, ...] = ("auto", "torch", "fft", "dft")

_state = {"backend": "auto"}


class _Restore:
    """Returned by :func:`use`: restores the previous backend when used as a context."""

    def __init__(self, previous: str):
        self.previous = previous

    def __enter__(self) -> str:
        return _state["backend"]

    def __exit__(self, *exc) -> None:
        _state["backend"] = self.previous

    def __repr__(self) -> str:
        return f"opflow.kernels.use({_state['backend']!r})"


def _check(backend: str, argument: str) -> str:
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise InvalidArgumentError(argument, f"one of {BACKENDS}", backend)
    return backend.lower()


def use(backend: str) -> _Restore:
    """Set the default kernel backend; works as a plain call or a context manager.

    Parameters
    ----------
    backend : {"auto", "torch", "fft", "dft"}
        See the module docstring.

    Returns
    -------
    context manager
        Leaving its ``with`` block restores the previous backend; ignoring
        it keeps the new default for the rest of the process.

    Examples
    --------
    >>> import opflow.kernels as K
    >>> with K.use("fft"):
    ...     K.current_backend()
    'fft'
    >>> K.current_backend()
    'auto'
    """
    backend = _check(backend, "backend")
    previous = _state["backend"]
    _state["backend"] = backend
    return _Restore(previous)


def current_backend() -> str:
    """The default backend set by :func:`use` (``"auto"`` unless changed)."""
    return _state["backend"]


def resolve_backend(backend: str | None) -> str:
    """The backend a call runs with: its own ``backend=`` argument, else the default."""
    return current_backend() if backend is None else _check(backend, "backend")
