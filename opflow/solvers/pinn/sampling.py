"""Seeded point samplers on the unit cube ``[0, 1)^dim``.

Domains map these samples onto their own geometry; every sampler is
reproducible from its ``seed``.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...errors import InvalidArgumentError

__all__ = ["uniform", "latin_hypercube", "sobol", "SAMPLERS", "sample_unit", "check_count"]


def check_count(n: object, argument: str = "n", minimum: int = 0) -> int:
    """``n`` as an int, raising :class:`InvalidArgumentError` unless it is an integer >= minimum."""
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise InvalidArgumentError(argument, f"an integer number of points >= {minimum}", n)
    return n


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def uniform(n: int, dim: int, seed: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Independent uniform points.

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension of the unit cube.
    seed : int
        The same seed gives the same points.
    dtype : torch.dtype, optional
        Default: torch's default dtype.

    Returns
    -------
    torch.Tensor, shape (n, dim), values in [0, 1)
    """
    check_count(n)
    return torch.rand(n, dim, generator=_generator(seed),
                      dtype=dtype or torch.get_default_dtype())


def latin_hypercube(n: int, dim: int, seed: int = 0,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Latin hypercube: along each axis exactly one point per slab ``[k/n, (k+1)/n)``.

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension of the unit cube.
    seed : int
        The same seed gives the same points.
    dtype : torch.dtype, optional
        Default: torch's default dtype.

    Returns
    -------
    torch.Tensor, shape (n, dim), values in [0, 1)
    """
    check_count(n)
    gen = _generator(seed)
    dtype = dtype or torch.get_default_dtype()
    perms = torch.stack([torch.randperm(n, generator=gen) for _ in range(dim)], dim=1)
    jitter = torch.rand(n, dim, generator=gen, dtype=torch.float64)
    return ((perms.to(torch.float64) + jitter) / max(n, 1)).to(dtype)


def sobol(n: int, dim: int, seed: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Scrambled Sobol sequence (:class:`torch.quasirandom.SobolEngine`), low discrepancy.

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension of the unit cube.
    seed : int
        The same seed gives the same points.
    dtype : torch.dtype, optional
        Default: torch's default dtype.

    Returns
    -------
    torch.Tensor, shape (n, dim), values in [0, 1)
    """
    check_count(n)
    if n == 0:
        return torch.empty(0, dim, dtype=dtype or torch.get_default_dtype())
    engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=int(seed))
    return engine.draw(n, dtype=torch.float64).to(dtype or torch.get_default_dtype())


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "uniform": uniform,
    "latin_hypercube": latin_hypercube,
    "lhs": latin_hypercube,
    "sobol": sobol,
}


def sample_unit(n: int, dim: int, method: str = "uniform", seed: int = 0,
                dtype: torch.dtype | None = None, argument: str = "method") -> torch.Tensor:
    """``n`` points in ``[0, 1)^dim`` from the sampler named ``method``.

    Parameters
    ----------
    n : int
        Number of points, >= 0.
    dim : int
    method : {"uniform", "latin_hypercube" (or "lhs"), "sobol"}
    seed : int
    dtype : torch.dtype, optional (default: torch's default dtype)
    argument : str
        Name used in the error for an unknown ``method``.

    Returns
    -------
    torch.Tensor, shape (n, dim)
    """
    if method not in SAMPLERS:
        raise InvalidArgumentError(argument, f"one of {sorted(SAMPLERS)}", method)
    check_count(n)
    return SAMPLERS[method](n, dim, seed=seed, dtype=dtype)
