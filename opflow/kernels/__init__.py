"""Hot primitives with one signature and several implementations.

* :func:`spectral_conv` - Fourier-mode channel mixing (FNO), 1D/2D/3D, through
  ``torch.fft``, a truncated DFT as real matrix products, or (CUDA, or the
  Triton interpreter) a fused Triton kernel.
* :func:`halo_pad` - one-point circular/reflect padding with a cheap
  backward (MgNO's boundary conditions).
* :func:`use` / :func:`current_backend` - choose the implementation for the
  process or a ``with`` block (``"auto"``, ``"torch"``, ``"fft"``, ``"dft"``,
  ``"triton"``); every kernel also takes ``backend=``.
* :mod:`opflow.kernels.dft` - the cached truncated DFT matrices.
* ``opflow.kernels.triton_spectral`` / ``opflow.kernels.triton_multigrid`` -
  the Triton kernels, loaded on demand with :func:`triton_module` (triton is
  optional and never imported with opflow).
"""

from . import dft
from .backend import (
    BACKENDS,
    current_backend,
    triton_available,
    triton_module,
    use,
)
from .halo import halo_pad
from .spectral_conv import SpectralWeight, choose_backend, spectral_conv, weight_shape

__all__ = ["BACKENDS", "SpectralWeight", "choose_backend", "current_backend", "dft",
           "halo_pad", "spectral_conv", "triton_available", "triton_module",
           "use", "weight_shape"]
