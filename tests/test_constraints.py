"""Hard constraints as layers (opflow.constraints): exactness, gradients, experts, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from opflow import Field, Grid
from opflow.constraints import (
    ExpertWindows,
    GridCondition,
    HardConstraint,
    Partition,
    initial_condition,
)
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.solvers.nonlinear import LevenbergMarquardt
from opflow.solvers.pinn import Coordinates, GridCoordinates, d

F64 = torch.float64
NX, NT = 16, 8
GRID = Grid.uniform(x=(0.0, 1.0, NX), t=(0.0, 0.5, NT))


def heat(x, u):
    return d(u, x, "t") - 0.1 * d(u, x, "x", 2)


class FeatureBasis(nn.Module):
    """``b_i = F_i * (1 + p_i a) + q_i``: fixed random features modulated by the input."""

    def __init__(self, n: int, shape=(NX, NT), seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("features", torch.randn(n, *shape, generator=gen, dtype=F64))
        self.p = nn.Parameter(torch.randn(n, generator=gen, dtype=F64))
        self.q = nn.Parameter(0.1 * torch.randn(n, generator=gen, dtype=F64))

    def forward(self, a: Field) -> torch.Tensor:
        v = a.values[:, :1]
        view = (1, -1) + (1,) * (v.ndim - 2)
        return self.features * (1 + self.p.view(view) * v) + self.q.view(view)


class FixedBasis(nn.Module):
    """The basis fields themselves are the parameter (gradients w.r.t. basis outputs)."""

    def __init__(self, b: torch.Tensor):
        super().__init__()
        self.b = nn.Parameter(b)

    def forward(self, a: Field) -> torch.Tensor:
        return self.b


def inputs(batch: int = 2, grid: Grid = GRID, seed: int = 1) -> Field:
    gen = torch.Generator().manual_seed(seed)
    u0 = torch.rand(batch, 1, generator=gen, dtype=F64)
    mask = torch.ones(grid.shape, dtype=F64)
    return Field(u0.reshape(batch, 1, *[1] * grid.ndim) * mask, grid)


def mask_nodes(pairs, shape=(NX, NT)) -> torch.Tensor:
    m = torch.zeros(shape, dtype=torch.bool)
    for i, j in pairs:
        m[i, j] = True
    return m


def residual_on_grid(u: Field) -> torch.Tensor:
    x = GridCoordinates(u.grid, u.values.shape[0], dtype=F64)
    pts = u.values.detach().to(F64).movedim(1, -1).reshape(-1, 1)
    return heat(x, pts).reshape(u.values.shape[0], *u.grid.shape)


# ------------------------------------------------------------------ grid derivatives
def test_grid_coordinates_serve_pinn_residuals():
    x = GridCoordinates(GRID, samples=3, dtype=F64)
    u = torch.sin(x["x"]) * x["t"] ** 2
    assert torch.allclose(d(u, x, "t"), 2 * x["t"] * torch.sin(x["x"]), atol=1e-12)
    assert torch.allclose(d(u, x, "x", 2), -u, atol=5e-3)
    # the same residual runs on autograd coordinates
    c = Coordinates(x.values[:5].clone().requires_grad_(True), ("x", "t"))
    assert heat(c, torch.sin(c["x"]) * c["t"] ** 2).shape == (5, 1)


# ------------------------------------------------------------------ the constraint holds
def test_constraint_holds_at_the_sampled_points():
    pts = [(3, 2), (5, 4), (8, 6), (10, 3), (12, 5), (7, 1)]
    layer = HardConstraint(FeatureBasis(16), heat, 16, points=mask_nodes(pts), ridge=1e-12,
                           conditions=[initial_condition(points=5)])
    a = inputs()
    u = layer(a)
    assert u.shape == (2, 1, NX, NT) and u.attrs["retcode"] == "Success"
    r = residual_on_grid(u)
    at_points = torch.stack([r[:, i, j] for i, j in pts], dim=1)
    scale = residual_on_grid(Field(layer.basis(a)[:, :1], GRID)).abs().max()
    assert at_points.abs().max() < 1e-8 * scale
    assert r.abs().max() > 1e3 * at_points.abs().max()     # elsewhere it need not hold


def test_random_points_are_fixed_by_the_seed():
    a = inputs()
    one = HardConstraint(FeatureBasis(12), heat, 12, points=6, seed=3)(a)
    two = HardConstraint(FeatureBasis(12), heat, 12, points=6, seed=3)(a)
    assert torch.equal(one.values, two.values)


# ------------------------------------------------------------------ gradients
def test_gradient_matches_finite_differences_of_the_basis_parameters():
    layer = HardConstraint(FeatureBasis(10), heat, 10, points=5, ridge=1e-6,
                           conditions=[initial_condition(points=3)])
    a = inputs()
    weights = torch.randn(2, 1, NX, NT, generator=torch.Generator().manual_seed(5), dtype=F64)

    def loss() -> torch.Tensor:
        return (layer(a).values * weights).sum()

    loss().backward()
    for param in (layer.basis.p, layer.basis.q):
        for i in (0, 7):
            with torch.no_grad():
                param[i] += 1e-6
                up = loss()
                param[i] -= 2e-6
                down = loss()
                param[i] += 1e-6
            fd = (up - down) / 2e-6
            assert abs(float(param.grad[i]) - float(fd)) <= 2e-4 * max(0.1, abs(float(fd)))


def test_gradient_matches_direct_differentiation_of_the_least_squares_solution():
    n, ridge = 8, 1e-3
    gen = torch.Generator().manual_seed(2)
    b0 = torch.randn(2, n, NX, NT, generator=gen, dtype=F64)
    pts = mask_nodes([(4, 3), (9, 5), (12, 2)])
    a = inputs()
    layer = HardConstraint(FixedBasis(b0.clone()), heat, n, points=pts, ridge=ridge,
                           conditions=[initial_condition()])
    weights = torch.randn(2, 1, NX, NT, generator=gen, dtype=F64)
    (layer(a).values * weights).sum().backward()

    # direct: rows(w) = A w - c is linear, w = (A^T A + ridge I)^-1 A^T c, autograd through it
    b = b0.clone().requires_grad_(True)
    outs = []
    for s in range(2):
        x = GridCoordinates(GRID, n, dtype=F64)
        r = heat(x, b[s].reshape(-1, 1)).reshape(n, NX, NT)   # residual of each basis field
        A = torch.cat([r[:, pts].t(), b[s][:, :, 0].t()])        # PDE rows, initial rows
        c = torch.cat([torch.zeros(int(pts.sum()), dtype=F64), a.values[s, 0, :, 0]])
        w = torch.linalg.solve(A.t() @ A + ridge * torch.eye(n, dtype=F64), A.t() @ c)
        outs.append(torch.einsum("n,nxt->xt", w, b[s]))
    (torch.stack(outs)[:, None] * weights).sum().backward()
    assert torch.allclose(layer.basis.b.grad, b.grad, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ experts
def test_experts_solve_their_own_blocks_and_are_stitched():
    pts = mask_nodes([(2, 3), (5, 5), (10, 2), (13, 6)])      # two per block, off interfaces
    layer = HardConstraint(FeatureBasis(12), heat, 12, partition=Partition(x=2), points=pts,
                           ridge=1e-12, conditions=[initial_condition(points=3)])
    a = inputs(batch=3)
    u = layer(a)
    codes = u.attrs["expert_retcodes"].split(",")
    assert len(codes) == 3 * 2 and set(codes) == {"Success"}
    w = layer.last_solution.u.reshape(3, 2, 12)
    b = layer.basis(a)
    assert not torch.allclose(w[:, 0], w[:, 1])
    left = torch.einsum("bn,bnxt->bxt", w[:, 0], b)[:, :NX // 2]
    right = torch.einsum("bn,bnxt->bxt", w[:, 1], b)[:, NX // 2:]
    assert torch.allclose(u.values[:, 0], torch.cat([left, right], 1))
    r = residual_on_grid(u)
    assert max(float(r[:, i, j].abs().max()) for i, j in [(2, 3), (5, 5), (10, 2), (13, 6)]) \
        < 1e-8 * float(r.abs().max())


def test_two_by_two_experts_in_space():
    grid = Grid.uniform(x=(0.0, 1.0, 8), y=(0.0, 1.0, 8), t=(0.0, 0.1, 4))

    def heat2(x, u):
        return d(u, x, "t") - 0.1 * (d(u, x, "x", 2) + d(u, x, "y", 2))

    layer = HardConstraint(FeatureBasis(10, grid.shape), heat2, 10,
                           partition={"x": 2, "y": 2}, points=4,
                           conditions=[initial_condition(points=3)])
    u = layer(inputs(batch=2, grid=grid))
    assert u.shape == (2, 1, 8, 8, 4)
    assert u.attrs["expert_retcodes"].split(",") == ["Success"] * 8
    labels = Partition(x=2, y=2).labels(grid)
    assert labels.unique().tolist() == [0, 1, 2, 3] and labels[0, 7, 0] == 1


# ------------------------------------------------------------------ experts' windows
def _solved(layer: HardConstraint, a: Field) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output and the gradient of a loss through it w.r.t. the basis."""
    u = layer(a)
    (u.values ** 2).sum().backward()
    return u.values.detach(), layer.basis.p.grad.clone()


@pytest.mark.parametrize("partition", [Partition(x=4), Partition(x=(0, 3, 9, 16)),
                                       Partition(t=2, x=2)])
def test_windows_give_the_whole_grid_solution(partition):
    kw = dict(partition=partition, points=6, ridge=1e-10, seed=3,
              conditions=[initial_condition(points=3),
                          GridCondition(lambda x, u, a: d(u, x, "x"), "x_max")])
    near = HardConstraint(FeatureBasis(10), heat, 10, **kw)
    whole = HardConstraint(FeatureBasis(10), heat, 10, halo=None, **kw)
    a = inputs(batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to the whole grid
        u_near, g_near = _solved(near, a)
    u_whole, g_whole = _solved(whole, a)
    assert near._rows_cache[GRID].windows.grid.shape[0] < NX
    assert torch.allclose(u_near, u_whole, rtol=1e-8, atol=1e-10)
    assert torch.allclose(g_near, g_whole, rtol=1e-6, atol=1e-9)


def test_each_window_holds_its_block_and_the_halo():
    grid = Grid.uniform(x=(0.0, 1.0, 20), t=(0.0, 1.0, 3))
    part = Partition(x=(0, 4, 12, 20))
    win = ExpertWindows(grid, part, 2)
    labels = part.labels(grid).reshape(-1)
    for k in range(3):
        xs = set((win.index[k] // 3).tolist())
        block = set((torch.nonzero(labels == k).reshape(-1) // 3).tolist())
        reach = {i + s for i in block for s in (-2, -1, 0, 1, 2)} & set(range(20))
        assert reach <= xs and len(xs) == win.grid.shape[0] == 12
        assert torch.allclose(win.nodes[k, ::3, 0], torch.tensor(sorted(xs), dtype=F64) / 19)


def test_spectral_derivatives_on_a_split_periodic_axis_fall_back_to_the_whole_grid():
    grid = Grid.uniform(x=(0.0, 1.0, 16), t=(0.0, 0.5, 6), periodic=("x",))
    kw = dict(partition=Partition(x=4), points=5, ridge=1e-10,
              conditions=[initial_condition(points=3)])
    auto = HardConstraint(FeatureBasis(8, grid.shape), heat, 8, **kw)
    a = inputs(batch=1, grid=grid)
    with pytest.warns(RuntimeWarning, match="derivatives='fd'"):
        u_auto = auto(a)
    assert auto._rows_cache[grid].windows.is_whole_grid
    fd = HardConstraint(FeatureBasis(8, grid.shape), heat, 8, derivatives="fd", **kw)
    fd_whole = HardConstraint(FeatureBasis(8, grid.shape), heat, 8, derivatives="fd",
                              halo=None, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        u_fd = fd(a)
    assert fd._rows_cache[grid].windows.grid.shape == (8, 6)  # a wrapped window of 4 + 2 * 2
    assert torch.allclose(u_fd.values, fd_whole(a).values, rtol=1e-8, atol=1e-10)
    assert u_auto.attrs["retcode"] == "Success"


def test_the_loss_of_experts_takes_each_node_from_its_own_expert():
    cond = initial_condition(points=3)
    layer = HardConstraint(FeatureBasis(10), heat, 10, partition=Partition(x=2), points=6,
                           ridge=1e-8, conditions=[cond])
    a = inputs(batch=2)
    u = layer(a)
    loss = layer.residual_loss(u, u, a)
    stitched = layer.residual_loss(u.with_values(u.values.clone()), u, a)   # not the output
    # by hand: expert k's combination on the whole grid, its residual on block k only
    w = layer.last_solution.u.reshape(2, 2, 10)
    b = layer.basis(a)
    block = Partition(x=2).labels(GRID)
    x = GridCoordinates(GRID, 2, dtype=F64)
    pde, ic = torch.zeros(2, NX, NT, dtype=F64), torch.zeros(2, NX, NT, dtype=F64)
    for k in range(2):
        uk = torch.einsum("bn,bnxt->bxt", w[:, k], b).reshape(-1, 1)
        on = (block == k)
        pde = torch.where(on, heat(x, uk).reshape(2, NX, NT), pde)
        ic = torch.where(on, cond.residual(x, uk, a.values.reshape(-1, 1)).reshape(2, NX, NT), ic)
    expected = pde.square().mean() + ic[..., 0].square().mean()
    assert torch.allclose(loss, expected, rtol=1e-10)
    assert not torch.allclose(loss, stitched, rtol=1e-3)      # the interface jump differs
    loss.backward()
    assert layer.basis.p.grad is not None and torch.isfinite(layer.basis.p.grad).all()


def test_one_expert_loss_is_the_loss_of_the_output():
    layer = HardConstraint(FeatureBasis(10), heat, 10, points=6, ridge=1e-8,
                           conditions=[initial_condition(points=3)])
    a = inputs(batch=2)
    u = layer(a)
    copy = u.with_values(u.values.detach().clone())
    assert torch.allclose(layer.residual_loss(u, u, a), layer.residual_loss(copy, u, a),
                          rtol=1e-10)


# ------------------------------------------------------------------ soft baseline, Trainer
def test_soft_baseline_is_the_same_network_with_a_residual_loss():
    soft = HardConstraint(FeatureBasis(12), heat, 12, hard=False,
                          conditions=[initial_condition()])
    a = inputs()
    u = soft(a)
    assert "retcode" not in u.attrs and soft.last_solution is None
    loss = soft.residual_loss(u, u, a)
    loss.backward()
    assert loss.ndim == 0 and soft.soft_weights.grad is not None
    assert soft.basis.p.grad is not None


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("partition, text", [
    (Partition(x=(0, 5, 10)), "cover"),
    (Partition(x=(0, 4, 4, 16)), "without points"),
    (Partition(x=40), "without points"),
    (Partition(z=2), "axes of the grid"),
])
def test_bad_partitions_name_the_argument(partition, text):
    layer = HardConstraint(FeatureBasis(6), heat, 6, partition=partition)
    with pytest.raises(InvalidArgumentError, match="partition") as err:
        layer(inputs())
    assert text in str(err.value)


def test_an_expert_without_points_is_refused():
    layer = HardConstraint(FeatureBasis(6), heat, 6, partition=Partition(x=2),
                           points=mask_nodes([(2, 2)]))
    with pytest.raises(InvalidArgumentError, match="partition"):
        layer(inputs())


@pytest.mark.parametrize("kwargs, name", [
    ({"n_basis": 0}, "n_basis"), ({"points": 0}, "points"), ({"points": "some"}, "points"),
    ({"ridge": -1.0}, "ridge"), ({"partition": "x"}, "partition"),
    ({"conditions": [lambda x, u, a: u]}, "conditions"), ({"solver": "lm"}, "solver"),
    ({"halo": -1}, "halo"), ({"halo": 1.5}, "halo"), ({"derivatives": "spectral"}, "derivatives"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"basis": FeatureBasis(6), "residual": heat, "n_basis": 6, **kwargs}
    with pytest.raises(InvalidArgumentError, match=name):
        HardConstraint(**args)


def test_residual_and_basis_of_the_wrong_shape():
    with pytest.raises(ShapeError, match="residual"):
        HardConstraint(FeatureBasis(6), lambda x, u: u[::2], 6)(inputs())
    with pytest.raises(ShapeError, match="basis"):
        HardConstraint(FeatureBasis(6), heat, 5)(inputs())
    with pytest.raises(ShapeError, match="points"):
        HardConstraint(FeatureBasis(6), heat, 6,
                       points=torch.ones(3, 3, dtype=torch.bool))(inputs())


def test_an_expert_that_does_not_converge_is_recorded_and_warned():
    def nonlinear(x, u):
        return d(u, x, "t") - 0.1 * d(u * u * u, x, "x", 2) - 5.0

    layer = HardConstraint(FeatureBasis(6), nonlinear, 6, points=4,
                           solver=LevenbergMarquardt(max_iters=1),
                           conditions=[GridCondition(lambda x, u, a: u - 2.0, "t_min", 3)])
    with pytest.warns(RuntimeWarning, match="did not converge"):
        u = layer(inputs())
    assert u.attrs["retcode"] == "MaxIters"
    assert "MaxIters" in u.attrs["expert_retcodes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ok = HardConstraint(FeatureBasis(6), heat, 6, points=4)(inputs())
    assert ok.attrs["retcode"] == "Success"


# ------------------------------------------------------------------ diffusion-sorption, Trainer
def test_hard_constraint_trains_on_diffusion_sorption_with_the_residual_loss():
    from opflow.data.diffusion_sorption import PARAMETERS, retardation
    from opflow.operators import FNO
    from opflow.train import Trainer

    D, nx, nt = PARAMETERS["D"], 32, 16
    grid = Grid.uniform(x=(0.5 / nx, 1 - 0.5 / nx, nx), t=(0.0, 500.0, nt))

    def sorption(x, u):
        return retardation(u.clamp_min(0.0)) * d(u, x, "t") - D * d(u, x, "x", 2)

    conditions = [initial_condition(points=4),
                  GridCondition(lambda x, u, a: u - 1.0, "x_min", points=2)]
    u0 = 0.2 * torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    a = Field(u0.expand(4, 1, nx, nt).clone(), grid)
    final = {}
    for name, kw, epochs in [("soft", {"hard": False}, 4), ("hard", {}, 4)]:
        torch.manual_seed(0)
        basis = FNO(1, 16, modes=(8, 4), width=16, n_layers=2)
        layer = HardConstraint(basis, sorption, 16, points=8, ridge=1e-8, conditions=conditions,
                               solver=LevenbergMarquardt(max_iters=300), **kw)
        trainer = Trainer(layer, loss=layer.residual_loss, epochs=epochs, batch_size=4, lr=3e-3,
                          progress=False, seed=0)
        history = [row["train_loss"] for row in trainer.fit((a, a))]   # the target is unused
        assert history[-1] < history[0], name
        with torch.no_grad():
            u = layer(a)
            final[name] = float(layer.residual_loss(u, u, a))
        if name != "soft":
            assert u.attrs["retcode"] == "Success"
            sol = layer.last_solution
            rows = sol.problem.r(sol.u, sol.problem.p)[:, :-16]        # without the ridge rows
            assert rows.abs().max() < 1e-3     # O(1) at w = 0: the conditions hold up to the ridge
    assert final["hard"] < final["soft"]
