"""UDE: Lotka-Volterra with the interaction terms learned from noisy data.

True system (the SciML "missing physics" setting)::

    x' = alpha x - beta x y,    y' = delta x y - gamma y

The universal differential equation keeps the known linear terms and replaces
the interaction terms by a small network::

    x' = alpha x + NN1(x, y),   y' = -gamma y + NN2(x, y)

The network is fitted through ``opflow.solve`` (Tsit5, direct backprop) to
noisy observations, with Adam then L-BFGS. The result is the relative L2 error
of ``(NN1, NN2)`` against ``(-beta x y, delta x y)`` along the true trajectory
(the training range).

Run: ``python examples/ude_lotka_volterra.py``.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from opflow import ODEProblem, solve
from opflow.solvers.ode import Tsit5

ALPHA, BETA, DELTA, GAMMA = 1.3, 0.9, 0.8, 1.8
U0 = (0.44, 4.6)
TSPAN = (0.0, 3.0)


def true_interactions(u: torch.Tensor) -> torch.Tensor:
    """``(-beta x y, delta x y)`` for states ``u[..., :2]``."""
    xy = u[..., 0] * u[..., 1]
    return torch.stack([-BETA * xy, DELTA * xy], dim=-1)


def true_rhs(t, u):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([ALPHA * x, -GAMMA * y], dim=-1) + true_interactions(u)


class Interactions(nn.Module):
    """MLP ``(x, y) -> (NN1, NN2)`` on inputs and outputs scaled to order one."""

    def __init__(self, scale: torch.Tensor, width: int = 32):
        super().__init__()
        self.register_buffer("scale", scale)
        self.net = nn.Sequential(
            nn.Linear(2, width), nn.Tanh(),
            nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, 2),
        )
        with torch.no_grad():  # start close to "no interaction"
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()

    def forward(self, u):
        return self.net(u / self.scale) * self.scale


class UDE(nn.Module):
    """Known linear terms plus the learned interactions."""

    def __init__(self, interactions: nn.Module):
        super().__init__()
        self.interactions = interactions
        self.register_buffer("linear", torch.tensor([ALPHA, -GAMMA], dtype=torch.float64))

    def forward(self, t, u):
        return self.linear * u + self.interactions(u)


def fit_lotka_volterra(seed: int = 0, noise: float = 0.01, iterations: int = 300,
                       lbfgs_iterations: int = 200, n_obs: int = 30, quiet: bool = False) -> dict:
    """Fit the UDE and return the losses, the interaction-term error and the time.

    Parameters
    ----------
    seed : int
        Seeds the observation noise and the network initialization.
    noise : float
        Relative noise: each observation is ``u (1 + noise * N(0, 1))``.
    iterations : int
        Adam iterations (lr 1e-2).
    lbfgs_iterations : int
        L-BFGS iterations after Adam (0 skips it).
    n_obs : int
        Observation times, evenly spaced on ``[0, 3]``.

    Returns
    -------
    dict with ``initial_loss``, ``adam_loss``, ``final_loss`` (MSE on the
    observations), ``interaction_error`` (relative L2 along the true
    trajectory), ``trajectory_error`` (relative L2 of the fitted trajectory
    against the true one at the observation times), ``seconds``.
    """
    start = time.perf_counter()
    dtype = torch.float64
    gen = torch.Generator().manual_seed(seed)
    u0 = torch.tensor(U0, dtype=dtype)
    t_obs = torch.linspace(*TSPAN, n_obs, dtype=dtype)
    exact = Tsit5(rtol=1e-10, atol=1e-12)
    u_true = solve(ODEProblem(true_rhs, u0, TSPAN), exact, saveat=t_obs).u
    u_obs = u_true * (1 + noise * torch.randn(u_true.shape, generator=gen, dtype=dtype))

    torch.manual_seed(seed)
    scale = u_obs.abs().amax(dim=0)
    model = UDE(Interactions(scale).double())
    alg = Tsit5(rtol=1e-7, atol=1e-9)
    prob = ODEProblem(model, u0, TSPAN)
    weight = 1.0 / scale**2  # each species counts equally in the loss

    def loss_fn():
        pred = solve(prob, alg, saveat=t_obs).u
        return ((pred - u_obs) ** 2 * weight).mean()

    def log(stage, i, loss):
        if not quiet:
            print(f"{stage} {i:4d}  loss {loss:.3e}", flush=True)

    params = list(model.parameters())
    with torch.no_grad():
        initial = float(loss_fn())
    log("init ", 0, initial)
    opt = torch.optim.Adam(params, lr=1e-2)
    for i in range(iterations):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        if i % 50 == 0:
            log("adam ", i, loss.item())
    with torch.no_grad():
        adam_loss = float(loss_fn())
    log("adam ", iterations, adam_loss)

    if lbfgs_iterations > 0:
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=lbfgs_iterations,
                                  history_size=50, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-12, tolerance_change=1e-16)

        def closure():
            lbfgs.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        lbfgs.step(closure)
    with torch.no_grad():
        final = float(loss_fn())
        pred = solve(prob, alg, saveat=t_obs).u
        t_dense = torch.linspace(*TSPAN, 301, dtype=dtype)
        u_dense = solve(ODEProblem(true_rhs, u0, TSPAN), exact, saveat=t_dense).u
        learned = model.interactions(u_dense)
        target = true_interactions(u_dense)
        err = float(torch.linalg.norm(learned - target) / torch.linalg.norm(target))
        traj = float(torch.linalg.norm(pred - u_true) / torch.linalg.norm(u_true))
    log("final", lbfgs_iterations, final)
    seconds = time.perf_counter() - start
    if not quiet:
        print(f"interaction-term relative L2 error: {100 * err:.2f} %")
        print(f"trajectory relative L2 error:       {100 * traj:.2f} %")
        print(f"time: {seconds:.1f} s")
    return dict(initial_loss=initial, adam_loss=adam_loss, final_loss=final,
                interaction_error=err, trajectory_error=traj, seconds=seconds)


if __name__ == "__main__":
    torch.set_num_threads(1)
    fit_lotka_volterra()
