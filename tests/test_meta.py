"""LeMON pieces: PDE families (against exact solutions), MAML pretraining, few-shot
adaptation, the pretrain/finetune commands, and their errors."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

import opflow
from opflow import Field, Grid
from opflow.errors import GridMismatchError, InvalidArgumentError, UnknownVariableError
from opflow.meta import FAMILIES, INPUTS, family_dataset, generate_family, save_family
from opflow.meta.adapt import evaluate, finetune
from opflow.meta.commands import add_finetune_parser, add_pretrain_parser
from opflow.meta.families import solve_family
from opflow.meta.maml import Task, build_backbone, check_tasks, pretrain, task_from_dataset


def _grid(n: int) -> Grid:
    return Grid.uniform(x=(0.0, 1.0, n), periodic=("x",))


def _x(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) / n


# ------------------------------------------------------- exact solutions
def test_advection_is_the_exact_shift():
    n, t = 64, 0.7
    x = _x(n)
    profile = lambda s: torch.sin(2 * math.pi * s) + 0.5 * torch.cos(6 * math.pi * s)  # noqa: E731
    c = torch.tensor([0.3, 0.5], dtype=torch.float64)
    u0 = Field(profile(x).expand(2, 1, n).clone(), _grid(n), "u")
    u = solve_family(u0, {"c": c}, t_end=t).values
    exact = torch.stack([profile(x - ci * t) for ci in c])[:, None]
    assert (u - exact).abs().max() < 1e-12


def test_diffusion_decays_each_mode_exactly():
    n, t, nu = 64, 0.5, 0.03
    x = _x(n)
    u0 = Field((1.0 + torch.sin(2 * math.pi * x) + torch.cos(8 * math.pi * x))[None, None],
               _grid(n), "u")
    u = solve_family(u0, {"nu": nu}, t_end=t).values[0, 0]
    exact = (1.0 + math.exp(-nu * (2 * math.pi) ** 2 * t) * torch.sin(2 * math.pi * x)
             + math.exp(-nu * (8 * math.pi) ** 2 * t) * torch.cos(8 * math.pi * x))
    assert (u - exact).abs().max() < 1e-12


def test_burgers_matches_cole_hopf():
    """u = -2 nu phi_x / phi with phi = 2 + exp(-4 pi^2 nu t) cos(2 pi x) solving the heat
    equation is an exact solution of u_t + u u_x = nu u_xx."""
    n, nu, t = 128, 0.05, 0.5
    x = _x(n)

    def exact(s):
        decay = math.exp(-4 * math.pi ** 2 * nu * s)
        return 4 * math.pi * nu * decay * torch.sin(2 * math.pi * x) / (
            2 + decay * torch.cos(2 * math.pi * x))

    u = solve_family(Field(exact(0.0)[None, None], _grid(n), "u"), {"b": 1.0, "nu": nu},
                     t_end=t).values[0, 0]
    assert (u - exact(t)).abs().max() < 1e-7


def test_burgers_with_flux_factor_is_rescaled_burgers():
    """v = b u turns u_t + b u u_x = nu u_xx into standard Burgers."""
    n, nu, t, b = 128, 0.05, 0.5, 0.5
    x = _x(n)
    u0 = 0.5 + 0.8 * torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * x + 0.3)
    u_b = solve_family(Field(u0[None, None], _grid(n), "u"), {"b": b, "nu": nu}, t).values
    v = solve_family(Field(b * u0[None, None], _grid(n), "u"), {"b": 1.0, "nu": nu}, t).values
    assert (b * u_b - v).abs().max() < 1e-9


def test_reaction_diffusion_uniform_state_follows_the_logistic_law():
    """A uniform state solves u' = r u (1 - u); ETDRK4 converges at fourth order."""
    n, r, t, a = 32, 3.0, 1.0, 0.2
    u0 = Field(torch.full((1, 1, n), a, dtype=torch.float64), _grid(n), "u")
    exact = a * math.exp(r * t) / (1 - a + a * math.exp(r * t))
    errors = [float((solve_family(u0, {"nu": 0.01, "r": r}, t_end=t, dt=dt).values
                     - exact).abs().max()) for dt in (0.1, 0.05)]
    assert errors[1] < 1e-6
    assert 12 < errors[0] / errors[1] < 20  # 2^4 = 16


def test_porous_medium_against_method_of_lines_reference():
    """Same spectral derivative, adaptive Dopri5 (opflow.solve) at a tight tolerance in
    time: an independent time integrator for the stiff nonlinear diffusion."""
    n, d, t = 64, 0.03, 0.5
    x = _x(n)
    u0 = 0.5 + 0.3 * torch.sin(2 * math.pi * x) + 0.1 * torch.cos(6 * math.pi * x)
    k = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64) * 2 * math.pi

    def rhs(_t, u):
        return d * torch.fft.irfft(-(k ** 2) * torch.fft.rfft(u * u), n=n)

    ref = opflow.solve(opflow.ODEProblem(rhs, u0.clone(), (0.0, t)),
                       opflow.Dopri5(rtol=1e-10, atol=1e-12), saveat=[t])
    u = solve_family(Field(u0[None, None], _grid(n), "u"), {"d": d}, t_end=t).values[0, 0]
    assert (u - ref.u[-1]).abs().max() < 1e-6
    assert abs(float(u.mean() - u0.mean())) < 1e-12  # mass is conserved


def test_solve_family_bad_input():
    g = _grid(16)
    u0 = Field(torch.rand(2, 1, 16, dtype=torch.float64), g, "u")
    with pytest.raises(UnknownVariableError, match="coefficients"):
        solve_family(u0, {"kappa": 1.0})
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        solve_family(u0, {"nu": -0.1})
    with pytest.raises(InvalidArgumentError, match="coefficients\\['c'\\]"):
        solve_family(u0, {"c": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidArgumentError, match="non-negative states"):
        solve_family(u0.with_values(u0.values - 2.0), {"d": [0.0, 0.1]})
    closed = Grid.uniform(x=(0.0, 1.0, 16))
    with pytest.raises(InvalidArgumentError, match="periodic"):
        solve_family(Field(torch.rand(2, 1, 16), closed, "u"), {})
    with pytest.raises(UnknownVariableError, match="family"):
        generate_family("heat", 4)


# ------------------------------------------------------------------ data
def test_generate_family_layout_roundtrip_and_dataset(tmp_path):
    ds = generate_family("burgers", 6, resolution=32, seed=3)
    again = generate_family("burgers", 6, resolution=32, seed=3)
    assert np.array_equal(ds.u.values, again.u.values)  # bit-identical for one seed
    assert list(ds.data_vars) == ["u0", "u", "c", "b", "nu", "r", "d"]
    assert ds.u.dims == ("sample", "x") and ds.sizes["x"] == 32
    lo, hi = FAMILIES["burgers"].ranges["nu"]
    assert ((ds.nu >= lo) & (ds.nu <= hi)).all() and (ds.c == 0).all() and (ds.d == 0).all()
    assert float(ds.nu.std("x").max()) == 0  # coefficients are constant fields
    assert 0 < float(ds.u0.min()) and float(ds.u0.max()) < 1
    # the stored output is the solver's map of the stored input (subsampled fine solve)
    fine = generate_family("burgers", 6, resolution=32, seed=3, fine_factor=4)
    assert np.abs(fine.u.values - ds.u.values).max() > 0
    path = save_family(ds, tmp_path / "b.nc")
    data = family_dataset(path)
    a, u = data[2]
    assert a.names == INPUTS and a.shape == (6, 32) and u.shape == (1, 32)
    assert a.grid == _grid(32)
    np.testing.assert_allclose(u.values[0].numpy(), ds.u.values[2], rtol=1e-6)
    # the Trainer fits on it as on any OperatorDataset
    from opflow.operators import FNO
    from opflow.train import Trainer

    trainer = Trainer(FNO(6, 1, modes=(4,), width=4, n_layers=1), epochs=2, batch_size=3,
                      progress=False)
    trainer.fit(data)
    assert math.isfinite(trainer.evaluate(data)["rel_l2_mean"])


# ------------------------------------------------------------ meta-learning
@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    names = ["advection", "diffusion", "burgers"]
    return [task_from_dataset(generate_family(f, 40, resolution=32, seed=i))
            for i, f in enumerate(names)]


def test_task_from_dataset_scales_coefficients(tasks):
    t = tasks[2]
    assert t.inputs.shape == (40, 6, 32) and t.outputs.shape == (40, 1, 32)
    assert t.name == "burgers" and t.variables == (*INPUTS, "u")
    assert float(t.inputs[:, 2].max()) <= 1.0 and float(t.inputs[:, 2].min()) >= 0.5 / 1.5


@pytest.mark.parametrize("backbone", ["fno", "deeponet"])
@pytest.mark.parametrize("method", ["fomaml", "joint"])
def test_pretrain_lowers_the_loss(tasks, backbone, method):
    model = build_backbone(backbone, 6, 32, width=8, modes=6, layers=2)
    before = sum(evaluate(model, t) for t in tasks)
    steps = 15 if method == "fomaml" else 30
    hist = pretrain(model, tasks, method=method, steps=steps, lr=1e-2, support=5, query=5,
                    inner_steps=2)
    after = sum(evaluate(model, t) for t in tasks)
    assert len(hist) == steps and all(math.isfinite(h["loss"]) for h in hist)
    assert after < 0.5 * before  # measured: 0.10-0.33


def test_fomaml_at_zero_inner_lr_follows_the_query_gradient():
    """With a vanishing inner step, FOMAML's outer update is Adam on the query loss at
    theta itself; replayed here by hand with the same episode draws."""
    from opflow.meta.maml import task_error as _loss

    t = task_from_dataset(generate_family("diffusion", 12, resolution=16, seed=0))
    a = build_backbone("fno", 6, 16, width=4, modes=4, layers=1)
    b = build_backbone("fno", 6, 16, width=4, modes=4, layers=1)
    pretrain(a, [t], method="fomaml", steps=3, inner_lr=1e-30, support=6, query=6)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(b.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 3)
    for _ in range(3):
        torch.randperm(1, generator=gen)  # the task order draw
        idx = torch.randperm(12, generator=gen)
        opt.zero_grad()
        _loss(b, t.subset(idx[6:])).backward()
        opt.step()
        sched.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_fomaml_outer_gradient_is_taken_after_inner_sgd():
    """One outer step by hand: two SGD steps on the support set, then the query gradient
    at the adapted weights moves the original weights (no second derivatives)."""
    import copy

    from opflow.meta.maml import task_error as _loss

    t = task_from_dataset(generate_family("burgers", 12, resolution=16, seed=0))
    a = build_backbone("deeponet", 6, 16, width=4, layers=2)
    b = copy.deepcopy(a)
    pretrain(a, [t], method="fomaml", steps=1, lr=1e-2, inner_steps=2, inner_lr=0.05,
             support=6, query=6)
    gen = torch.Generator().manual_seed(0)
    torch.randperm(1, generator=gen)
    idx = torch.randperm(12, generator=gen)
    fast = copy.deepcopy(b)
    for _ in range(2):
        grads = torch.autograd.grad(_loss(fast, t.subset(idx[:6])), list(fast.parameters()))
        with torch.no_grad():
            for p, g in zip(fast.parameters(), grads):
                p -= 0.05 * g
    grads = torch.autograd.grad(_loss(fast, t.subset(idx[6:])), list(fast.parameters()))
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    for p, g in zip(b.parameters(), grads):
        p.grad = g
    opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_pretrain_bad_input(tasks):
    model = build_backbone("fno", 6, 32, width=4, modes=4, layers=1)
    coarse = task_from_dataset(generate_family("diffusion", 4, resolution=16))
    with pytest.raises(GridMismatchError, match="tasks"):
        pretrain(model, [tasks[0], coarse], steps=1)
    fewer = Task("x", tasks[0].inputs[:, :2], tasks[0].outputs, tasks[0].grid, ("u0", "c", "u"))
    with pytest.raises(InvalidArgumentError, match="variables"):
        check_tasks([tasks[0], fewer])
    with pytest.raises(InvalidArgumentError, match="support"):
        pretrain(model, tasks, support=30, query=20, steps=1)
    with pytest.raises(InvalidArgumentError, match="method"):
        pretrain(model, tasks, method="reptile", steps=1)
    with pytest.raises(InvalidArgumentError, match="backbone"):
        build_backbone("unet", 6, 32)


@pytest.mark.parametrize("backbone", ["fno", "deeponet"])
def test_finetune_modes_same_budget(tasks, backbone):
    model = build_backbone(backbone, 6, 32, width=8, modes=6, layers=2)
    pretrain(model, tasks[:2], method="joint", steps=20, support=5, query=5)
    support, query = tasks[2].split(10, seed=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for mode in ("lora", "full", "scratch"):
        adapted, info = finetune(model, support, mode=mode, steps=15, rank=2)
        results[mode] = info
        assert len(info["losses"]) == 15 and info["losses"][-1] < info["losses"][0]
        assert evaluate(adapted, query) > 0
    total = sum(p.numel() for p in model.parameters())
    assert results["full"]["trainable"] == results["scratch"]["trainable"] == total
    assert 0 < results["lora"]["trainable"] < total / 4
    for k, v in model.state_dict().items():  # the pretrained model is untouched
        assert torch.equal(v, state[k])


def test_finetune_errors(tasks):
    model = build_backbone("fno", 6, 32, width=4, modes=4, layers=1)
    with pytest.raises(InvalidArgumentError, match="shots"):
        tasks[0].split(41)
    with pytest.raises(InvalidArgumentError, match="mode"):
        finetune(model, tasks[0], mode="adapter")
    coarse = task_from_dataset(generate_family("diffusion", 4, resolution=16))
    with pytest.raises(GridMismatchError):
        finetune(model, coarse, like=tasks[0], steps=1)


# ---------------------------------------------------------------- commands
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opflow")
    sub = parser.add_subparsers(dest="command")
    add_pretrain_parser(sub)
    add_finetune_parser(sub)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_pretrain_and_finetune_commands(tmp_path, capsys):
    run = tmp_path / "run"
    rc = _run(["pretrain", "--families", "advection", "diffusion", "--backbone", "deeponet",
               "--out", str(run), "--samples", "16", "--resolution", "16", "--steps", "5",
               "--support", "4", "--query", "4", "--width", "8", "--layers", "2", "--quiet"])
    assert rc == 0
    assert (run / "pretrained.pt").is_file() and (run / "data" / "diffusion.nc").is_file()
    assert len(json.loads((run / "history.json").read_text())) == 5
    out = tmp_path / "ft"
    rc = _run(["finetune", "--checkpoint", str(run / "pretrained.pt"), "--data",
               "porous_medium", "--samples", "12", "--lora-rank", "2", "--shots", "5",
               "--steps", "3", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["family"] == "porous_medium" and metrics["query_samples"] == 7
    assert metrics["mode"] == "lora" and metrics["trainable_parameters"] > 0
    from opflow.train.checkpoint import load_checkpoint

    model = opflow.operators.build_operator(
        json.loads(json.dumps(load_checkpoint(out / "finetuned.pt")["model_config"])))
    load_checkpoint(out / "finetuned.pt", model)  # plain weights: adapters merged away
    # a data file from another grid, and too many shots: one-line errors, status 1
    save_family(generate_family("burgers", 6, resolution=32), tmp_path / "b32.nc")
    rc = _run(["finetune", "--checkpoint", str(run / "pretrained.pt"), "--data",
               str(tmp_path / "b32.nc"), "--shots", "2", "--out", str(out), "--quiet"])
    assert rc == 1 and "pretraining grid" in capsys.readouterr().err
    rc = _run(["finetune", "--checkpoint", str(run / "pretrained.pt"), "--data",
               str(run / "data" / "diffusion.nc"), "--shots", "40", "--out", str(out),
               "--quiet"])
    assert rc == 1 and "shots" in capsys.readouterr().err
    no_d = generate_family("diffusion", 6, resolution=16).drop_vars("d")
    save_family(no_d, tmp_path / "no_d.nc")
    rc = _run(["finetune", "--checkpoint", str(run / "pretrained.pt"), "--data",
               str(tmp_path / "no_d.nc"), "--shots", "2", "--out", str(out), "--quiet"])
    assert rc == 1 and "variables" in capsys.readouterr().err
    rc = _run(["finetune", "--checkpoint", str(run / "pretrained.pt"), "--data", "heat",
               "--shots", "2", "--out", str(out), "--quiet"])
    assert rc == 1 and "--data" in capsys.readouterr().err
