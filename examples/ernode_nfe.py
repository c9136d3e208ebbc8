"""ERNODE / SRNODE: cheaper neural ODEs at equal accuracy on a rings classification.

The task: points of the unit disk (class 0) against points of the annulus
``1.5 < r < 2.5`` (class 1). A neural ODE cannot separate nested regions in
the plane without crossing trajectories, so the state is augmented with one
zero coordinate (``(x, y, 0)``, as in augmented neural ODEs), flowed by
``dz/dt = f_theta(z)`` over ``t in [0, 1]`` and classified by a linear head.
Unregularized training lets the learned flow grow expensive for the adaptive
solver (Tsit5); :class:`~opflow.layers.ErrorRegularizer` (ERNODE) and
:class:`~opflow.layers.StiffnessRegularizer` (SRNODE) add the solver's own
error or stiffness estimates to the loss.

Run: ``python examples/ernode_nfe.py``. Prints, for one seed, the test
accuracy and the function evaluations of one prediction solve over the test
set for each arm. The multi-seed study is ``benchmarks/bench_ernode.py``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from opflow.errors import InvalidArgumentError
from opflow.layers import ErrorRegularizer, NeuralODE, StiffnessRegularizer
from opflow.solvers.ode import Tsit5

__all__ = ["REGULARIZERS", "make_rings", "train_rings", "main"]

REGULARIZERS = ("none", "error", "stiffness")


def make_rings(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the two-class rings data set.

    Parameters
    ----------
    n : int
        Number of points (classes drawn with probability 1/2 each).
    generator : torch.Generator
        Source of randomness (the data depend on it only).

    Returns
    -------
    x : torch.Tensor, shape (n, 2), float64
        Points: radius uniform in ``[0, 1)`` (class 0) or ``[1.5, 2.5)``
        (class 1), angle uniform.
    labels : torch.Tensor, shape (n,), int64
    """
    if not (isinstance(n, int) and n > 0):
        raise InvalidArgumentError("n", "a positive number of points", n)
    labels = torch.randint(0, 2, (n,), generator=generator)
    u = torch.rand(n, generator=generator)
    radius = torch.where(labels == 0, u, 1.5 + u)
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return x.double(), labels


def _vector_field(dim: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, dim)).double()


def _regularizer(kind: str, weight: float):
    if kind not in REGULARIZERS:
        raise InvalidArgumentError("regularizer", f"one of {REGULARIZERS}", kind)
    if kind == "error":
        return ErrorRegularizer(weight)
    if kind == "stiffness":
        return StiffnessRegularizer(weight)
    return None


def train_rings(regularizer: str = "none", weight: float = 0.0, seed: int = 0,
                steps: int = 200, n_train: int = 256, n_test: int = 2000, width: int = 32,
                rtol: float = 1e-5, atol: float = 1e-7, lr: float = 1e-2,
                progress: bool = False, data_seed: Optional[int] = None) -> dict:
    """Train one rings classifier and measure it.

    Parameters
    ----------
    regularizer : {"none", "error", "stiffness"}
        No regularization, ERNODE or SRNODE.
    weight : float
        Regularization weight (ignored for ``"none"``).
    seed : int
        Seeds the network initialization and (unless ``data_seed`` is given)
        the data.
    steps : int
        Full-batch Adam steps.
    n_train, n_test : int
        Training and test points.
    width : int
        Hidden width of the two-hidden-layer tanh vector field on ``R^3``.
    rtol, atol : float
        Tsit5 tolerances, the same in training and at prediction.
    lr : float
        Adam learning rate.
    progress : bool
        Show a tqdm bar over the steps (only on a terminal).
    data_seed : int, optional
        Seed of the data (default ``1000 + seed``).

    Returns
    -------
    dict
        ``test_accuracy``; ``predict_nfe``, ``predict_steps`` (one Tsit5
        solve of the whole test set, shared steps); ``train_nfe_last``
        (NFE of the last training forward pass); ``train_loss`` (final
        cross-entropy on the training set, without the penalty);
        ``train_seconds``.
    """
    reg = _regularizer(regularizer, weight)
    if not (isinstance(steps, int) and steps > 0):
        raise InvalidArgumentError("steps", "a positive number of steps", steps)
    gen = torch.Generator().manual_seed(1000 + seed if data_seed is None else data_seed)
    x_train, y_train = make_rings(n_train, gen)
    x_test, y_test = make_rings(n_test, gen)
    torch.manual_seed(seed)
    field, head = _vector_field(3, width), nn.Linear(3, 2).double()
    solver = Tsit5(rtol=rtol, atol=atol)
    model = NeuralODE(field, solver=solver, autonomous=True, return_trajectory=False,
                      record_steps=reg is not None)  # steps kept only when penalized

    def augment(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)

    opt = torch.optim.Adam([*field.parameters(), *head.parameters()], lr=lr)
    start = time.perf_counter()
    show = progress and sys.stderr.isatty()
    for _ in tqdm(range(steps), desc=f"rings {regularizer}", disable=not show, leave=False):
        opt.zero_grad()
        fit = nn.functional.cross_entropy(head(model(augment(x_train))), y_train)
        loss = fit if reg is None else fit + reg(model)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    train_nfe = model.last_stats.nfe
    predictor = NeuralODE(field, solver=solver, autonomous=True, return_trajectory=False)
    with torch.no_grad():
        train_loss = nn.functional.cross_entropy(head(predictor(augment(x_train))), y_train)
        logits = head(predictor(augment(x_test)))  # the prediction solve the NFE is reported for
    stats = predictor.last_stats
    accuracy = float((logits.argmax(dim=1) == y_test).double().mean())
    return dict(test_accuracy=accuracy, predict_nfe=int(stats.nfe),
                predict_steps=int(stats.steps), train_nfe_last=int(train_nfe),
                train_loss=float(train_loss), train_seconds=seconds)


def main(seed: int = 0, steps: int = 200) -> dict:
    """Train the three arms for one seed and print accuracy and prediction NFE."""
    torch.set_num_threads(1)
    arms = {"none": ("none", 0.0), "ERNODE 1e5": ("error", 1e5),
            "SRNODE 1e-1": ("stiffness", 1e-1)}
    results = {}
    for name, (kind, weight) in arms.items():
        r = train_rings(kind, weight, seed=seed, steps=steps, progress=True)
        results[name] = r
        print(f"{name:12s} test accuracy {r['test_accuracy']:.4f}  prediction NFE "
              f"{r['predict_nfe']:4d}  train {r['train_seconds']:.1f} s", flush=True)
    return results


if __name__ == "__main__":
    main()
