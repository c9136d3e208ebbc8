"""Inputs a user gets wrong raise an ``opflow.errors`` exception naming the argument.

Each row of ``CASES`` is one test id ``<category>-<case>``: a call that must
raise the given :class:`~opflow.errors.OpflowError` subclass, with the
argument's name in the message, and leave no file behind. The "absurd size"
rows would allocate tens of GiB or run for hours if the check came after the
work, so a late check shows up as a run out of memory or time, never as a
wall-clock assertion (which would fail by chance on a busy machine).
``CLI_CASES`` do the same through ``opflow.cli.main``: exit status 1, one
``error:`` line naming the flag the user typed (``argument `--out```, not an
internal parameter name), and the scratch folder unchanged (no file added,
none rewritten: an output that resolves to an input is refused).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import GRID1, Stencil, pair_dataset, pairs

import opflow
from opflow import Field, Grid, calculus, norms, solve
from opflow.data import OperatorDataset, generate
from opflow.errors import (
    FileFormatError,
    GridMismatchError,
    InvalidArgumentError,
    OpflowError,
    ShapeError,
    UnknownVariableError,
)
from opflow.grid import Axis
from opflow.io import open_dataset, save
from opflow.train import Trainer, TrainingDivergedError, load_checkpoint, read_checkpoint

NAN = float("nan")
G2 = Grid.uniform(x=(0.0, 1.0, 17), y=(0.0, 1.0, 17))
GP2 = Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 1.0, 16), periodic=("x", "y"))


def _field2(value: float = 1.0, grid: Grid = G2) -> Field:
    return Field(torch.full((1, *grid.shape), value), grid)


def _ode(u0=(1.0,), tspan=(0.0, 1.0)):
    return opflow.ODEProblem(lambda t, u: -u, torch.tensor(u0), tspan)


def _sde(u0=((1.0,),), tspan=(0.0, 1.0)):
    return opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * torch.ones_like(u),
                             torch.tensor(u0), tspan)


def _burgers(u0=None, nu=0.1):
    u0 = Field(torch.sin(2 * math.pi * GRID1.mesh()[0])[None], GRID1) if u0 is None else u0
    return opflow.BurgersProblem(u0, nu)


def _fno(*args, **kw):
    return opflow.FNO(*args, **kw)


def _trainer(**kw):
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    return Trainer(kw.pop("model", Stencil()), **kw)


def _fit(train, **kw):
    return _trainer(epochs=1, batch_size=4, **kw).fit(train)


# (category, id, call, exception, argument named in the message)
CASES = [
    # ------------------------------------------------------------- Grid
    ("grid", "no-axes", lambda: Grid.uniform(), InvalidArgumentError, "axes"),
    ("grid", "one-point", lambda: Grid.uniform(x=(0, 1, 1)), InvalidArgumentError, "x"),
    ("grid", "reversed-bounds", lambda: Grid.uniform(x=(1, 0, 8)), InvalidArgumentError, "x"),
    ("grid", "nan-bound", lambda: Grid.uniform(x=(NAN, 1, 8)), InvalidArgumentError, "x"),
    ("grid", "inf-bound", lambda: Grid.uniform(x=(0, math.inf, 8)), InvalidArgumentError, "x"),
    ("grid", "float-size", lambda: Grid.uniform(x=(0, 1, 8.5)), InvalidArgumentError, "x"),
    ("grid", "not-a-tuple", lambda: Grid.uniform(x=8), InvalidArgumentError, "x"),
    ("grid", "unknown-periodic", lambda: Grid.uniform(x=(0, 1, 8), periodic=("y",)),
     UnknownVariableError, "periodic"),
    ("grid", "unsorted-coords", lambda: Grid.from_coords({"x": np.array([0.0, 2.0, 1.0])}),
     InvalidArgumentError, "x"),
    ("grid", "nan-coords", lambda: Grid.from_coords({"x": np.array([0.0, NAN, 1.0])}),
     InvalidArgumentError, "x"),
    ("grid", "2d-coords", lambda: Grid.from_coords({"x": np.zeros((3, 3))}),
     InvalidArgumentError, "x"),
    ("grid", "none-size", lambda: Grid.uniform(x=(0, 1, None)), InvalidArgumentError, "x"),
    ("grid", "nan-size", lambda: Grid.uniform(x=(0, 1, NAN)), InvalidArgumentError, "x"),
    ("grid", "inf-size", lambda: Grid.uniform(x=(0, 1, math.inf)), InvalidArgumentError, "x"),
    ("grid", "string-size", lambda: Grid.uniform(x=(0, 1, "8")), InvalidArgumentError, "x"),
    ("grid", "string-bound", lambda: Grid.uniform(x=("0", 1, 8)), InvalidArgumentError, "x"),
    ("grid", "absurd-size", lambda: Grid.uniform(x=(0, 1, 10**12)), InvalidArgumentError, "x"),
    ("grid", "none-coords", lambda: Grid.from_coords({"x": None}), InvalidArgumentError, "x"),
    ("grid", "string-coords", lambda: Grid.from_coords({"x": ["0", "1"]}),
     InvalidArgumentError, "x"),
    ("grid", "inf-coords", lambda: Grid.from_coords({"x": [0.0, 1.0, math.inf]}),
     InvalidArgumentError, "x"),
    ("grid", "2d-increasing-coords",
     lambda: Grid.from_coords({"x": np.arange(6.0).reshape(2, 3)}), InvalidArgumentError, "x"),
    ("grid", "coords-not-mapping", lambda: Grid.from_coords([0.0, 1.0]), InvalidArgumentError,
     "coords"),
    ("grid", "coords-reversed-bounds",
     lambda: Grid.from_coords({"x": [0.0, 1.0, 2.0]}, bounds={"x": (2.0, 0.0)}),
     InvalidArgumentError, "bounds"),
    ("grid", "bounds-exclude-coords",
     lambda: Grid.from_coords({"x": [0.0, 1.0, 2.0]}, bounds={"x": (0.5, 1.5)}),
     InvalidArgumentError, "bounds"),
    ("grid", "periodic-bounds-at-last-point",
     lambda: Grid.from_coords({"x": [0.0, 1.0, 2.0]}, periodic="x", bounds={"x": (0.0, 2.0)}),
     InvalidArgumentError, "bounds"),
    ("grid", "nan-bounds",
     lambda: Grid.from_coords({"x": [0.0, 1.0, 2.0]}, bounds={"x": (NAN, 2.0)}),
     InvalidArgumentError, "bounds"),
    ("grid", "unknown-bounds-axis",
     lambda: Grid.from_coords({"x": [0.0, 1.0]}, bounds={"y": (0.0, 1.0)}),
     UnknownVariableError, "bounds"),
    ("grid", "int-units", lambda: Grid.uniform(x=(0, 1, 8), units={"x": 3}),
     InvalidArgumentError, "units"),
    ("grid", "units-not-mapping", lambda: Grid.uniform(x=(0, 1, 8), units="m"),
     InvalidArgumentError, "units"),
    ("grid", "axis-periodic-string", lambda: Axis("x", [0.0, 1.0], periodic="no"),
     InvalidArgumentError, "periodic"),
    ("grid", "axes-not-axis", lambda: Grid([1, 2]), InvalidArgumentError, "axes"),
    ("grid", "unknown-axis", lambda: GRID1.index("y"), UnknownVariableError, "axis"),
    ("grid", "axis-out-of-range", lambda: GRID1.index(3), InvalidArgumentError, "axis"),
    ("grid", "coarsen-zero", lambda: GRID1.coarsen(0), InvalidArgumentError, "factor"),
    ("grid", "coarsen-indivisible", lambda: G2.coarsen(3), InvalidArgumentError, "factor"),
    ("grid", "refine-negative", lambda: GRID1.refine(-2), InvalidArgumentError, "factor"),
    ("grid", "with-shape-unknown-axis", lambda: GRID1.with_shape(q=8), UnknownVariableError,
     "sizes"),
    # ------------------------------------------------------------ Field
    ("field", "grid-not-a-grid", lambda: Field(torch.zeros(1, 16), "x"), InvalidArgumentError,
     "grid"),
    ("field", "wrong-trailing-shape", lambda: Field(torch.zeros(1, 15), GRID1), ShapeError,
     "values"),
    ("field", "no-channel-dim", lambda: Field(torch.zeros(16), GRID1), ShapeError, "values"),
    ("field", "too-many-names", lambda: Field(torch.zeros(1, 16), GRID1, names=["a", "b"]),
     InvalidArgumentError, "names"),
    ("field", "duplicate-names", lambda: Field(torch.zeros(2, 16), GRID1, names=["a", "a"]),
     InvalidArgumentError, "names"),
    ("field", "wrong-units-count", lambda: Field(torch.zeros(1, 16), GRID1, units=["m", "s"]),
     InvalidArgumentError, "units"),
    ("field", "names-not-strings", lambda: Field(torch.zeros(1, 16), GRID1, names=3),
     InvalidArgumentError, "names"),
    ("field", "names-int-items", lambda: Field(torch.zeros(1, 16), GRID1, names=[1]),
     InvalidArgumentError, "names"),
    ("field", "empty-name", lambda: Field(torch.zeros(1, 16), GRID1, names=""),
     InvalidArgumentError, "names"),
    ("field", "units-not-strings", lambda: Field(torch.zeros(1, 16), GRID1, units=[3]),
     InvalidArgumentError, "units"),
    ("field", "attrs-not-mapping", lambda: Field(torch.zeros(1, 16), GRID1, attrs=["a", "b"]),
     InvalidArgumentError, "attrs"),
    ("field", "attrs-int-keys", lambda: Field(torch.zeros(1, 16), GRID1, attrs={1: "a"}),
     InvalidArgumentError, "attrs"),
    ("field", "add-string", lambda: _field2() + "1", InvalidArgumentError, "other"),
    ("field", "radd-string", lambda: "1" + _field2(), InvalidArgumentError, "other"),
    ("field", "add-numpy", lambda: _field2() + np.ones((17, 17)), InvalidArgumentError,
     "other"),
    ("field", "numpy-add", lambda: np.ones((17, 17)) + _field2(), InvalidArgumentError,
     "other"),
    ("field", "mul-none", lambda: _field2() * None, InvalidArgumentError, "other"),
    ("field", "batch-index-out-of-range", lambda: pairs(4)[0][4], InvalidArgumentError, "key"),
    ("field", "batch-indices-out-of-range", lambda: pairs(4)[0][[0, -5]], InvalidArgumentError,
     "key"),
    ("field", "index-into-channels", lambda: pairs(4)[0][0, 0], InvalidArgumentError, "key"),
    ("field", "float-index", lambda: pairs(4)[0][1.0], InvalidArgumentError, "key"),
    ("field", "string-values", lambda: Field(np.array([["a"] * 16]), GRID1),
     InvalidArgumentError, "values"),
    ("field", "unknown-channel", lambda: Field(torch.zeros(1, 16), GRID1, "u")["v"],
     UnknownVariableError, "key"),
    ("field", "add-other-grid", lambda: _field2() + _field2(grid=G2.with_shape(x=9)),
     GridMismatchError, "other"),
    ("field", "add-wrong-shape-tensor", lambda: _field2() + torch.ones(5, 5),
     ShapeError, "other"),
    ("field", "partial-unknown-axis", lambda: _field2().partial("z"), UnknownVariableError,
     "axis"),
    ("field", "partial-order-zero", lambda: _field2().partial("x", order=0),
     InvalidArgumentError, "order"),
    ("field", "grad-two-channels", lambda: Field(torch.zeros(2, 17, 17), G2).grad(),
     InvalidArgumentError, "field"),
    ("field", "norm-unknown-kind", lambda: _field2().norm("l7"), InvalidArgumentError, "kind"),
    ("field", "from-xarray-unknown-dim",
     lambda: Field.from_xarray(pair_dataset()["a"], grid_dims=["y"]), UnknownVariableError,
     "grid_dims"),
    # ------------------------------------------------- calculus and norms
    ("calculus", "partial-int-field",
     lambda: Field(torch.ones(1, 16, dtype=torch.int64), GRID1).partial("x"),
     InvalidArgumentError, "torch.int64"),
    ("calculus", "laplacian-bool-field",
     lambda: Field(torch.ones(1, 17, 17, dtype=torch.bool), G2).laplacian(),
     InvalidArgumentError, "torch.bool"),
    ("calculus", "partial-numpy", lambda: calculus.partial(np.ones((1, 16)), GRID1, "x"),
     InvalidArgumentError, "u"),
    ("calculus", "partial-field", lambda: calculus.partial(_field2(), G2, "x"),
     InvalidArgumentError, "u"),
    ("calculus", "partial-grid-string", lambda: calculus.partial(torch.ones(1, 16), "x", "x"),
     InvalidArgumentError, "grid"),
    ("calculus", "gradient-numpy", lambda: calculus.gradient(np.ones((17, 17)), G2),
     InvalidArgumentError, "u"),
    ("calculus", "divergence-int",
     lambda: calculus.divergence(torch.ones(2, 17, 17, dtype=torch.int32), G2),
     InvalidArgumentError, "v"),
    ("calculus", "integrate-int",
     lambda: norms.integrate(torch.ones(1, 16, dtype=torch.int64), GRID1),
     InvalidArgumentError, "values"),
    ("calculus", "norm-tensor", lambda: norms.l2(torch.ones(1, 16)), InvalidArgumentError,
     "field"),
    ("calculus", "norm-numpy", lambda: norms.h1(np.ones((1, 16))), InvalidArgumentError,
     "field"),
    ("calculus", "norm-int-field",
     lambda: Field(torch.ones(1, 16, dtype=torch.int64), GRID1).norm(),
     InvalidArgumentError, "torch.int64"),
    ("calculus", "rel-l2-tensor-pred", lambda: norms.rel_l2(torch.ones(1, 17, 17), _field2()),
     InvalidArgumentError, "pred"),
    ("calculus", "rel-l2-numpy-true", lambda: norms.rel_l2(_field2(), np.ones((1, 17, 17))),
     InvalidArgumentError, "true"),
    # --------------------------------------------------------------- IO
    ("io", "open-directory", lambda: open_dataset("."), FileFormatError, "path"),
    ("io", "open-text", lambda: open_dataset(__file__), FileFormatError, "path"),
    ("io", "open-engine", lambda: open_dataset(__file__, engine="scipy"),
     InvalidArgumentError, "engine"),
    ("io", "save-suffix", lambda: save(pair_dataset(), "out.csv"), InvalidArgumentError, "path"),
    ("io", "save-not-data", lambda: save([1, 2], "out.nc"), InvalidArgumentError, "obj"),
    ("io", "save-compression", lambda: save(pair_dataset(), "out.nc", compression=11),
     InvalidArgumentError, "compression"),
    ("io", "save-chunk", lambda: save(pair_dataset(), "out.nc", chunk=0),
     InvalidArgumentError, "chunk"),
    ("io", "save-sample-dim", lambda: save(pair_dataset(), "out.nc", sample_dim="member"),
     UnknownVariableError, "sample_dim"),
    ("io", "save-complex-field",
     lambda: save(Field(torch.ones(2, 1, 16, dtype=torch.complex64), GRID1, "psi"), "out.nc"),
     InvalidArgumentError, "psi"),
    ("io", "save-complex-h5",
     lambda: save(Field(torch.ones(2, 1, 16, dtype=torch.complex128), GRID1, "psi"), "out.h5"),
     InvalidArgumentError, "psi"),
    ("io", "save-slash-channel", lambda: save(Field(torch.ones(2, 1, 16), GRID1, "u/v"),
                                              "out.nc"), InvalidArgumentError, "u/v"),
    ("io", "save-slash-dim",
     lambda: save(pair_dataset().rename({"sample": "run/sample"}), "out.nc"),
     InvalidArgumentError, "run/sample"),
    ("io", "save-slash-attribute",
     lambda: save(pair_dataset().assign_attrs({"a/b": 1}), "out.nc"), InvalidArgumentError,
     "a/b"),
    # ------------------------------------------------------------- data
    ("data", "generate-unknown-problem", lambda: generate("heat", 2, progress=False),
     InvalidArgumentError, "problem"),
    ("data", "generate-negative-n", lambda: generate("grf", -1, progress=False),
     InvalidArgumentError, "n"),
    ("data", "generate-zero-n", lambda: generate("grf", 0, progress=False),
     InvalidArgumentError, "n"),
    ("data", "generate-chunk", lambda: generate("grf", 2, chunk=0, progress=False),
     InvalidArgumentError, "chunk"),
    ("data", "generate-resolution", lambda: generate("grf", 2, resolution=1, progress=False),
     InvalidArgumentError, "resolution"),
    ("data", "generate-absurd",
     lambda: generate("grf", 10**9, resolution=10**5, progress=False),
     InvalidArgumentError, "n"),
    ("data", "generate-unknown-option",
     lambda: generate("grf", 2, resolution=8, progress=False, colour=3),
     UnknownVariableError, "colour"),
    ("data", "dataset-unknown-input", lambda: OperatorDataset(pair_dataset(), "b", "u"),
     UnknownVariableError, "inputs"),
    ("data", "dataset-unknown-output", lambda: OperatorDataset(pair_dataset(), "a", "v"),
     UnknownVariableError, "outputs"),
    ("data", "dataset-sample-dim",
     lambda: OperatorDataset(pair_dataset(), "a", "u", sample_dim="member"),
     UnknownVariableError, "sample_dim"),
    ("data", "dataset-empty", lambda: OperatorDataset(pair_dataset().isel(sample=[]), "a", "u"),
     InvalidArgumentError, "source"),
    ("data", "dataset-int-dtype",
     lambda: OperatorDataset(pair_dataset(), "a", "u", dtype=torch.int64),
     InvalidArgumentError, "dtype"),
    ("data", "dataset-not-data", lambda: OperatorDataset(42, "a", "u"), InvalidArgumentError,
     "source"),
    ("data", "dataset-missing-file", lambda: OperatorDataset("nope.nc", "a", "u"),
     FileNotFoundError, "nope.nc"),
    # ------------------------------------------------------------ solve
    ("solve", "ode-nan-u0", lambda: _ode(u0=(NAN,)), InvalidArgumentError, "u0"),
    ("solve", "ode-inf-u0", lambda: _ode(u0=(math.inf,)), InvalidArgumentError, "u0"),
    ("solve", "ode-reversed-save-times", lambda: solve(_ode(tspan=(1.0, 0.0)), opflow.Tsit5(),
                                                       saveat=[0.0, 0.5]),
     InvalidArgumentError, "saveat"),
    ("solve", "ode-nan-tspan", lambda: _ode(tspan=(0.0, NAN)), InvalidArgumentError, "tspan"),
    ("solve", "ode-not-callable", lambda: opflow.ODEProblem(3, torch.ones(1), (0, 1)),
     InvalidArgumentError, "f"),
    ("solve", "ode-alg-string", lambda: solve(_ode(), "tsit5"), InvalidArgumentError, "alg"),
    ("solve", "ode-rk4-dt-zero", lambda: opflow.RK4(dt=0.0), InvalidArgumentError, "dt"),
    ("solve", "ode-rk4-dt-nan", lambda: opflow.RK4(dt=NAN), InvalidArgumentError, "dt"),
    ("solve", "ode-tsit5-rtol", lambda: opflow.Tsit5(rtol=-1.0), InvalidArgumentError, "rtol"),
    ("solve", "ode-tsit5-max-steps", lambda: opflow.Tsit5(max_steps=0), InvalidArgumentError,
     "max_steps"),
    ("solve", "ode-tsit5-rtol-inf", lambda: opflow.Tsit5(rtol=math.inf), InvalidArgumentError,
     "rtol"),
    ("solve", "ode-dopri5-atol-inf", lambda: opflow.Dopri5(atol=math.inf),
     InvalidArgumentError, "atol"),
    ("solve", "ode-tsit5-atol-negative", lambda: opflow.Tsit5(atol=-1e-9),
     InvalidArgumentError, "atol"),
    ("solve", "ode-tsit5-dtmin-negative", lambda: opflow.Tsit5(dtmin=-1.0),
     InvalidArgumentError, "dtmin"),
    ("solve", "ode-tsit5-dtmin-inf", lambda: opflow.Tsit5(dtmin=math.inf),
     InvalidArgumentError, "dtmin"),
    ("solve", "ode-dopri5-dtmin-above-dtmax", lambda: opflow.Dopri5(dtmin=0.5, dtmax=0.1),
     InvalidArgumentError, "dtmin"),
    ("solve", "ode-tsit5-safety", lambda: opflow.Tsit5(safety=2.0), InvalidArgumentError,
     "safety"),
    ("solve", "ode-adjoint-rtol-inf", lambda: opflow.BacksolveAdjoint(rtol=math.inf),
     InvalidArgumentError, "rtol"),
    ("solve", "ode-f-float32-for-float64",
     lambda: solve(opflow.ODEProblem(lambda t, u: (-u).float(), torch.ones(2).double(), (0, 1)),
                   opflow.Tsit5()), InvalidArgumentError, "f"),
    ("solve", "ode-f-int-batched",
     lambda: solve(opflow.ODEProblem(lambda t, u: torch.zeros_like(u, dtype=torch.int64),
                                     torch.ones(2, 1), (0, 1), batched=True), opflow.RK4(dt=0.1)),
     InvalidArgumentError, "f"),
    ("solve", "ode-p-for-two-argument-f",
     lambda: opflow.ODEProblem(lambda t, u: -u, torch.ones(1), (0, 1), p=2.0),
     InvalidArgumentError, "p"),
    ("solve", "ode-three-argument-f-without-p",
     lambda: opflow.ODEProblem(lambda t, u, p: -p * u, torch.ones(1), (0, 1)),
     InvalidArgumentError, "f"),
    ("solve", "ode-empty-u0", lambda: _ode(u0=()), InvalidArgumentError, "u0"),
    ("solve", "ode-absurd-saveat",
     lambda: solve(_ode(u0=[1.0] * 1000), opflow.Tsit5(), saveat=1e-12),
     InvalidArgumentError, "saveat"),
    ("solve", "ode-absurd-steps", lambda: solve(_ode(tspan=(0.0, 1e12)), opflow.RK4(dt=1e-3)),
     InvalidArgumentError, "dt"),
    ("solve", "ode-saveat-outside", lambda: solve(_ode(), opflow.Tsit5(), saveat=[0.5, 2.0]),
     InvalidArgumentError, "saveat"),
    ("solve", "sde-nan-u0", lambda: _sde(u0=((NAN,),)), InvalidArgumentError, "u0"),
    ("solve", "sde-nan-tspan", lambda: _sde(tspan=(0.0, NAN)), InvalidArgumentError,
     "tspan"),
    ("solve", "sde-empty-u0", lambda: _sde(u0=((),)), InvalidArgumentError, "u0"),
    ("solve", "sde-p-for-two-argument-drift",
     lambda: opflow.SDEProblem(lambda t, u: -u, lambda t, u, p: p * u, torch.ones(2, 1), (0, 1),
                               p=0.1), InvalidArgumentError, "p"),
    ("solve", "sde-drift-float64-for-float32",
     lambda: solve(opflow.SDEProblem(lambda t, u: -u.double(), lambda t, u: 0.1 * u,
                                     torch.ones(2, 1), (0, 1)), opflow.EulerMaruyama(dt=0.1)),
     InvalidArgumentError, "drift"),
    ("solve", "sde-absurd-saveat",
     lambda: solve(_sde(), opflow.EulerMaruyama(dt=0.1), saveat=1e-15),
     InvalidArgumentError, "saveat"),
    ("solve", "sde-dt-negative", lambda: opflow.EulerMaruyama(dt=-0.1), InvalidArgumentError,
     "dt"),
    ("solve", "poisson-not-field", lambda: opflow.PoissonProblem(1.0), InvalidArgumentError,
     "forcing"),
    ("solve", "poisson-nan-forcing", lambda: opflow.PoissonProblem(_field2(NAN)),
     InvalidArgumentError, "forcing"),
    ("solve", "darcy-zero-coeff", lambda: opflow.DarcyProblem(_field2(0.0)),
     InvalidArgumentError, "coeff"),
    ("solve", "darcy-inf-coeff", lambda: opflow.DarcyProblem(_field2(math.inf)),
     InvalidArgumentError, "coeff"),
    ("solve", "darcy-bc", lambda: opflow.DarcyProblem(_field2(), bc="robin"),
     InvalidArgumentError, "bc"),
    ("solve", "darcy-forcing-grid",
     lambda: opflow.DarcyProblem(_field2(), _field2(grid=G2.with_shape(x=9, y=9))),
     GridMismatchError, "forcing"),
    ("solve", "multigrid-cycle", lambda: opflow.Multigrid(cycle="Q"), InvalidArgumentError,
     "cycle"),
    ("solve", "multigrid-rtol", lambda: opflow.Multigrid(rtol=0.0), InvalidArgumentError,
     "rtol"),
    ("solve", "multigrid-max-cycles", lambda: opflow.Multigrid(max_cycles=0),
     InvalidArgumentError, "max_cycles"),
    ("solve", "burgers-negative-nu", lambda: _burgers(nu=-0.1), InvalidArgumentError, "nu"),
    ("solve", "burgers-nan-u0",
     lambda: _burgers(u0=Field(torch.full((1, 16), NAN), GRID1)), InvalidArgumentError, "u0"),
    ("solve", "burgers-2d-u0", lambda: _burgers(u0=_field2(grid=GP2)), InvalidArgumentError,
     "u0"),
    ("solve", "burgers-nonperiodic",
     lambda: _burgers(u0=Field(torch.ones(1, 16), Grid.uniform(x=(0, 1, 16)))),
     InvalidArgumentError, "u0"),
    ("solve", "ns-1d-w0", lambda: opflow.NavierStokes2DProblem(_burgers().u0, 1e-3),
     InvalidArgumentError, "w0"),
    ("solve", "spectral-dt", lambda: opflow.PseudoSpectral(dt=0.0), InvalidArgumentError, "dt"),
    ("solve", "spectral-scheme", lambda: opflow.PseudoSpectral(dt=0.1, scheme="rk9"),
     InvalidArgumentError, "scheme"),
    ("solve", "spectral-absurd-steps",
     lambda: solve(opflow.BurgersProblem(_burgers().u0, 0.1, tspan=(0.0, 1e9)),
                   opflow.PseudoSpectral(dt=1e-4)),
     InvalidArgumentError, "dt"),
    # -------------------------------------------------------- operators
    ("operators", "fno-modes-zero", lambda: _fno(1, 1, (4, 0), width=4), InvalidArgumentError,
     "modes"),
    ("operators", "fno-width-zero", lambda: _fno(1, 1, (4,), width=0), InvalidArgumentError,
     "width"),
    ("operators", "fno-in-channels", lambda: _fno(0, 1, (4,), width=4), InvalidArgumentError,
     "in_channels"),
    ("operators", "fno-activation", lambda: _fno(1, 1, (4,), width=4, activation="swoosh"),
     InvalidArgumentError, "activation"),
    ("operators", "fno-absurd-width", lambda: _fno(1, 1, (64, 64), width=10**6),
     InvalidArgumentError, "width"),
    ("operators", "fno-forward-channels",
     lambda: _fno(2, 1, (4, 4), width=4)(torch.randn(3, 1, 16, 16)), ShapeError, "2 channels"),
    ("operators", "fno-forward-ndim",
     lambda: _fno(2, 1, (4, 4), width=4)(Field(torch.randn(3, 2, 16), GRID1)),
     GridMismatchError, "2-D grid"),
    ("operators", "fno-forward-dtype",
     lambda: _fno(1, 1, (4,), width=4)(torch.ones(2, 1, 16, dtype=torch.int64)),
     InvalidArgumentError, "dtype"),
    ("operators", "fno-float64-input",
     lambda: _fno(1, 1, (4,), width=4)(torch.ones(2, 1, 16, dtype=torch.float64)),
     InvalidArgumentError, "torch.float64"),
    ("operators", "fno-float16-field",
     lambda: _fno(1, 1, (4,), width=4)(Field(torch.ones(2, 1, 16, dtype=torch.float16), GRID1)),
     InvalidArgumentError, "torch.float16"),
    ("operators", "fno-empty-batch", lambda: _fno(1, 1, (4,), width=4)(pairs(4)[0][:0]),
     InvalidArgumentError, "x"),
    ("operators", "deeponet-float64-input",
     lambda: opflow.DeepONet([16, 8], [1, 8])(pairs(4)[0].to(torch.float64)),
     InvalidArgumentError, "torch.float64"),
    ("operators", "deeponet-float64-queries",
     lambda: opflow.DeepONet([16, 8], [1, 8])(torch.ones(2, 16), torch.ones(5, 1).double()),
     InvalidArgumentError, "y"),
    ("operators", "deeponet-empty-batch",
     lambda: opflow.DeepONet([16, 8], [1, 8])(torch.ones(0, 16), torch.ones(5, 1)),
     InvalidArgumentError, "u"),
    ("operators", "mgno-float64-input",
     lambda: opflow.MgNO(1, 1, width=4, levels=2)(Field(torch.ones(2, 1, 17, 17).double(), G2)),
     InvalidArgumentError, "torch.float64"),
    ("operators", "mgno-empty-batch",
     lambda: opflow.MgNO(1, 1, width=4, levels=2)(Field(torch.ones(0, 1, 17, 17), G2)),
     InvalidArgumentError, "x"),
    ("operators", "deeponet-layers", lambda: opflow.DeepONet([16], [1, 8]),
     InvalidArgumentError, "branch_layers"),
    ("operators", "deeponet-width-mismatch", lambda: opflow.DeepONet([16, 8], [1, 9]),
     InvalidArgumentError, "trunk_layers"),
    ("operators", "mgno-levels", lambda: opflow.MgNO(1, 1, levels=0), InvalidArgumentError,
     "levels"),
    ("operators", "mgno-padding", lambda: opflow.MgNO(1, 1, padding="mirror"),
     InvalidArgumentError, "padding"),
    ("operators", "pod-deeponet-layers", lambda: opflow.POD_DeepONet([]),
     InvalidArgumentError, "branch_layers"),
    ("operators", "build-unknown", lambda: opflow.build_operator({"name": "Transformer"}),
     UnknownVariableError, "Transformer"),
    # ---------------------------------------------------------- Trainer
    ("trainer", "model-not-module", lambda: Trainer("fno"), InvalidArgumentError, "model"),
    ("trainer", "epochs-zero", lambda: _trainer(epochs=0), InvalidArgumentError, "epochs"),
    ("trainer", "batch-size-zero", lambda: _trainer(batch_size=0), InvalidArgumentError,
     "batch_size"),
    ("trainer", "lr-negative", lambda: _trainer(lr=-1e-3), InvalidArgumentError, "lr"),
    ("trainer", "lr-nan", lambda: _trainer(lr=NAN), InvalidArgumentError, "lr"),
    ("trainer", "loss-unknown", lambda: _trainer(loss="mse2"), OpflowError, "loss"),
    ("trainer", "grad-clip-negative", lambda: _trainer(grad_clip=-1.0), InvalidArgumentError,
     "grad_clip"),
    ("trainer", "device-unknown", lambda: _trainer(device="tpu"), InvalidArgumentError,
     "device"),
    ("trainer", "fit-not-data", lambda: _fit(42), InvalidArgumentError, "train"),
    ("trainer", "fit-length-mismatch", lambda: _fit((pairs(8)[0], pairs(6)[1])),
     ShapeError, "train"),
    ("trainer", "fit-empty", lambda: _fit((pairs(8)[0][:0], pairs(8)[1][:0])),
     InvalidArgumentError, "train"),
    ("trainer", "fit-nan-inputs",
     lambda: _fit((pairs(8)[0].apply(lambda v: v * NAN), pairs(8)[1])),
     TrainingDivergedError, "check the data for NaN/Inf"),
    ("trainer", "fit-inf-targets",
     lambda: _fit((pairs(8)[0], pairs(8)[1].apply(lambda v: v * math.inf))),
     TrainingDivergedError, "check the data for NaN/Inf"),
    ("trainer", "fit-grid-mismatch",
     lambda: _fit((pairs(8)[0], Field(torch.zeros(8, 1, 32), Grid.uniform(x=(0, 1, 32))))),
     ShapeError, "model"),
    ("trainer", "fit-float64-data",
     lambda: _fit(tuple(f.to(torch.float64) for f in pairs(8)), model=_fno(1, 1, (4,), width=4)),
     InvalidArgumentError, "torch.float64"),
    ("trainer", "fit-float64-data-plain-module",
     lambda: _fit(tuple(f.to(torch.float64) for f in pairs(8))), InvalidArgumentError,
     "inputs of the model's dtype torch.float32"),
    ("trainer", "fit-float64-targets-plain-module",
     lambda: _fit((pairs(8)[0], pairs(8)[1].to(torch.float64))), InvalidArgumentError,
     "targets of dtype torch.float64"),
    ("trainer", "predict-zero-samples", lambda: _trainer().predict(pairs(4)[0][:0]),
     InvalidArgumentError, "data"),
    ("trainer", "predict-wrong-channels",
     lambda: _trainer().predict(Field(torch.zeros(2, 3, 16), GRID1)), ShapeError, "data"),
    # ------------------------------------------------------ checkpoints
    ("checkpoint", "missing", lambda: read_checkpoint("no-such.pt"), FileNotFoundError,
     "no-such.pt"),
    ("checkpoint", "directory", lambda: read_checkpoint("."), FileFormatError, "path"),
    ("checkpoint", "netcdf-instead", lambda: read_checkpoint(__file__), FileFormatError, "path"),
    ("checkpoint", "load-model-not-module",
     lambda: load_checkpoint(__file__, model="stencil"), OpflowError, "path"),
]

def _ids(cases):
    return [f"{c[0]}-{c[1]}" for c in cases]


@pytest.mark.parametrize("category, name, call, error, argument", CASES, ids=_ids(CASES))
def test_bad_input_raises_a_named_opflow_error_fast(category, name, call, error, argument,
                                                   tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "out.nc" and friends land in a scratch folder
    with pytest.raises(error) as info:
        call()
    if error is not FileNotFoundError:
        assert isinstance(info.value, OpflowError)
    assert argument in str(info.value), str(info.value)
    assert not list(tmp_path.iterdir()), "a failed call left files behind"


# --------------------------------------------------------------------- CLI
CLI_CASES = [
    ("generate-n", ["generate", "grf", "--n", "-3", "--out", "{tmp}/g.nc"], "n", None),
    ("generate-resolution", ["generate", "grf", "--n", "2", "--resolution", "1",
                             "--out", "{tmp}/g.nc"], "resolution", None),
    # (opflow generate creates a missing output folder: not an error)
    ("demo-resolution", ["demo", "heat", "--resolution", "-4", "--out", "{tmp}/d"],
     "resolution", None),
    ("train-missing-data", ["train", "--model", "fno", "--data", "{tmp}/none.nc", "--vars", "a",
                            "--targets", "u", "--out", "{tmp}/run"], "none.nc", None),
    ("train-unknown-var", ["train", "--model", "fno", "--data", "{data}", "--vars", "b",
                           "--targets", "u", "--out", "{tmp}/run", "--quiet"], "'b'", None),
    ("train-epochs", ["train", "--model", "fno", "--data", "{data}", "--vars", "a", "--targets",
                      "u", "--out", "{tmp}/run", "--epochs", "0", "--quiet"], "epochs", None),
    ("train-val-fraction", ["train", "--model", "fno", "--data", "{data}", "--vars", "a",
                            "--targets", "u", "--out", "{tmp}/run", "--val-fraction", "1.5",
                            "--quiet"], "val-fraction", None),
    ("train-config-missing", ["train", "--config", "{tmp}/none.toml", "--out", "{tmp}/run"],
     "none.toml", None),
    ("predict-missing-checkpoint", ["predict", "--checkpoint", "{tmp}/none.pt", "--data",
                                    "{data}", "--out", "{tmp}/p.nc"], "none.pt", None),
    ("predict-not-a-checkpoint", ["predict", "--checkpoint", "{data}", "--data", "{data}",
                                  "--out", "{tmp}/p.nc"], "--checkpoint", None),
    ("predict-input-not-netcdf", ["predict", "--checkpoint", "{pre}", "--data", "{ckpt}",
                                  "--vars", "u0", "--out", "{tmp}/p.nc", "--quiet"],
     "--data", None),
    ("predict-chunk", ["predict", "--checkpoint", "{ckpt}", "--data", "{data}", "--out",
                       "{tmp}/p.nc", "--chunk", "0", "--quiet"], "chunk", None),
    ("solve-unknown-problem", ["solve", "wave", "--data", "{data}", "--vars", "a", "--out",
                               "{tmp}/s.nc"], "wave", None),
    ("solve-unknown-var", ["solve", "burgers", "--data", "{data}", "--vars", "q", "--out",
                           "{tmp}/s.nc", "--quiet"], "'q'", None),
    ("solve-chunk", ["solve", "burgers", "--data", "{data}", "--vars", "a", "--out",
                     "{tmp}/s.nc", "--chunk", "0", "--quiet"], "chunk", None),
    ("solve-not-netcdf", ["solve", "burgers", "--data", "{ckpt}", "--vars", "a", "--out",
                          "{tmp}/s.nc", "--quiet"], "--data", None),
    ("pretrain-samples", ["pretrain", "--families", "advection", "--out", "{tmp}/pt",
                          "--samples", "0", "--quiet"], "samples", None),
    ("pretrain-resolution", ["pretrain", "--families", "advection", "--out", "{tmp}/pt",
                             "--resolution", "3", "--quiet"], "resolution", None),
    ("finetune-missing-checkpoint", ["finetune", "--checkpoint", "{tmp}/none.pt", "--data",
                                     "advection", "--shots", "4", "--out", "{tmp}/ft"],
     "none.pt", None),
    ("finetune-not-pretrained", ["finetune", "--checkpoint", "{ckpt}", "--data", "advection",
                                 "--shots", "4", "--out", "{tmp}/ft", "--quiet"], "--checkpoint",
     None),
    # ---- an output that would replace an input (data loss), however it is spelled
    ("solve-out-is-input", ["solve", "heat", "--data", "{data}", "--vars", "a", "--out",
                            "{data}", "--quiet"], "--out", None),
    ("solve-out-is-input-dotted", ["solve", "heat", "--data", "{data}", "--vars", "a", "--out",
                                   "{tmp}/./sub/../pairs.nc", "--quiet"], "--out", None),
    ("predict-out-is-input", ["predict", "--checkpoint", "{ckpt}", "--data", "{data}",
                              "--out", "{data}", "--quiet"], "--out", None),
    ("predict-out-is-checkpoint", ["predict", "--checkpoint", "{ckpt}", "--data", "{data}",
                                   "--out", "{ckpt}", "--quiet"], "--out", None),
    ("train-out-is-data", ["train", "--model", "fno", "--data", "{data}", "--vars", "a",
                           "--targets", "u", "--out", "{data}", "--quiet"], "--out", None),
    ("finetune-out-is-checkpoint", ["finetune", "--checkpoint", "{pre}", "--data", "advection",
                                    "--shots", "4", "--out", "{pre}", "--quiet"], "--out", None),
    # ---- outputs that cannot be written: a folder, under a regular file, an existing file
    ("generate-out-directory", ["generate", "grf", "--n", "2", "--resolution", "8", "--out",
                                "{tmp}"], "--out", None),
    ("generate-out-under-file", ["generate", "grf", "--n", "2", "--resolution", "8", "--out",
                                 "{data}/g.nc"], "--out", None),
    ("train-out-under-file", ["train", "--model", "fno", "--data", "{data}", "--vars", "a",
                              "--targets", "u", "--out", "{data}/run", "--quiet"], "--out", None),
    ("train-out-existing-file", ["train", "--model", "fno", "--data", "{data}", "--vars", "a",
                                 "--targets", "u", "--out", "{ckpt}", "--quiet"], "--out", None),
    ("pretrain-out-under-file", ["pretrain", "--families", "advection", "--out", "{data}/pt",
                                 "--quiet"], "--out", None),
    ("finetune-out-under-file", ["finetune", "--checkpoint", "{pre}", "--data", "advection",
                                 "--shots", "4", "--out", "{data}/ft", "--quiet"], "--out", None),
    ("demo-out-existing-file", ["demo", "heat", "--out", "{data}"], "--out", None),
    # ---- values refused by the flag the user typed (not an internal argument name)
    ("train-val-fraction-nan", ["train", "--model", "fno", "--data", "{data}", "--vars", "a",
                                "--targets", "u", "--out", "{tmp}/run", "--val-fraction", "nan",
                                "--quiet"], "--val-fraction", None),
    ("predict-batch-size", ["predict", "--checkpoint", "{ckpt}", "--data", "{data}", "--out",
                            "{tmp}/p.nc", "--batch-size", "0", "--quiet"], "--batch-size", None),
    ("generate-option-text-flag", ["generate", "grf", "--n", "2", "--resolution", "8", "--out",
                                   "{tmp}/g.nc", "--option", "periodic=text"],
     "--option periodic", None),
    ("generate-option-fine-factor", ["generate", "burgers", "--n", "2", "--resolution", "8",
                                     "--out", "{tmp}/g.nc", "--option", "fine_factor=0"],
     "--option fine_factor", None),
    ("generate-option-n-saves", ["generate", "navier-stokes", "--n", "2", "--resolution", "8",
                                 "--out", "{tmp}/g.nc", "--option", "n_saves=0"],
     "--option n_saves", None),
    ("generate-option-cycle", ["generate", "darcy", "--n", "2", "--resolution", "9", "--out",
                               "{tmp}/g.nc", "--option", "cycle=Q"], "--option cycle", None),
    ("generate-huge-n", ["generate", "grf", "--n", "1000000000000", "--resolution", "8",
                         "--out", "{tmp}/g.nc"], "--out", None),
    ("pretrain-width", ["pretrain", "--families", "advection", "--out", "{tmp}/pt",
                        "--width", "0", "--quiet"], "--width", None),
    ("pretrain-lr", ["pretrain", "--families", "advection", "--out", "{tmp}/pt",
                     "--lr", "-1", "--quiet"], "--lr", None),
    ("finetune-samples", ["finetune", "--checkpoint", "{pre}", "--data", "advection",
                          "--shots", "4", "--samples", "0", "--out", "{tmp}/ft", "--quiet"],
     "--samples", None),
    # ---- input files with a bad grid
    ("solve-nonperiodic-axis", ["solve", "heat", "--data", "{flat}", "--vars", "a", "--out",
                                "{tmp}/s.nc", "--quiet"], "--vars", None),
    ("solve-junk-periodic", ["solve", "heat", "--data", "{junk_periodic}", "--vars", "a",
                             "--out", "{tmp}/s.nc", "--quiet"], "--data", None),
    ("solve-junk-bounds", ["solve", "burgers", "--data", "{junk_bounds}", "--vars", "a",
                           "--out", "{tmp}/s.nc", "--quiet"], "--data", None),
    ("solve-text-coords", ["solve", "heat", "--data", "{text_coords}", "--vars", "a",
                           "--out", "{tmp}/s.nc", "--quiet"], "--data", None),
    ("predict-junk-periodic", ["predict", "--checkpoint", "{pre}", "--data",
                               "{junk_periodic}", "--vars", "a", "--out", "{tmp}/p.nc",
                               "--quiet"], "--data", None),
    ("train-junk-periodic", ["train", "--model", "fno", "--data", "{junk_periodic}", "--vars",
                             "a", "--targets", "u", "--out", "{tmp}/run", "--quiet"], "--data",
     None),
    ("train-junk-bounds", ["train", "--model", "fno", "--data", "{junk_bounds}", "--vars",
                           "a", "--targets", "u", "--out", "{tmp}/run", "--quiet"], "--data", None),
    ("train-text-coords", ["train", "--model", "fno", "--data", "{text_coords}", "--vars",
                           "a", "--targets", "u", "--out", "{tmp}/run", "--quiet"], "--data", None),
]
# Placeholders of the CLI rows -> the fixture (conftest.py) that makes the file.
_FILES = {"{data}": "data_file", "{ckpt}": "checkpoint", "{pre}": "pretrained",
          "{flat}": "nonperiodic_file", "{junk_periodic}": "junk_periodic_file",
          "{junk_bounds}": "junk_bounds_file", "{text_coords}": "text_coords_file"}


def _cli_params():
    for name, argv, argument, mark in CLI_CASES:
        yield pytest.param(argv, argument, id=f"cli-{name}", marks=[mark] if mark else [])


def _fill(argv, tmp_path, request):
    """The row's arguments with its placeholders replaced (only the files it names are made)."""
    filled = []
    for arg in argv:
        for key, fixture in _FILES.items():
            if key in arg:
                arg = arg.replace(key, str(request.getfixturevalue(fixture)))
        filled.append(arg.replace("{tmp}", str(tmp_path)))
    return filled


@pytest.mark.parametrize("argv, argument", list(_cli_params()))
def test_cli_bad_input_exits_1_with_one_error_line(argv, argument, tmp_path, request, capsys):
    from opflow.cli import main

    argv = _fill(argv, tmp_path, request)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals (exit 2, usage line)
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code in (1, 2), (code, err)
    assert err.count("\n") <= 1 and "error:" in err and "Traceback" not in err, err
    named = f"argument `{argument}`" if argument.startswith("--") else argument
    assert named in err, err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert set(after) == set(before), "a refused command left files behind"
    assert after == before, "a refused command changed a file"


def test_case_table_covers_every_category():
    counts = {}
    for category, *_ in CASES:
        counts[category] = counts.get(category, 0) + 1
    assert set(counts) == {"grid", "field", "calculus", "io", "data", "solve", "operators",
                           "trainer", "checkpoint"}
    assert min(counts.values()) >= 4, counts
    assert len(CLI_CASES) >= 51


def test_an_xarray_sample_of_the_table_data_is_valid():
    """The rows above fail because of the one wrong input, not because the base data is bad."""
    ds = OperatorDataset(pair_dataset(), "a", "u")
    a, u = ds[0]
    assert a.shape == (1, 16) and u.shape == (1, 16)
    hist = _trainer(epochs=1, batch_size=4).fit(pairs(8))
    assert len(hist) == 1 and math.isfinite(hist[0]["train_loss"])


def test_an_output_that_resolves_to_an_input_is_refused(tmp_path, data_file, checkpoint,
                                                        capsys):
    """Symbolic and hard links, ``..`` and files a run folder would hold all count."""
    import os

    from opflow.cli import main
    from opflow.io.outputs import check_output_path

    symlink, hardlink = tmp_path / "sym.nc", tmp_path / "hard.nc"
    symlink.symlink_to(data_file)
    os.link(data_file, hardlink)
    for out in (symlink, hardlink, tmp_path / "no" / ".." / data_file.name):
        with pytest.raises(InvalidArgumentError, match="would replace") as info:
            check_output_path(out, inputs={"input": data_file})
        assert info.value.argument == "out"
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(InvalidArgumentError, match="finetuned.pt"):
        check_output_path(run, folder=True, writes=["finetuned.pt"], argument="--out",
                          inputs={"--checkpoint": run / "finetuned.pt"})
    link = tmp_path / "ckpt.pt"
    link.symlink_to(checkpoint)
    before = checkpoint.read_bytes()
    assert main(["predict", "--checkpoint", str(checkpoint), "--data", str(data_file),
                 "--out", str(link), "--quiet"]) == 1
    assert "argument `--out`" in capsys.readouterr().err
    assert checkpoint.read_bytes() == before and link.is_symlink()


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    """The suite runs as root, who may write anywhere: ``os.access`` stands in for the
    permission bits of a read-only folder."""
    import os

    from opflow.cli import main
    from opflow.io.outputs import check_output_path

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    for out, folder in ((tmp_path / "g.nc", False), (tmp_path / "run", True), (tmp_path, True)):
        with pytest.raises(InvalidArgumentError, match="writable"):
            check_output_path(out, folder=folder)
    assert main(["generate", "grf", "--n", "2", "--resolution", "8", "--out",
                 str(tmp_path / "g.nc")]) == 1
    err = capsys.readouterr().err
    assert "argument `--out`" in err and "writable" in err and not list(tmp_path.iterdir())
