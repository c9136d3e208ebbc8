"""A semilinear system in Fourier space: ``v' = L v + N(t, v)``.

Every pseudo-spectral problem becomes one :class:`SemilinearSystem` before
time stepping: ``v`` is the real FFT of the state (see
:class:`~.fourier.FourierBasis`), ``L`` a real diagonal operator (diffusion:
the stiff part, treated implicitly or exactly by the schemes) and ``N`` the
explicit part (advection, forcing, closure). The schemes in
:mod:`.cnab2`, :mod:`.cnheun` and :mod:`.etdrk4` see nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ....errors import GridMismatchError, ShapeError
from ....field import Field
from .fourier import FourierBasis

__all__ = ["SemilinearSystem", "ClosureTerm"]

Explicit = Callable[[float, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SemilinearSystem:
    """``v' = linear * v + explicit(t, v)`` for spectral states ``v``.

    Attributes
    ----------
    basis : FourierBasis
        Transforms between the physical state and ``v``.
    linear : torch.Tensor, real, broadcastable to the spectral shape
        Diagonal of ``L`` (non-positive for diffusion).
    explicit : callable
        ``explicit(t, v) -> N``, ``t`` a Python float, ``v`` and ``N`` complex
        of shape ``(*batch, 1, *spectral_shape)``. One call is one
        right-hand-side evaluation in the solver statistics.
    observe : callable, optional
        ``observe(t, v) -> v_lab``: the saved state at time ``t`` from the
        marched one, for systems marched in a moving frame (a constant
        advection applied exactly as a Fourier shift). Default: ``v`` itself.
    """

    basis: FourierBasis
    linear: torch.Tensor
    explicit: Explicit
    observe: Optional[Callable[[float, torch.Tensor], torch.Tensor]] = None


class ClosureTerm:
    """The user's ``closure(t, u) -> Field``, as a spectral right-hand-side term.

    Parameters
    ----------
    closure : callable or nn.Module
        Called with a 0-dim time tensor and the current state as a Field like
        ``template``; returns a Field on the same grid (or a tensor) whose
        values broadcast to the state's shape.
    template : Field
        The initial state: grid, names, units, dtype and device of the state.
    basis : FourierBasis
    """

    def __init__(self, closure: Callable, template: Field, basis: FourierBasis):
        self.closure = closure
        self.template = template
        self.basis = basis
        self.shape = tuple(template.values.shape)

    def __call__(self, t: float, v: torch.Tensor, u: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """Spectrum of ``closure(t, u)``; ``u`` is ``inverse(v)`` when already at hand."""
        basis = self.basis
        if u is None:
            u = basis.inverse(v)
        tt = torch.tensor(t, dtype=basis.dtype, device=basis.device)
        out = self.closure(tt, self.template.with_values(u))
        if isinstance(out, Field):
            if out.grid != self.template.grid:
                raise GridMismatchError("closure(t, u)", f"a Field on {self.template.grid}",
                                        out.grid)
            out = out.values
        if not isinstance(out, torch.Tensor):
            raise ShapeError("closure(t, u)", f"a Field or tensor of shape {self.shape}", out)
        try:
            ok = torch.broadcast_shapes(out.shape, self.shape) == self.shape
        except RuntimeError:
            ok = False
        if not ok or out.is_complex():
            raise ShapeError("closure(t, u)",
                             f"real values broadcastable to the state's shape {self.shape}", out)
        return basis.forward(out.to(basis.dtype))
