"""Hot primitives with one signature and several implementations.

* :func:`spectral_conv` - Fourier-mode channel mixing (FNO), 1D/2D/3D, through
  ``torch.fft`` or a truncated DFT as real matrix products.
* :func:`use` / :func:`current_backend` - choose the implementation for the
  process or a ``with`` block (``"auto"``, ``"torch"``, ``"fft"``, ``"dft"``);
  every kernel also takes ``backend=``.
* :mod:`opflow.kernels.dft` - the cached truncated DFT matrices.
"""

from . import dft
from .backend import BACKENDS, current_backend, use
from .spectral_conv import SpectralWeight, choose_backend, spectral_conv, weight_shape

__all__ = ["BACKENDS", "SpectralWeight", "choose_backend", "current_backend", "dft",
           "spectral_conv", "use", "weight_shape"]
