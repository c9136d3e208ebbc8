"""Geometric multigrid (opflow.solvers.pde): convergence orders, agreement with a
scipy sparse direct solve, resolution-independent cycle counts, gradients by
the adjoint solve, and bad inputs."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from opflow import Field, Grid, ReturnCode, remake, solve
from opflow.errors import GridMismatchError, InvalidArgumentError, ShapeError
from opflow.solvers.pde import DarcyProblem, Multigrid, PoissonProblem
from opflow.solvers.pde.multigrid import discrete_residual

PI = math.pi


# --------------------------------------------------------------- references
def _harmonic(p, q):
    return 2 * p * q / (p + q)


def reference_solve(prob, a=None):
    """Independent node-by-node assembly of the documented discretisation and a
    scipy spsolve (bordered with the weighted-mean constraint when singular).

    ``prob`` is unbatched (batch shape ``()`` or ``(1,)``); returns ``u`` of
    shape ``grid.shape`` (numpy, float64).
    """
    grid = prob.grid
    shape, h, kinds = grid.shape, grid.spacing, prob.axis_kinds
    a = (np.ones(shape) if prob.coeff is None
         else prob.coeff.values.detach().double().numpy().reshape(shape))
    f = prob.forcing
    f = (np.full(shape, f) if isinstance(f, float)
         else f.values.detach().double().numpy().reshape(shape))
    inside = (np.ones(shape, bool) if prob.mask is None
              else prob.mask.values.numpy().reshape(shape))
    fixed = ~inside
    ub = np.zeros(shape)
    for d, kind in enumerate(kinds):
        if kind == "D":
            for end in (0, shape[d] - 1):
                idx = [slice(None)] * len(shape)
                idx[d] = end
                fixed[tuple(idx)] = True
                ub[tuple(idx)] = np.where(inside[tuple(idx)], prob.bc_value, 0.0)
    nodes = list(np.ndindex(*shape))
    unknown = {p: i for i, p in enumerate(p for p in nodes if not fixed[p])}
    rows, cols, vals = [], [], []
    rhs = np.zeros(len(unknown))
    for p, i in unknown.items():
        rhs[i] = f[p]
        for d, kind in enumerate(kinds):
            for s in (-1, 1):
                q = list(p)
                q[d] += s
                if kind == "P":
                    q[d] %= shape[d]
                elif not 0 <= q[d] < shape[d]:
                    q[d] = p[d] - s  # ghost reflection: u_{-1} = u_1, same face
                q = tuple(q)
                c = _harmonic(a[p], a[q]) / h[d] ** 2
                rows.append(i)
                cols.append(i)
                vals.append(c)
                if q in unknown:
                    rows.append(i)
                    cols.append(unknown[q])
                    vals.append(-c)
                else:
                    rhs[i] += c * ub[q]
    n = len(unknown)
    mat = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    if prob.singular:
        w = np.ones(shape)
        for d, kind in enumerate(kinds):
            if kind == "N":
                wd = np.ones(shape[d])
                wd[[0, -1]] = 0.5
                w = w * wd.reshape([-1 if e == d else 1 for e in range(len(shape))])
        wv = np.array([w[p] for p in unknown])
        mat = sp.bmat([[mat, np.ones((n, 1))], [wv[None, :], None]], format="csc")
        rhs = np.append(rhs, 0.0)
    x = spla.spsolve(mat.tocsc(), rhs)[:n]
    u = ub.copy()
    for p, i in unknown.items():
        u[p] = x[i]
    return u


def _grid(n, periodic=False, m=None):
    m = n if m is None else m
    if periodic:
        return Grid.uniform(x=(0, 1, n), y=(0, 1, m), periodic=("x", "y"))
    return Grid.uniform(x=(0, 1, n), y=(0, 1, m))


def _manufactured(kind, n):
    """Problem and exact solution at ``n`` nodes per axis (``n - 1`` periodic)."""
    g = _grid(n - 1, periodic=True) if kind == "periodic" else _grid(n)
    x, y = g.mesh(torch.float64)
    if kind == "dirichlet":
        exact = torch.sin(PI * x) * torch.sin(PI * y) + 0.5
        return PoissonProblem(Field((2 * PI**2 * (exact - 0.5))[None], g), bc_value=0.5), exact
    if kind == "neumann":
        exact = torch.cos(PI * x) * torch.cos(2 * PI * y)
        return PoissonProblem(Field((5 * PI**2 * exact)[None], g), bc="neumann"), exact
    if kind == "periodic":
        exact = torch.sin(2 * PI * x) * torch.cos(4 * PI * y)
        return PoissonProblem(Field((20 * PI**2 * exact)[None], g), bc="periodic"), exact
    # Darcy with a smooth variable coefficient
    a = 1 + x**2 + y**2
    exact = torch.sin(PI * x) * torch.sin(PI * y)
    ux = PI * torch.cos(PI * x) * torch.sin(PI * y)
    uy = PI * torch.sin(PI * x) * torch.cos(PI * y)
    f = -(a * (-2 * PI**2 * exact) + 2 * x * ux + 2 * y * uy)
    return DarcyProblem(Field(a[None], g), Field(f[None], g)), exact


def _random_field(n, batch, seed, modes=12, m=None):
    """Smooth random field on [0, 1]^2 (cosine series; fixed modes for all n)."""
    m = n if m is None else m
    gen = torch.Generator().manual_seed(seed)
    k = torch.arange(modes, dtype=torch.float64)
    cx = torch.cos(PI * torch.linspace(0, 1, n, dtype=torch.float64)[:, None] * k)
    cy = torch.cos(PI * torch.linspace(0, 1, m, dtype=torch.float64)[:, None] * k)
    decay = 1.0 / (PI**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0)
    xi = torch.randn(batch, modes, modes, generator=gen, dtype=torch.float64)
    return torch.einsum("ik,bkl,jl->bij", cx, xi * decay, cy)


def _darcy_pwc(n, batch, seed=0, bc="dirichlet", forcing=1.0):
    g = _grid(n)
    a = torch.where(_random_field(n, batch, seed) >= 0, 12.0, 3.0).double()
    return DarcyProblem(Field(a[:, None], g), forcing, bc=bc)


# ---------------------------------------------------------- accuracy / order
@pytest.mark.parametrize("kind", ["dirichlet", "neumann", "periodic", "darcy"])
def test_second_order_convergence(kind):
    """Max-norm error against a manufactured solution: observed order 2 +- 0.2."""
    ns, errors = [17, 33, 65, 129], []
    for n in ns:
        prob, exact = _manufactured(kind, n)
        sol = solve(prob, Multigrid(rtol=1e-11))
        assert sol.retcode == ReturnCode.Success
        u = sol.u.values.reshape(exact.shape)
        if prob.singular:  # the solver returns the solution of zero (trapezoid) mean
            w = prob.grid.quadrature_weights(torch.float64)
            exact = exact - (w * exact).sum() / w.sum()
            assert abs(float((w * u).sum())) < 1e-10
        errors.append(float((u - exact).abs().max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2) < 0.2), (errors, orders)


@pytest.mark.parametrize("bc, periodic", [("dirichlet", ()), ("neumann", ()),
                                         ("periodic", ("x", "y")), ("neumann", ("x",))])
def test_matches_scipy_spsolve(bc, periodic):
    """Same discretisation assembled node by node in scipy: agreement to ~1e-10
    (variable coefficient, non-square anisotropic grid, batch of two; the last
    case is periodic in x with zero-flux walls in y)."""
    nx = 16 if "x" in periodic else 17
    ny = 12 if "y" in periodic else 13
    g = Grid.uniform(x=(0, 2, nx), y=(0, 1, ny), periodic=periodic)
    a = torch.exp(_random_field(nx, 2, 1, m=ny))[:, None] * 2
    f = _random_field(nx, 2, 2, m=ny)[:, None] * 50
    prob = DarcyProblem(Field(a, g), Field(f, g), bc=bc,
                        bc_value=0.3 if bc == "dirichlet" else 0.0)
    sol = solve(prob, Multigrid(rtol=1e-13))
    assert sol.retcode == ReturnCode.Success and sol.u.shape == (2, 1, nx, ny)
    for i in range(2):
        sub = remake(prob, coeff=prob.coeff[i], forcing=prob.forcing[i])
        ref = reference_solve(sub)
        got = sol.u.values[i, 0].numpy()
        assert np.abs(got - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())


def _l_shape(n, batch=1):
    g = _grid(n)
    x, y = g.mesh(torch.float64)
    inside = ~((x > 0.5) & (y > 0.5))
    return g, Field(inside[None].expand(batch, 1, n, n), g)


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_masked_l_shape_converges_and_matches_spsolve(bc):
    n = 33
    g, mask = _l_shape(n)
    a = torch.exp(_random_field(n, 1, 3))[:, None]
    prob = DarcyProblem(Field(a, g), 1.0, bc=bc, mask=mask)
    sol = solve(prob, Multigrid(rtol=1e-12))
    assert sol.retcode == ReturnCode.Success and sol.stats.iterations <= 20
    u = sol.u.values[0, 0]
    assert float(u[~mask.values[0, 0]].abs().max()) == 0.0
    ref = reference_solve(prob)
    assert np.abs(u.numpy() - ref).max() <= 1e-10 * np.abs(ref).max()
    r = discrete_residual(prob, sol.u).values
    assert float(r.norm()) <= 1e-12 * math.sqrt(float(mask.values.sum()))


# ------------------------------------------------------------ cycle counts
def test_v_cycle_count_independent_of_resolution():
    """V(2,2) red-black Gauss-Seidel to 1e-8 at 33^2, 65^2, 129^2, 257^2:
    Poisson (boundary value 0.5) 8, 8, 8, 8 cycles; piecewise-constant Darcy
    (3/12) 8, 9, 9, 9; the same with CG acceleration 6, 6, 6, 6."""
    counts = []
    for n in (33, 65, 129, 257):
        prob, _ = _manufactured("dirichlet", n)
        sol = solve(prob, Multigrid(cycle="V", smoother="rbgs"))
        assert sol.retcode == ReturnCode.Success
        counts.append(sol.stats.iterations)
    assert max(counts) == min(counts) and counts[0] <= 8, counts
    darcy = [solve(_darcy_pwc(n, 1), Multigrid()).stats.iterations for n in (33, 65, 129, 257)]
    assert max(darcy) - min(darcy) <= 1 and max(darcy) <= 10, darcy
    cg = [solve(_darcy_pwc(n, 1), Multigrid(krylov="cg")).stats.iterations
          for n in (33, 65, 129, 257)]
    assert max(cg) == min(cg) and max(cg) <= 7, cg


@pytest.mark.parametrize("alg", [
    Multigrid(cycle="W"), Multigrid(cycle="F"), Multigrid(smoother="jacobi"),
    Multigrid(cycle="W", smoother="jacobi", pre_smooth=3, post_smooth=1),
    Multigrid(cycle="f", smoother="jacobi", jacobi_weight=2 / 3, levels=3),
    Multigrid(krylov="cg"), Multigrid(krylov="cg", cycle="F", smoother="jacobi"),
    Multigrid(cycle_dtype=torch.float32), Multigrid(krylov="cg", cycle_dtype=torch.float32),
])
def test_other_cycles_and_smoothers_converge(alg):
    prob = _darcy_pwc(65, 3)
    sol = solve(prob, alg)
    assert sol.retcode == ReturnCode.Success and sol.stats.iterations <= 20
    assert max(sol.u.attrs["relative_residual"]) <= 1e-8
    if alg.krylov == "cg":  # fewer iterations than plain V-cycles (measured 8 vs 11)
        assert sol.stats.iterations < solve(prob, Multigrid()).stats.iterations
    ref = solve(prob, Multigrid(rtol=1e-12)).u.values
    assert float((sol.u.values - ref).abs().max()) <= 1e-6 * float(ref.abs().max())


def test_cg_acceleration_is_robust_for_high_contrast_and_masks():
    """Contrast 100: plain V-cycles slow down (about 80 cycles at 257^2, 30 at
    65^2), CG preconditioned by the same cycle does not; masked disk, Neumann."""
    n = 65
    g = _grid(n)
    a = torch.where(_random_field(n, 2, 0) >= 0, 100.0, 1.0).double()
    prob = DarcyProblem(Field(a[:, None], g), 1.0)
    plain = solve(prob, Multigrid(max_cycles=100))
    cg = solve(prob, Multigrid(krylov="cg"))
    assert plain.retcode == cg.retcode == ReturnCode.Success
    assert cg.stats.iterations <= 16 < plain.stats.iterations
    x, y = g.mesh(torch.float64)
    disk = Field(((x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.4**2)[None], g)
    prob = DarcyProblem(Field(torch.exp(_random_field(n, 1, 3))[:, None], g), 1.0,
                        bc="neumann", mask=disk)
    sol = solve(prob, Multigrid(krylov="cg", rtol=1e-12))
    assert sol.retcode == ReturnCode.Success and sol.stats.iterations <= 12
    ref = reference_solve(prob)
    assert np.abs(sol.u.values[0, 0].numpy() - ref).max() <= 1e-10 * np.abs(ref).max()


def test_size_85_float32_1d_3d_and_batch_layouts():
    """n - 1 = 21 * 4 and 35 * 4 (coarsest grids 22^2 and 36^2, solved by CG),
    float32, 1-D and 3-D, multi-dim batch."""
    prob = _darcy_pwc(85, 2)
    sol = solve(prob, Multigrid())
    assert sol.retcode == ReturnCode.Success and sol.u.attrs["levels"] == 3
    assert sol.stats.iterations <= 10
    ref = reference_solve(remake(prob, coeff=prob.coeff[0]))
    assert np.abs(sol.u.values[0, 0].numpy() - ref).max() <= 1e-8 * np.abs(ref).max()
    sol141 = solve(_darcy_pwc(141, 1), Multigrid())
    assert sol141.retcode == ReturnCode.Success and sol141.stats.iterations <= 11
    prob32 = DarcyProblem(prob.coeff.to(torch.float32), 1.0)
    sol32 = solve(prob32, Multigrid(rtol=1e-4))
    assert sol32.retcode == ReturnCode.Success and sol32.u.dtype == torch.float32
    err = float((sol32.u.values.double() - sol.u.values).abs().max() / sol.u.values.abs().max())
    assert err < 1e-5
    stalled = solve(prob32, Multigrid(rtol=1e-8))  # below float32 rounding: stops early
    assert stalled.retcode == ReturnCode.Failure and stalled.stats.iterations < 20
    # 1-D: -u'' = 1, u(0) = u(1) = 0 -> u = x (1 - x) / 2 (exact at the nodes)
    g1 = Grid.uniform(x=(0, 1, 65))
    (x,) = g1.mesh(torch.float64)
    sol1 = solve(PoissonProblem(Field(torch.ones(1, 65, dtype=torch.float64), g1)),
                 Multigrid(rtol=1e-12))
    assert float((sol1.u.values[0] - x * (1 - x) / 2).abs().max()) < 1e-12
    # 3-D Poisson with a batch of shape (2, 1)
    g3 = Grid.uniform(x=(0, 1, 17), y=(0, 1, 17), z=(0, 1, 9))
    x, y, z = g3.mesh(torch.float64)
    exact = torch.sin(PI * x) * torch.sin(PI * y) * torch.sin(PI * z)
    f = torch.stack([3 * PI**2 * exact, 6 * PI**2 * exact]).reshape(2, 1, 1, 17, 17, 9)
    sol3 = solve(PoissonProblem(Field(f, g3)), Multigrid())
    assert sol3.retcode == ReturnCode.Success and sol3.u.shape == (2, 1, 1, 17, 17, 9)
    assert float((sol3.u.values[1] - 2 * sol3.u.values[0]).abs().max()) < 1e-7
    assert float((sol3.u.values[0, 0, 0] - exact).abs().max()) < 0.02


def test_solution_metadata_and_retcode():
    prob = _darcy_pwc(33, 3)
    sol = solve(prob, Multigrid())
    assert sol.u.names == ("u",) and sol.u.grid == prob.grid and sol.t.numel() == 0
    assert sol.stats.iterations == sol.u.attrs["cycles"]
    assert len(sol.u.attrs["residual_history"][0]) == sol.stats.iterations + 1
    assert sol.stats.nfe > sol.stats.iterations and sol.stats.wall_time > 0
    assert len(sol.u.attrs["relative_residual"]) == 3
    hist = np.array(sol.u.attrs["residual_history"])  # per sample: one value per cycle
    assert hist.shape == (3, sol.stats.iterations + 1) and np.all(np.diff(hist, axis=1) < 0)
    chunked = solve(prob, Multigrid(chunk_size=2))  # chunks of 2 + 1 samples, same answer
    assert chunked.retcode == ReturnCode.Success and len(chunked.u.attrs["residual_history"]) == 3
    assert float((chunked.u.values - sol.u.values).abs().max()) < 1e-8 * float(
        sol.u.values.abs().max())
    short = solve(prob, Multigrid(max_cycles=2))
    assert short.retcode == ReturnCode.MaxIters and short.stats.iterations == 2
    warm = solve(prob, Multigrid(), u0=sol.u)  # warm start: already converged
    assert warm.stats.iterations == 0 and warm.retcode == ReturnCode.Success


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("bc, masked, krylov", [
    ("dirichlet", False, None), ("neumann", False, None), ("periodic", False, None),
    ("neumann", True, None), ("dirichlet", True, "cg")])
@pytest.mark.filterwarnings("error")
def test_gradcheck_coeff_and_forcing(bc, masked, krylov):
    periodic = bc == "periodic"
    n = 8 if periodic else 9
    g = _grid(n, periodic=periodic)
    gen = torch.Generator().manual_seed(5)
    a = (1 + torch.rand(2, 1, n, n, generator=gen, dtype=torch.float64)).requires_grad_()
    f = torch.randn(2, 1, n, n, generator=gen, dtype=torch.float64).requires_grad_()
    mask = _l_shape(n, 2)[1] if masked else None
    alg = Multigrid(rtol=1e-13, max_cycles=100, levels=2, krylov=krylov,
                    cycle_dtype=torch.float32 if krylov else None)
    weight = torch.randn(2, 1, n, n, generator=gen, dtype=torch.float64)

    def loss(a, f):
        sol = solve(DarcyProblem(Field(a, g), Field(f, g), bc=bc, mask=mask), alg)
        return (sol.u.values * weight).sum(dim=(-1, -2))

    assert torch.autograd.gradcheck(loss, (a, f), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=True)
    if bc == "dirichlet" and not masked:  # full Jacobian on a 5 x 5 grid (9 unknowns)
        a5, f5, g5 = a[:1, :, ::2, ::2].detach(), f[:1, :, ::2, ::2].detach(), _grid(5)

        def loss5(a, f):
            prob = DarcyProblem(Field(a, g5), Field(f, g5))
            return solve(prob, Multigrid(rtol=1e-13, levels=2)).u.values

        assert torch.autograd.gradcheck(loss5, (a5.requires_grad_(), f5.requires_grad_()),
                                        eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradient_is_adjoint_not_backprop_and_broadcasts():
    """Shared coefficient (no batch) with a batched forcing: grad shapes follow the
    inputs; the graph holds one node for the whole solve."""
    g = _grid(17)
    a = torch.full((1, 17, 17), 2.0, dtype=torch.float64, requires_grad=True)
    f = torch.ones(3, 1, 17, 17, dtype=torch.float64, requires_grad=True)
    sol = solve(DarcyProblem(Field(a, g), Field(f, g)), Multigrid())
    sol.u.values.sum().backward()
    assert a.grad.shape == a.shape and f.grad.shape == f.shape
    assert float(f.grad[:, :, 0].abs().max()) == 0.0  # boundary forcing has no effect
    a2 = torch.exp(_random_field(17, 3, 4))[:, None].requires_grad_()
    grads = []
    for alg in (Multigrid(rtol=1e-12), Multigrid(rtol=1e-12, chunk_size=1)):
        u = solve(DarcyProblem(Field(a2, g), Field(f, g)), alg).u.values
        grads.append(torch.autograd.grad((u**2).sum(), (a2, f)))
    for one, chunked in zip(*grads):
        assert torch.allclose(one, chunked, rtol=1e-8, atol=1e-12)
    assert "ImplicitSolve" in type(sol.u.values.grad_fn).__name__ or any(
        "ImplicitSolve" in type(fn).__name__
        for fn, _ in sol.u.values.grad_fn.next_functions if fn is not None)


# --------------------------------------------------------------- bad input
def test_bad_inputs_raise_named_errors():
    g = _grid(33)
    ones = torch.ones(1, 33, 33, dtype=torch.float64)
    good = Field(ones, g)
    with pytest.raises(InvalidArgumentError, match="`coeff`"):
        DarcyProblem(Field(ones * 0, g), 1.0)
    with pytest.raises(InvalidArgumentError, match="`coeff`"):
        DarcyProblem(Field(-ones, g), 1.0)
    with pytest.raises(GridMismatchError, match="`forcing`"):
        DarcyProblem(good, Field(torch.ones(1, 17, 17), _grid(17)))
    with pytest.raises(ShapeError, match="`coeff`"):
        DarcyProblem(Field(torch.ones(2, 33, 33), g), 1.0)
    with pytest.raises(ShapeError, match="`forcing`"):
        DarcyProblem(Field(torch.ones(3, 1, 33, 33), g), Field(torch.ones(2, 1, 33, 33), g))
    with pytest.raises(InvalidArgumentError, match="`coeff`"):
        DarcyProblem(torch.ones(1, 33, 33), 1.0)
    with pytest.raises(InvalidArgumentError, match="`bc`"):
        DarcyProblem(good, 1.0, bc="robin")
    with pytest.raises(InvalidArgumentError, match="`bc`"):
        DarcyProblem(good, 1.0, bc="periodic")  # axes are not periodic
    with pytest.raises(InvalidArgumentError, match="`bc_value`"):
        DarcyProblem(good, 1.0, bc="neumann", bc_value=1.0)
    with pytest.raises(InvalidArgumentError, match="`mask`"):
        DarcyProblem(good, 1.0, mask=Field(torch.ones(1, 33, 33), g))  # not boolean
    border_only = torch.zeros(1, 33, 33, dtype=torch.bool)
    border_only[:, 0] = True
    with pytest.raises(InvalidArgumentError, match="`mask`"):
        DarcyProblem(good, 1.0, mask=Field(border_only, g))  # no interior node left
    with pytest.raises(InvalidArgumentError, match="`mask`"):
        PoissonProblem(good, mask=Field(torch.zeros(1, 33, 33, dtype=torch.bool), g))
    with pytest.raises(InvalidArgumentError, match="`forcing`"):
        PoissonProblem(1.0)
    for kwargs, name in [({"cycle": "X"}, "cycle"), ({"smoother": "sor"}, "smoother"),
                         ({"levels": 1}, "levels"), ({"rtol": 0}, "rtol"),
                         ({"max_cycles": 0}, "max_cycles"), ({"pre_smooth": -1}, "pre_smooth"),
                         ({"jacobi_weight": 1.5}, "jacobi_weight"),
                         ({"chunk_size": 0}, "chunk_size"), ({"krylov": "gmres"}, "krylov"),
                         ({"cycle_dtype": torch.int32}, "cycle_dtype")]:
        with pytest.raises(InvalidArgumentError, match=f"`{name}`"):
            Multigrid(**kwargs)
    g64 = Grid.uniform(x=(0, 1, 64), y=(0, 1, 64))
    with pytest.raises(InvalidArgumentError, match="`grid`.*85") as info:
        solve(PoissonProblem(Field(torch.ones(1, 64, 64), g64)), Multigrid())
    assert "x: n = 64" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="`levels`"):
        solve(PoissonProblem(good), Multigrid(levels=9))
    gbig = Grid.uniform(x=(0, 1, 515), y=(0, 1, 515))
    with pytest.raises(InvalidArgumentError, match="`grid`"):  # coarsest 258^2: too big
        solve(PoissonProblem(Field(torch.ones(1, 515, 515), gbig)), Multigrid())
