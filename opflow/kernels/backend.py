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
``"triton"``
    Fused Triton kernels (:mod:`opflow.kernels.triton_spectral`,
    :mod:`opflow.kernels.triton_multigrid`). Needs the optional ``triton``
    package, imported only when first used; on CUDA tensors it compiles for
    the GPU. CPU tensors run only under Triton's interpreter
    (``TRITON_INTERPRET=1`` set before the kernels are first used), which is
    slow and meant for tests. ``"auto"`` picks it only for CUDA tensors.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import InvalidArgumentError

__all__ = ["BACKENDS", "current_backend", "use", "resolve_backend", "triton_available",
           "triton_module", "interpreted"]

BACKENDS: tuple[str, ...] = ("auto", "torch", "fft", "dft", "triton")

_TRITON_MISSING = "the `triton` package installed (pip install triton; Linux x86_64)"

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
    backend : {"auto", "torch", "fft", "dft", "triton"}
        See the module docstring.

    Returns
    -------
    context manager
        Leaving its ``with`` block restores the previous backend; ignoring
        it keeps the new default for the rest of the process.

    Raises
    ------
    InvalidArgumentError
        Unknown name, or ``"triton"`` without the triton package.

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
    if backend == "triton" and not triton_available():
        raise InvalidArgumentError("backend", _TRITON_MISSING + " for 'triton'", backend)
    previous = _state["backend"]
    _state["backend"] = backend
    return _Restore(previous)


def current_backend() -> str:
    """The default backend set by :func:`use` (``"auto"`` unless changed)."""
    return _state["backend"]


def resolve_backend(backend: str | None) -> str:
    """The backend a call runs with: its own ``backend=`` argument, else the default."""
    return current_backend() if backend is None else _check(backend, "backend")


def triton_available() -> bool:
    """Whether the optional ``triton`` package can be imported (not imported here)."""
    return importlib.util.find_spec("triton") is not None


def triton_module(name: str) -> ModuleType:
    """Import ``opflow.kernels.<name>`` (a Triton kernel module) on first use.

    Kept lazy so that opflow imports without triton, and so that
    ``TRITON_INTERPRET`` is read when the kernels are defined, not when
    opflow is imported.

    Parameters
    ----------
    name : str
        The module's name in :mod:`opflow.kernels` (``"triton_spectral"``, ...).

    Returns
    -------
    module

    Raises
    ------
    InvalidArgumentError
        triton is not installed.
    """
    if not triton_available():
        raise InvalidArgumentError("backend", _TRITON_MISSING + " for 'triton'", "triton")
    return importlib.import_module(f"{__package__}.{name}")


def interpreted(kernel) -> bool:
    """Whether a ``@triton.jit`` kernel was defined under Triton's interpreter
    (``TRITON_INTERPRET=1``: CPU testing)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - older triton layout
        return False
    return isinstance(kernel, InterpretedFunction)
