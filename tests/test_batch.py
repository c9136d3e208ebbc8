"""opflow.batch: ``opflow solve`` and the chunk loop shared with ``opflow predict``.

References: a direct :func:`opflow.solve` on the same samples (same batches,
so bit-for-bit), the exact Fourier solution of the heat equation, and an
uninterrupted run for resumed ones (byte-for-byte files).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from opflow import Field, Grid, solve
from opflow.batch import run_job, solve_file, work_dir
from opflow.batch.commands import main
from opflow.errors import InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.io import save
from opflow.solvers.pde import BurgersProblem, DarcyProblem, Multigrid, PseudoSpectral

ROOT = Path(__file__).resolve().parents[1]


def darcy_coefficients(n: int, size: int, seed: int = 0) -> Field:
    """Piecewise-constant 3/12 coefficients (smoothed noise thresholded at 0), float64."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, 1, size, size))
    for axis in (2, 3):  # a little smoothing gives blobs instead of salt and pepper
        g = g + np.roll(g, 1, axis) + np.roll(g, -1, axis)
    grid = Grid.uniform(x=(0.0, 1.0, size), y=(0.0, 1.0, size))
    return Field(torch.as_tensor(np.where(g >= 0, 12.0, 3.0)), grid, names="a")


def write_input(path: Path, field: Field, **extra) -> Path:
    ds = field.to_xarray(batch_dims=["sample"])
    ds = ds.assign_coords(sample=np.arange(100, 100 + field.shape[0]))  # not 0..n-1 on purpose
    for name, value in extra.items():
        ds[name] = value
    return save(ds, path)


@pytest.fixture
def darcy_file(tmp_path) -> Path:
    return write_input(tmp_path / "coeff.nc", darcy_coefficients(7, 17))


def read(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


# ---------------------------------------------------------- correct results
def test_darcy_equals_direct_multigrid_solves_of_the_same_chunks(darcy_file, tmp_path):
    out = solve_file("darcy", darcy_file, tmp_path / "u.nc", var="a", chunk=3,
                     options={"rtol": 1e-10})
    a = darcy_coefficients(7, 17)
    with xr.open_dataset(out) as ds:
        assert ds["u"].dims == ("sample", "x", "y") and ds.sizes["sample"] == 7
        np.testing.assert_array_equal(ds["sample"].values, np.arange(100, 107))
        np.testing.assert_array_equal(ds["x"].values, a.grid.coords["x"])
        for start in (0, 3, 6):  # chunks of 3, 3 and 1 samples
            ref = solve(DarcyProblem(a[start:start + 3], 1.0), Multigrid(rtol=1e-10))
            np.testing.assert_array_equal(ds["u"].values[start:start + 3],
                                          ref.u.values[:, 0].numpy())
        assert not ds["failed"].values.any() and ds.attrs["opflow_failed_samples"] == 0
        attrs = dict(ds.attrs)
    whole = solve(DarcyProblem(a, 1.0), Multigrid(rtol=1e-10)).u.values[:, 0].numpy()
    np.testing.assert_allclose(read(out)["u"].values, whole, rtol=1e-8, atol=1e-12)
    # provenance: version, command, settings and the input's checksum
    assert attrs["opflow_version"] == __import__("opflow").__version__
    assert attrs["opflow_command"].startswith("opflow solve darcy --data ")
    assert json.loads(attrs["opflow_settings"])["options"]["rtol"] == 1e-10
    inputs = json.loads(attrs["opflow_inputs"])
    assert inputs["input"]["sha256"] == hashlib.sha256(darcy_file.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coeff.nc", "u.nc"]  # no leftovers


def periodic_samples(n: int, size: int) -> Field:
    grid = Grid.uniform(x=(0.0, 1.0, size), periodic=("x",))
    x = torch.tensor(grid.coords["x"])
    amp = torch.linspace(0.5, 1.5, n, dtype=torch.float64)[:, None, None]
    values = amp * (torch.sin(2 * math.pi * x) + 0.5 * torch.cos(4 * math.pi * x))
    return Field(values, grid, names="u0")


def test_burgers_equals_direct_pseudospectral_solve(tmp_path):
    u0 = periodic_samples(5, 64)
    path = write_input(tmp_path / "u0.h5", u0)
    out = solve_file("burgers", path, tmp_path / "u1.nc", chunk=5,
                     options={"t_final": 0.2, "nu": 0.05})
    ref = solve(BurgersProblem(u0, nu=0.05, tspan=(0.0, 0.2)),
                PseudoSpectral(dt=0.2 / 1000, scheme="etdrk4"), saveat=[0.2])
    got = read(out)["u"].values
    np.testing.assert_array_equal(got, ref.u[0].values[:, 0].numpy())
    assert np.abs(got - u0.values[:, 0].numpy()).max() > 0.05  # it did evolve


def test_kuramoto_sivashinsky_equals_direct_pseudospectral_solve(tmp_path):
    from opflow.solvers.pde import KuramotoSivashinskyProblem

    grid = Grid.uniform(x=(0.0, 32 * math.pi, 64), periodic=("x",))
    x = torch.tensor(grid.coords["x"])
    amp = torch.linspace(0.5, 1.5, 3, dtype=torch.float64)[:, None, None]
    u0 = Field(amp * torch.cos(x / 16) * (1 + torch.sin(x / 16)), grid, names="u0")
    path = write_input(tmp_path / "ks.nc", u0)
    out = solve_file("kuramoto-sivashinsky", path, tmp_path / "ks1.nc", chunk=2,
                     options={"t_final": 2.0})
    ref = solve(KuramotoSivashinskyProblem(u0, tspan=(0.0, 2.0)),
                PseudoSpectral(dt=0.25, scheme="etdrk4"), saveat=[2.0])
    got = read(out)["u"].values
    np.testing.assert_allclose(got, ref.u[0].values[:, 0].numpy(), rtol=0, atol=1e-12)
    assert np.abs(got - u0.values[:, 0].numpy()).max() > 0.01  # it did evolve


def test_heat_matches_the_exact_solution_in_1d_and_2d(tmp_path):
    nu, t = 0.1, 0.3
    u0 = periodic_samples(3, 32)
    out = solve_file("heat", write_input(tmp_path / "h.nc", u0), tmp_path / "h1.nc", chunk=2,
                     options={"nu": nu, "t_final": t})
    x = torch.tensor(u0.grid.coords["x"])
    amp = torch.linspace(0.5, 1.5, 3, dtype=torch.float64)[:, None]
    exact = amp * (math.exp(-nu * (2 * math.pi) ** 2 * t) * torch.sin(2 * math.pi * x)
                   + 0.5 * math.exp(-nu * (4 * math.pi) ** 2 * t) * torch.cos(4 * math.pi * x))
    np.testing.assert_allclose(read(out)["u"].values, exact.numpy(), atol=1e-13)

    # 2-D, on a grid saved without opflow's periodic marks (taken as periodic)
    n = 16
    c = np.arange(n) / n * 2 * np.pi
    ds = xr.Dataset({"u0": (("sample", "x", "y"),
                            np.sin(c)[None, :, None] * np.cos(2 * c)[None, None, :].repeat(2, 0))},
                    coords={"x": c, "y": c})
    save(ds, tmp_path / "h2.nc")
    out = solve_file("heat", tmp_path / "h2.nc", tmp_path / "h2_out.nc", chunk=1,
                     options={"nu": nu, "t_final": t})
    np.testing.assert_allclose(read(out)["u"].values, ds["u0"].values * math.exp(-5 * nu * t),
                               atol=1e-13)


def test_nan_samples_are_reported_and_the_others_solved(tmp_path):
    a = darcy_coefficients(4, 9)
    values = a.values.clone()
    values[1, 0, 3, 3] = math.nan
    path = write_input(tmp_path / "a.nc", a.with_values(values))
    with pytest.warns(RuntimeWarning, match="1 of 4 samples"):
        out = solve_file("darcy", path, tmp_path / "u.nc", chunk=4)
    ds = read(out)
    np.testing.assert_array_equal(ds["failed"].values, [0, 1, 0, 0])
    assert np.isnan(ds["u"].values[1]).all() and ds.attrs["opflow_failed_samples"] == 1
    good = [0, 2, 3]
    ref = solve(DarcyProblem(a[good], 1.0), Multigrid()).u.values[:, 0].numpy()
    np.testing.assert_array_equal(ds["u"].values[good], ref)


# ------------------------------------------------------- resuming, atomicity
class Boom(Exception):
    pass


def test_an_interrupted_job_resumes_to_the_same_bytes(darcy_file, tmp_path, monkeypatch):
    out = tmp_path / "u.nc"
    solve_file("darcy", darcy_file, out, chunk=2)
    reference = out.read_bytes()
    out.unlink()

    from opflow.batch import problems

    calls = []
    real = problems.SolveTask.__call__

    def flaky(self, chunk):
        calls.append(chunk.sizes["sample"])
        if len(calls) == 3:
            raise Boom  # a crash after two finished chunks
        return real(self, chunk)

    monkeypatch.setattr(problems.SolveTask, "__call__", flaky)
    with pytest.raises(Boom):
        solve_file("darcy", darcy_file, out, chunk=2)
    assert not out.exists()
    parts = sorted(p.name for p in work_dir(out).glob("*.nc"))
    assert parts == ["000000000000-000000000002.nc", "000000000002-000000000004.nc"]
    # debris of a run killed while writing: temporaries of a dead process
    (work_dir(out) / ".000000000004-000000000006.nc.tmp-999999999-abcd1234").write_bytes(b"x")
    (tmp_path / ".u.nc.tmp-999999999-abcd1234").write_bytes(b"x")

    calls.clear()
    solve_file("darcy", darcy_file, out, chunk=2)
    assert calls == [2, 1]  # only the missing chunks were solved
    assert out.read_bytes() == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coeff.nc", "u.nc"]


def test_a_different_job_on_unfinished_parts_is_refused_unless_restarted(darcy_file, tmp_path,
                                                                         monkeypatch):
    out = tmp_path / "u.nc"
    from opflow.batch import problems

    def crash(self, chunk):
        raise Boom

    with monkeypatch.context() as m:
        m.setattr(problems.SolveTask, "__call__", crash)
        with pytest.raises(Boom):
            solve_file("darcy", darcy_file, out, chunk=2)
    assert work_dir(out).is_dir()
    with pytest.raises(InvalidArgumentError, match="--restart") as info:
        solve_file("darcy", darcy_file, out, chunk=2, options={"rtol": 1e-6})
    assert "settings.options.rtol: 1e-08 -> 1e-06" in str(info.value)
    assert info.value.argument == "out"
    write_input(darcy_file, darcy_coefficients(7, 17, seed=1))  # same name, new content
    with pytest.raises(InvalidArgumentError, match=r"inputs\.input: '[0-9a-f]{36}\.\.\. -> "):
        solve_file("darcy", darcy_file, out, chunk=2)
    solve_file("darcy", darcy_file, out, chunk=2, restart=True)
    fresh = solve_file("darcy", darcy_file, tmp_path / "fresh.nc", chunk=2)
    np.testing.assert_array_equal(read(out)["u"].values, read(fresh)["u"].values)


def _solve_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["solve", "darcy", "--data", str(data), "--vars", "a", "--out", str(out),
            "--chunk", "2", "--quiet", *extra]


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_file(tmp_path):
    data = write_input(tmp_path / "coeff.nc", darcy_coefficients(24, 65))
    out = tmp_path / "u.nc"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "opflow.batch", *_solve_argv(data, out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = work_dir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(parts.glob("0*.nc"))) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    finished = len(list(parts.glob("0*.nc")))
    # killed in the middle (a process that died by itself shows its error)
    assert not out.exists() and 2 <= finished < 12, (finished, err.decode()[-2000:])

    assert main(_solve_argv(data, out)) == 0
    resumed = out.read_bytes()
    out.unlink()
    assert main(_solve_argv(data, out)) == 0  # from scratch, uninterrupted
    assert out.read_bytes() == resumed


# ----------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors_before_any_work(darcy_file, tmp_path):
    out = tmp_path / "u.nc"
    with pytest.raises(UnknownVariableError, match="'coef'.*available.*'a'") as info:
        solve_file("darcy", darcy_file, out, var="coef")
    assert info.value.argument == "var"
    with pytest.raises(ShapeError, match="burgers") as info:
        solve_file("burgers", darcy_file, out, var="a")  # 2-D input for a 1-D problem
    assert info.value.argument == "var"
    with pytest.raises(UnknownVariableError, match="sample_dim"):
        solve_file("darcy", darcy_file, out, sample_dim="member")
    with pytest.raises(InvalidArgumentError, match="one of .*'burgers', 'darcy', 'heat'"):
        solve_file("poisson3d", darcy_file, out)
    with pytest.raises(InvalidArgumentError, match="existing directory") as info:
        solve_file("darcy", darcy_file, tmp_path / "missing" / "u.nc")
    assert info.value.argument == "out"
    for chunk in (0, -2):
        with pytest.raises(InvalidArgumentError, match="positive") as info:
            solve_file("darcy", darcy_file, out, chunk=chunk)
        assert info.value.argument == "chunk"
    with pytest.raises(UnknownVariableError, match="t_final"):
        solve_file("darcy", darcy_file, out, options={"t_final": 1.0})
    with pytest.raises(InvalidArgumentError, match="t_final"):
        solve_file("heat", write_input(tmp_path / "p.nc", periodic_samples(2, 8)), out,
                   options={"t_final": -1.0})
    with pytest.raises(FileNotFoundError):
        solve_file("darcy", tmp_path / "nope.nc", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coeff.nc", "p.nc"]


def test_a_disk_without_room_for_the_output_is_refused_before_work(darcy_file, tmp_path,
                                                                   monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(InvalidArgumentError, match="MiB free") as info:
        solve_file("darcy", darcy_file, tmp_path / "u.nc")  # needs 2 x 7 x 17^2 x 8 bytes
    assert info.value.argument == "out" and not work_dir(tmp_path / "u.nc").exists()


def test_command_line_errors_are_one_line_and_exit_1(darcy_file, tmp_path, capsys):
    assert main(_solve_argv(darcy_file, tmp_path / "u.nc", "--vars", "b")) == 1
    err = capsys.readouterr().err
    assert err.startswith("opflow solve: error: argument `--vars`") and err.count("\n") == 1
    assert main(_solve_argv(darcy_file, tmp_path / "u.nc", "--chunk", "0")) == 1
    assert "argument `--chunk`" in capsys.readouterr().err
    assert main(["solve", "darcy", "--data", str(darcy_file), "--out", str(tmp_path / "u.nc"),
                 "--quiet", "--rtol", "1e-9", "--option", "forcing=2.0"]) == 0
    ds = read(tmp_path / "u.nc")
    assert json.loads(ds.attrs["opflow_settings"])["options"]["forcing"] == 2.0
    single = solve_file("darcy", darcy_file, tmp_path / "one.nc", options={"rtol": 1e-9})
    # float32 values from separate solves: allow a few ulp of the field's scale
    want = 2 * read(single)["u"].values
    np.testing.assert_allclose(ds["u"].values, want, rtol=1e-5, atol=1e-6 * abs(want).max())


def test_run_job_checks_what_a_task_returns(darcy_file, tmp_path):
    with xr.open_dataset(darcy_file) as ds:  # lazily indexed, no dask: also accepted
        with pytest.raises(InvalidArgumentError, match="3 samples") as info:
            run_job(ds, lambda c: c.isel(sample=slice(0, 1)), tmp_path / "o.nc",
                    variables=["a"], chunk=3)
        assert info.value.argument == "task"


# -------------------------------------------------------------- schedulers
def test_threads_with_two_workers_write_the_same_file_as_one(darcy_file, tmp_path):
    one = solve_file("darcy", darcy_file, tmp_path / "one.nc", chunk=2, scheduler="sync")
    two = solve_file("darcy", darcy_file, tmp_path / "two.nc", chunk=2, scheduler="threads",
                     workers=2)
    a, b = read(one), read(two)
    np.testing.assert_array_equal(a["u"].values, b["u"].values)
    assert {k: v for k, v in a.attrs.items() if k != "opflow_command"} == \
        {k: v for k, v in b.attrs.items() if k != "opflow_command"}


@pytest.mark.slow  # starts worker processes that import torch
@pytest.mark.parametrize("kind", ["processes", "distributed"])
def test_process_and_cluster_schedulers_equal_threads(darcy_file, tmp_path, kind):
    pytest.importorskip("distributed")
    out = tmp_path / "out.nc"
    solve_file("darcy", darcy_file, out, chunk=2, scheduler="threads")
    reference = out.read_bytes()
    out.unlink()
    solve_file("darcy", darcy_file, out, chunk=2, scheduler=kind, workers=2)
    assert out.read_bytes() == reference  # the command attribute leaves out the scheduler


def test_a_running_cluster_at_an_address_gives_the_threads_result(darcy_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    ref = read(solve_file("darcy", darcy_file, tmp_path / "t.nc", chunk=2))
    # worker threads in this process: quick to start (worker processes: the slow test above)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        got = read(solve_file("darcy", darcy_file, tmp_path / "d.nc", chunk=2,
                              address=cluster.scheduler_address))
    np.testing.assert_array_equal(got["u"].values, ref["u"].values)
    np.testing.assert_array_equal(got["sample"].values, ref["sample"].values)


# ------------------------------------------------------------------ predict
class Stencil(torch.nn.Module):
    """A 3-point periodic convolution: the smallest model with a config to rebuild from."""

    def __init__(self, name: str = "stencil", in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        self.config = {"name": name, "in_channels": in_channels, "out_channels": out_channels}
        self.conv = torch.nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")

    def forward(self, a: Field) -> Field:
        return Field(self.conv(a.values), a.grid, names="u")


def test_predict_uses_the_same_machinery_and_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    from opflow.train import Trainer, commands

    a = periodic_samples(10, 16).with_values(periodic_samples(10, 16).values.float(), names="a")
    Trainer(Stencil(), epochs=1, out_dir=tmp_path / "run", progress=False, device="cpu",
            batch_size=5).fit((a, a.with_values(2 * a.values, names="u")))
    ckpt, data = tmp_path / "run" / "best.pt", write_input(tmp_path / "a.nc", a)
    build = lambda config: Stencil(**config)  # noqa: E731
    out = tmp_path / "pred.nc"
    commands.predict_file(ckpt, data, out, chunk=3, variables=["a"], builder=build)
    reference = out.read_bytes()
    out.unlink()

    real, calls = Trainer.predict, []

    def flaky(self, x):
        calls.append(x.shape[0])
        if len(calls) == 3:
            raise Boom
        return real(self, x)

    monkeypatch.setattr(Trainer, "predict", flaky)
    with pytest.raises(Boom):
        commands.predict_file(ckpt, data, out, chunk=3, variables=["a"], builder=build)
    assert not out.exists() and len(list(work_dir(out).glob("0*.nc"))) == 2
    calls.clear()
    commands.predict_file(ckpt, data, out, chunk=3, variables=["a"], builder=build)
    assert calls == [3, 1] and out.read_bytes() == reference  # only the missing chunks ran
    with xr.open_dataset(out) as ds:
        inputs = json.loads(ds.attrs["opflow_inputs"])
        assert inputs["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        want = real(Trainer.from_checkpoint(ckpt, build, device="cpu"), a)
        # float32 predictions in other chunk sizes: a few ulp of the output's scale apart
        want = want.values[:, 0].numpy()
        np.testing.assert_allclose(ds["u"].values, want, rtol=1e-5, atol=1e-6 * abs(want).max())


def test_a_registered_problem_reads_its_own_default_variable(tmp_path, monkeypatch):
    """The default input variable lives on the ProblemSpec, so a problem registered by a
    user needs no entry elsewhere (it used to be a separate dict: KeyError)."""
    import dataclasses

    from opflow import catalog
    from opflow.batch.problems import PROBLEMS

    monkeypatch.setattr(catalog, "_CATALOG", dict(catalog._CATALOG))   # undone after the test
    catalog.register_solver(dataclasses.replace(PROBLEMS["heat"], name="heat-v", variable="v"))
    assert PROBLEMS["darcy"].variable == "a" and PROBLEMS["heat"].variable == "u0"
    u0 = periodic_samples(2, 16)
    path = write_input(tmp_path / "v.nc", Field(u0.values, u0.grid, names="v"))
    options = {"nu": 0.1, "t_final": 0.1}
    mine = solve_file("heat-v", path, tmp_path / "v1.nc", chunk=2, options=options)
    ref = solve_file("heat", path, tmp_path / "v2.nc", chunk=2, options=options, var="v")
    np.testing.assert_array_equal(read(mine)["u"].values, read(ref)["u"].values)
    with pytest.raises(UnknownVariableError, match="var"):
        solve_file("heat", path, tmp_path / "v3.nc", chunk=2)        # heat's default is u0
