"""ERNODE: fit the spiral ``dy/dt = A y^3`` with and without the error regularizer.

Run: ``python examples/ernode_nfe.py``. Prints the fit and the function
evaluations of a forward solve after training for each regularization weight.
"""

import time

import torch
from torch import nn

from opflow import ODEProblem, solve
from opflow.layers import ErrorRegularizer, NeuralODE
from opflow.solvers.ode import Tsit5


def main(weights=(0.0, 1e4, 1e5, 1e6), iters=200, seed=0):
    torch.set_num_threads(1)
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
    ts = torch.linspace(0.0, 1.5, 20, dtype=torch.float64)
    y0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    prob = ODEProblem(lambda t, y: (y**3) @ A.T, y0, (0.0, 1.5))
    target = solve(prob, Tsit5(rtol=1e-10, atol=1e-12), saveat=ts).u
    for w in weights:
        torch.manual_seed(seed)
        field = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 2)).double()
        model = NeuralODE(field, solver=Tsit5(rtol=1e-6, atol=1e-8), t=ts, autonomous=True,
                          record_steps=w > 0)
        reg = ErrorRegularizer(w)
        opt = torch.optim.Adam(field.parameters(), lr=0.01)
        start = time.perf_counter()
        for _ in range(iters):
            opt.zero_grad()
            fit = (model(y0) - target).pow(2).mean()
            loss = fit + (reg(model) if w > 0 else 0.0)
            loss.backward()
            opt.step()
        with torch.no_grad():
            fit = float((model(y0) - target).pow(2).mean())
        print(f"weight {w:g}: mse {fit:.3e}, nfe {model.last_stats.nfe}, "
              f"steps {model.last_stats.steps}, train {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
