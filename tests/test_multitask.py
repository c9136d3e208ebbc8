"""Multi-task data on masked geometries, MultiTaskDeepONet, masked loss and transfer."""

from __future__ import annotations

import math

import pytest
import torch

from opflow import Field, Grid, Trainer
from opflow.data.multitask import (
    GEOMETRIES,
    MultiTaskData,
    generate_multitask,
    geometry_mask,
    load_multitask,
    monomials,
    polynomial_source,
    solve_poisson,
    unit_grid,
)
from opflow.errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.operators import MultiTaskDeepONet, build_operator
from opflow.train.transfer import evaluate_by_geometry, fine_tune, fit, freeze, masked_rel_l2


@pytest.fixture(scope="module")
def small():
    """30 samples per geometry (square, L-shape, hole) on 17 x 17, and a test set."""
    train = MultiTaskData.from_dataset(generate_multitask(90, resolution=17, seed=0,
                                                          progress=False))
    test = MultiTaskData.from_dataset(generate_multitask(30, resolution=17, seed=1,
                                                         progress=False))
    return train, test


# ---------------------------------------------------------------- solver
@pytest.mark.parametrize("geometry,k", [("lshape", 2), ("square_hole", 4)])
def test_masked_poisson_second_order(geometry, k):
    """u = sin(k pi x) sin(k pi y) vanishes on the boundary of both domains
    (grid-aligned at x, y in {0, 1/k, ...}); f = 2 (k pi)^2 u. The masked
    multigrid solution converges at second order in the max norm. As u is
    a discrete eigenfunction of the 5-point Laplacian, the discrete solution
    is exactly ``u * lam / lam_h`` with ``lam_h = (8 / h^2) sin^2(k pi h / 2)``."""
    errors = []
    for n in (17, 33, 65):
        grid = unit_grid(n)
        h = 1.0 / (n - 1)
        x, y = grid.mesh(torch.float64)
        exact = torch.sin(k * math.pi * x) * torch.sin(k * math.pi * y)
        lam = 2 * (k * math.pi) ** 2
        f = Field((lam * exact)[None], grid)
        mask = geometry_mask(geometry, grid)
        u = solve_poisson(f, mask).values[0]
        assert torch.all(u[~mask.values[0]] == 0)
        lam_h = 8 / h**2 * math.sin(k * math.pi * h / 2) ** 2
        inside = mask.values[0]
        torch.testing.assert_close(u[inside], (exact * lam / lam_h)[inside], rtol=0,
                                   atol=1e-8)
        errors.append(float((u - exact)[inside].abs().max()))
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert errors[-1] < 1.1 * (k * math.pi / 64) ** 2 / 12
    assert min(orders) > 1.9, (errors, orders)


def test_geometry_areas():
    """Nodes inside times h^2 approach the areas of the domains (error O(h),
    h = 1/512 here)."""
    grid = unit_grid(513)
    areas = {"square": 1.0, "lshape": 0.75, "hole": 1 - math.pi * 0.04,
             "square_hole": 0.75, "disk": math.pi * 0.45**2, "ushape": 1 - 0.25 * 0.625}
    assert set(areas) == set(GEOMETRIES)
    for name, area in areas.items():
        frac = float(geometry_mask(name, grid).values.double().sum()) / 512**2
        assert abs(frac - area) < 0.01, (name, frac, area)


def test_polynomial_source_matches_formula():
    grid = unit_grid(9)
    x, y = grid.mesh(torch.float64)
    s, t = 2 * x - 1, 2 * y - 1
    c = torch.arange(1.0, 7.0, dtype=torch.float64)
    assert monomials(2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    expect = c[0] + c[1] * s + c[2] * t + c[3] * s**2 + c[4] * s * t + c[5] * t**2
    torch.testing.assert_close(polynomial_source(c, grid, 2).values[0], expect)


# ------------------------------------------------------------------ data
def test_dataset_roundtrip_and_chunking(tmp_path, small):
    path = tmp_path / "mt.nc"
    ds = generate_multitask(7, resolution=17, seed=3, out=path, chunk=3, progress=False)
    ds.close()
    assert not (tmp_path / ".mt.nc.parts").exists()
    on_disk = load_multitask(path)
    in_memory = MultiTaskData.from_dataset(generate_multitask(7, resolution=17, seed=3,
                                                              chunk=7, progress=False))
    assert on_disk.geometry == in_memory.geometry == ("square", "lshape", "hole") * 2 + \
        ("square",)
    for name in ("mask", "f", "u"):
        assert getattr(on_disk, name).grid == in_memory.grid
        torch.testing.assert_close(getattr(on_disk, name).values,
                                   getattr(in_memory, name).values, rtol=0, atol=0)
    torch.testing.assert_close(on_disk.coeffs, in_memory.coeffs, rtol=0, atol=0)
    assert on_disk.mask.dtype == torch.bool
    # the coefficients reproduce f, and u vanishes outside the domain
    f = polynomial_source(on_disk.coeffs.double(), on_disk.grid, 2).values
    torch.testing.assert_close(f.float(), on_disk.f.values, rtol=1e-5, atol=1e-5)
    assert torch.all(on_disk.u.values[~on_disk.mask.values] == 0)


def test_generation_resumes_after_interruption(tmp_path, monkeypatch):
    """A run killed in its second chunk keeps the first; the rerun solves only
    the missing chunks and gives the same file as an uninterrupted run."""
    import opflow.data.multitask as mt

    real, calls = mt.solve_poisson, []

    def failing(f, mask, rtol=1e-10):
        calls.append(f.batch_shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(f, mask, rtol)

    path = tmp_path / "mt.nc"
    monkeypatch.setattr(mt, "solve_poisson", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_multitask(7, resolution=9, seed=5, out=path, chunk=3, progress=False)
    assert not path.exists() and len(list((tmp_path / ".mt.nc.parts").glob("*.nc"))) == 1
    calls.clear()
    monkeypatch.setattr(mt, "solve_poisson", lambda f, m, rtol=1e-10: calls.append(1) or
                        real(f, m, rtol))
    generate_multitask(7, resolution=9, seed=5, out=path, chunk=3, progress=False).close()
    assert len(calls) == 2  # chunks 2 and 3 only
    again = MultiTaskData.from_dataset(generate_multitask(7, resolution=9, seed=5,
                                                          progress=False))
    torch.testing.assert_close(load_multitask(path).u.values, again.u.values, rtol=0, atol=0)


def test_select_subset_and_pairs(small):
    train, _ = small
    lsh = train.select("lshape")
    assert len(lsh) == 30 and set(lsh.geometry) == {"lshape"}
    inp, tgt = lsh.subset(slice(0, 4)).pairs()
    assert inp.shape == (4, 2, 17, 17) and inp.names == ("mask", "f")
    assert tgt.shape == (4, 2, 17, 17) and tgt.names == ("u", "mask")
    with pytest.raises(UnknownVariableError, match="disk"):
        train.select("disk")  # a known geometry that is not in this set


# ----------------------------------------------------------------- model
def test_model_shapes_and_fields(small):
    train, _ = small
    torch.manual_seed(0)
    model = MultiTaskDeepONet(degree=2, branch_layers=(32,), trunk_layers=(32, 32), p=16,
                              mask_size=4)
    inp, _ = train.subset(slice(0, 5)).pairs()
    out = model(inp)
    assert isinstance(out, Field) and out.shape == (5, 2, 17, 17)
    assert out.names == ("u", "mask") and out.grid == train.grid
    outside = ~train.mask.values[:5, 0]
    assert torch.all(out.values[:, 0][outside] == 0)
    torch.testing.assert_close(out.values[:, 1], inp.values[:, 0])
    # coefficients are recovered exactly from f (least squares on the monomials)
    torch.testing.assert_close(model.coefficients(train.f[0:5]), train.coeffs[:5],
                               rtol=1e-4, atol=1e-4)
    # tensor call with a mask Field gives the same u
    u = model(train.coeffs[:5], train.mask[0:5])
    assert isinstance(u, Field) and u.shape == (5, 1, 17, 17) and u.names == ("u",)
    torch.testing.assert_close(u.values[:, 0], out.values[:, 0], rtol=1e-4, atol=1e-5)
    # tensor call with a tensor mask and a grid gives a tensor
    t = model(train.coeffs[:5], train.mask.values[:5, 0], grid=train.grid)
    assert isinstance(t, torch.Tensor) and t.shape == (5, 17, 17)
    torch.testing.assert_close(t, u.values[:, 0])
    clone = build_operator(model.config)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(inp).values, out.values)


def test_bilinear_branch_is_linear_in_coefficients(small):
    """For a fixed geometry, G(c1 + c2) = G(c1) + G(c2) - G(0) (bilinear branch);
    the plain "mlp" branch has the same interface but no such structure."""
    train, _ = small
    torch.manual_seed(0)
    mask = train.mask[0:1]
    c1, c2 = train.coeffs[0:1], train.coeffs[1:2]
    zero = torch.zeros_like(c1)
    model = MultiTaskDeepONet(branch_layers=(16,), trunk_layers=(16,), p=8, mask_size=4)
    with torch.no_grad():
        lhs = model(c1 + c2, mask).values
        rhs = model(c1, mask).values + model(c2, mask).values - model(zero, mask).values
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-5)
    mlp = MultiTaskDeepONet(branch_layers=(16,), trunk_layers=(16,), p=8, mask_size=4,
                            branch="mlp")
    assert mlp.branch.linears[0].in_features == 6 + 16
    assert mlp(c1, mask).shape == (1, 1, 17, 17)
    with torch.no_grad():
        gap = (mlp(c1 + c2, mask).values - mlp(c1, mask).values - mlp(c2, mask).values
               + mlp(zero, mask).values).abs().max()
    assert gap > 1e-4


def test_masked_loss_ignores_outside(small):
    train, _ = small
    _, tgt = train.subset(slice(0, 6)).pairs()
    gen = torch.Generator().manual_seed(0)
    pred = tgt.with_values(tgt.values + 0.01 * torch.randn(tgt.shape, generator=gen))
    pred.values[:, 1] = tgt.values[:, 1]
    base = masked_rel_l2(pred, tgt)
    # the value by hand
    m = tgt.values[:, 1]
    err = ((pred.values[:, 0] - tgt.values[:, 0]) * m).flatten(1).norm(dim=1)
    ref = (tgt.values[:, 0] * m).flatten(1).norm(dim=1)
    torch.testing.assert_close(base, (err / ref).mean())
    outside = (m == 0).unsqueeze(1).expand(-1, 2, -1, -1).clone()
    outside[:, 1] = False  # keep the mask channel itself
    noisy_p = pred.values.clone()
    noisy_t = tgt.values.clone()
    noisy_p[outside] = 1e3
    noisy_t[outside] = -7.0
    changed = masked_rel_l2(pred.with_values(noisy_p), tgt.with_values(noisy_t))
    assert float(changed) == float(base)
    inside = pred.values.clone()
    inside[:, 0][m == 1] += 0.1
    assert float(masked_rel_l2(pred.with_values(inside), tgt)) > 2 * float(base)
    # an explicit mask gives the same value on the "u" channel alone
    explicit = masked_rel_l2(pred[["u"]], tgt[["u"]], mask=train.mask[0:6])
    torch.testing.assert_close(explicit, base)


def test_training_beats_trivial_baselines(small):
    """A few hundred steps on 90 samples: the masked test error drops far below
    the zero prediction (error 1) and the mean training solution per geometry."""
    train, test = small
    torch.manual_seed(0)
    model = MultiTaskDeepONet(branch_layers=(64, 64), trunk_layers=(64, 64), p=32, mask_size=4)
    before = evaluate_by_geometry(model, test)["all"]
    history = fit(model, train, steps=400, lr=2e-3, batch_size=30, seed=0)
    after = evaluate_by_geometry(model, test)
    _, tgt = test.pairs()
    means = torch.stack([train.select(g).u.values.mean(0) for g in test.geometry])
    mean_err = float(masked_rel_l2(tgt.with_values(torch.cat([means, tgt.values[:, 1:]], 1)),
                                   tgt))
    assert mean_err > 0.9  # the sources have random signs: the mean is no predictor
    assert after["all"] < 0.2, after  # measured 0.14
    assert all(after[g] < 0.3 for g in ("square", "lshape", "hole")), after
    assert history[-1] < 0.5 * history[0] and after["all"] < 0.5 * before


def test_trainer_accepts_masked_loss(small):
    train, test = small
    torch.manual_seed(0)
    model = MultiTaskDeepONet(branch_layers=(32,), trunk_layers=(32,), p=16, mask_size=4)
    trainer = Trainer(model, loss=masked_rel_l2, epochs=3, batch_size=30, progress=False,
                      lr=2e-3)
    hist = trainer.fit(train.pairs(), test.pairs())
    assert len(hist) == 3 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    ev = trainer.evaluate(test.pairs())
    assert abs(ev["loss"] - evaluate_by_geometry(model, test)["all"]) < 1e-5


# -------------------------------------------------------------- transfer
def test_fine_tune_leaves_frozen_parameters_bit_identical(small):
    train, _ = small
    torch.manual_seed(0)
    model = MultiTaskDeepONet(branch_layers=(32, 32), trunk_layers=(32,), p=16, mask_size=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fine_tune(model, train.subset(slice(0, 10)), train=("branch.last", "b0"), steps=20,
              lr=1e-2, batch_size=5)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"branch.linears.2.weight", "branch.linears.2.bias", "b0"}
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    names = freeze(model, ["trunk"])
    assert names == [n for n, _ in model.named_parameters() if n.startswith("trunk.")]
    freeze(model, "branch.first")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == \
        ["branch.linears.0.weight", "branch.linears.0.bias"]


# --------------------------------------------------------------- bad input
def test_bad_inputs(small):
    train, _ = small
    model = MultiTaskDeepONet(branch_layers=(16,), trunk_layers=(16,), p=8, mask_size=4)
    other = unit_grid(9)
    with pytest.raises(UnknownVariableError, match="circle"):
        geometry_mask("circle", other)
    with pytest.raises(UnknownVariableError, match="circle"):
        generate_multitask(3, resolution=9, geometries="square,circle", progress=False)
    with pytest.raises(UnknownVariableError, match="trunk.linears.7"):
        freeze(model, ["trunk.linears.7"])
    with pytest.raises(UnknownVariableError, match="branch.middle"):
        fine_tune(model, train, train=["branch.middle"], steps=1)
    # mismatched grids
    with pytest.raises(GridMismatchError, match="grid"):
        model(train.coeffs[:2], train.mask[0:2], grid=other)
    with pytest.raises(GridMismatchError, match="f"):
        MultiTaskData(train.mask, train.coeffs, Field(torch.zeros(len(train), 1, 9, 9), other),
                      train.u, train.geometry, 2)
    inp, tgt = train.pairs()
    with pytest.raises(GridMismatchError, match="pred"):
        masked_rel_l2(Field(torch.zeros(len(train), 2, 9, 9), other, names=("u", "mask")), tgt)
    # masks and coefficients of the wrong shape
    with pytest.raises(ShapeError, match="mask"):
        model(train.coeffs[:2], train.mask[0:3])
    with pytest.raises(ShapeError, match="mask"):
        model(train.coeffs[:2], torch.ones(2, 9, 9, dtype=torch.bool), grid=train.grid)
    with pytest.raises(ShapeError, match="x"):
        model(train.coeffs[:2, :4], train.mask[0:2])
    with pytest.raises(ShapeError, match="mask"):
        masked_rel_l2(tgt[["u"]], tgt[["u"]], mask=torch.ones(3, 1, 17, 17))
    with pytest.raises(ShapeError, match="x"):
        model(inp[["f"]])
    # a normalised (not 0/1) mask channel
    with pytest.raises(InvalidArgumentError, match="0/1"):
        model(inp.with_values(inp.values * 0.5))
    with pytest.raises(UnknownVariableError, match="mask"):
        masked_rel_l2(tgt[["u"]], tgt[["u"]])
    with pytest.raises(InvalidArgumentError, match="degree"):
        MultiTaskDeepONet(degree=-1)
    with pytest.raises(InvalidArgumentError, match="branch"):
        MultiTaskDeepONet(branch="cnn")
    with pytest.raises(InvalidArgumentError, match="data"):
        fit(model, train.u, steps=1)
    with pytest.raises(GridMismatchError, match="grid"):
        geometry_mask("square", Grid.uniform(x=(0, 1, 9)))
