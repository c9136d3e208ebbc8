"""Triton kernels against the torch references: spectral convolution (forward,
backward, gradcheck) and the multigrid smoother / transfer kernels.

By default they run on the CPU through Triton's interpreter: Triton decides at
kernel definition whether to interpret, so ``TRITON_INTERPRET=1`` is set here
before the kernel modules are first imported (opflow itself never imports them
eagerly); a kernel module that an earlier test loaded without the interpreter
is reloaded. With ``OPFLOW_TRITON_DEVICE=cuda`` (``benchmarks/gpu_check.sh``)
the same tests run the compiled kernels on the GPU instead; the tests about
the interpreter and the CPU are then skipped.
"""

import importlib
import os
import subprocess
import sys

import pytest
import torch

DEVICE = os.environ.get("OPFLOW_TRITON_DEVICE", "cpu")
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
elif not torch.cuda.is_available():
    pytest.skip(f"OPFLOW_TRITON_DEVICE={DEVICE} but CUDA is not available",
                allow_module_level=True)
pytest.importorskip("triton")
cpu_only = pytest.mark.skipif(DEVICE != "cpu", reason="about the interpreter on the CPU")

import opflow.kernels as K  # noqa: E402
import opflow.solvers.pde.multigrid.operators as O  # noqa: E402
from opflow.errors import InvalidArgumentError, ShapeError  # noqa: E402
from opflow.kernels import backend, spectral_conv, weight_shape  # noqa: E402
from opflow.kernels.spectral_conv import choose_backend  # noqa: E402


def _load(name):
    module = backend.triton_module(name)
    if module.INTERPRETED != (DEVICE == "cpu"):  # loaded earlier in the other mode
        module = importlib.reload(module)
    return module


TS = _load("triton_spectral")
TM = _load("triton_multigrid")


@pytest.fixture(autouse=True)
def _on_device():
    """New tensors of every test here live on ``DEVICE`` (no device mode on the CPU)."""
    if DEVICE == "cpu":
        yield
        return
    torch.set_default_device(DEVICE)
    yield
    torch.set_default_device(None)

# relative tolerances (max error / max reference value) per dtype: the kernel
# sums the channels in another order than the batched products of the reference
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}

SPECTRAL_CASES = [
    ((16,), (5,)),
    ((15,), (8,)),          # odd grid, all modes of the half spectrum
    ((12, 10), (3, 4)),
    ((8, 8), (4, 5)),       # Nyquist kept on both axes (2 m = n, m = n / 2 + 1)
    ((9, 7), (4, 4)),
    ((8, 6, 10), (2, 3, 4)),
]


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_kernels_are_interpreted_on_the_cpu_only():
    assert TS.INTERPRETED == TM.INTERPRETED == (DEVICE == "cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial,modes", SPECTRAL_CASES)
def test_spectral_forward_backward_match_fft(spatial, modes, dtype):
    shape = weight_shape(3, 4, modes)
    x = torch.randn(2, 3, *spatial, dtype=dtype, requires_grad=True)
    wr = torch.randn(shape, dtype=dtype, requires_grad=True)
    wi = torch.randn(shape, dtype=dtype, requires_grad=True)
    y = spectral_conv(x, (wr, wi), backend="triton")
    y_ref = spectral_conv(x, (wr, wi), backend="fft")
    assert y.shape == y_ref.shape and y.dtype == dtype
    assert _rel(y, y_ref) < RTOL[dtype]
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, wr, wi), g)
    grads_ref = torch.autograd.grad(y_ref, (x, wr, wi), g)
    for got, want in zip(grads, grads_ref):
        assert _rel(got, want) < RTOL[dtype]


def test_spectral_fewer_modes_bias_and_complex_weight():
    x = torch.randn(2, 3, 12, 10)
    w = torch.randn(weight_shape(3, 2, (4, 5)), dtype=torch.complex64)
    bias = torch.randn(2)
    y = spectral_conv(x, w, (2, 3), bias=bias, backend="triton")
    y_ref = spectral_conv(x, w, (2, 3), bias=bias, backend="fft")
    assert _rel(y, y_ref) < 1e-5


def test_spectral_noncontiguous_input():
    x = torch.randn(3, 2, 10, 12).transpose(-1, -2)  # (B, C, 12, 10), strided
    w = torch.randn(weight_shape(2, 2, (3, 4)), dtype=torch.complex64)
    assert _rel(spectral_conv(x, w, backend="triton"), spectral_conv(x, w, backend="fft")) < 1e-5


def test_spectral_gradcheck_float64():
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    wr = torch.randn(weight_shape(2, 1, (1, 2)), dtype=torch.float64, requires_grad=True)
    wi = torch.randn_like(wr, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: spectral_conv(a, (b, c), backend="triton"), (x, wr, wi))


def test_fno_train_step_with_triton_backend_matches_fft():
    from opflow.operators import FNO

    model = FNO(1, 1, (3, 3), width=4, n_layers=2, projection_channels=8)
    x, target = torch.randn(2, 1, 10, 10), torch.randn(2, 1, 10, 10)

    def grads(backend):
        model.zero_grad(set_to_none=True)
        with K.use(backend):
            (model(x) - target).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    for got, want in zip(grads("triton"), grads("fft")):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max() + 1e-7


def test_spectral_mix_is_zero_outside_kept_modes():
    xf = torch.fft.rfftn(torch.randn(1, 2, 10, 9), dim=(2, 3))
    w = torch.randn(weight_shape(2, 3, (2, 3)))
    yf = TS.spectral_mix(xf, w, w, (2, 3))
    kept = torch.zeros(10, 5, dtype=torch.bool)
    kept[:2, :3] = kept[-2:, :3] = True
    assert yf[..., ~kept].abs().max() == 0 and yf[..., kept].abs().min() > 0


def test_spectral_rejects_unsupported_dtype():
    x = torch.randn(1, 2, 8, dtype=torch.bfloat16)
    w = torch.randn(weight_shape(2, 2, (3,)), dtype=torch.complex64)
    with pytest.raises(InvalidArgumentError, match="x"):
        spectral_conv(x, w, backend="triton")


@cpu_only
def test_auto_never_picks_triton_on_cpu():
    x = torch.randn(2, 3, 64, 64)
    assert choose_backend(x, (12, 12)) != "triton"
    with K.use("auto"):
        assert choose_backend(x, (32, 33)) == "fft"
    with K.use("triton"):
        assert choose_backend(x, (12, 12)) == "triton"


def test_missing_triton_gives_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "triton_available", lambda: False)
    with pytest.raises(InvalidArgumentError, match="triton"):
        K.use("triton")
    with pytest.raises(InvalidArgumentError, match="pip install triton"):
        backend.triton_module("triton_spectral")
    assert K.current_backend() == "auto"


def _run(code):
    env = {**os.environ, "TRITON_INTERPRET": "0", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


@pytest.mark.slow
@cpu_only
def test_interpreter_switch_and_cpu_error_in_fresh_process():
    # triton and opflow imported first, the switch set later: only kernels
    # loaded after it are interpreted; a compiled kernel refuses CPU tensors
    _run("import os, pytest, torch, triton, opflow\n"
         "from opflow.errors import InvalidArgumentError\n"
         "from opflow.kernels import spectral_conv, triton_module\n"
         "assert not triton_module('triton_spectral').INTERPRETED\n"
         "w = torch.ones(2, 2, 3, dtype=torch.complex64)\n"
         "with pytest.raises(InvalidArgumentError, match='TRITON_INTERPRET'):\n"
         "    spectral_conv(torch.ones(1, 2, 8), w, backend='triton')\n"
         "os.environ['TRITON_INTERPRET'] = '1'\n"
         "assert triton_module('triton_multigrid').INTERPRETED\n")


@cpu_only
def test_opflow_works_without_triton_in_fresh_process():
    _run("import sys\n"
         "sys.modules['triton'] = None  # import triton now fails\n"
         "import pytest, torch, opflow\n"
         "import opflow.kernels as K\n"
         "from opflow.errors import InvalidArgumentError\n"
         "assert not K.triton_available() and 'triton' in K.BACKENDS\n"
         "w = torch.ones(2, 2, 3, dtype=torch.complex64)\n"
         "assert K.spectral_conv(torch.ones(1, 2, 8), w).shape == (1, 2, 8)\n"
         "with pytest.raises(InvalidArgumentError, match='pip install triton'):\n"
         "    K.use('triton')\n"
         "with pytest.raises(InvalidArgumentError, match='pip install triton'):\n"
         "    K.spectral_conv(torch.ones(1, 2, 8), w, backend='triton')\n")


# ----------------------------------------------------------------- multigrid
MG_CASES = [
    (("D", "D"), (9, 17)),
    (("N", "P"), (9, 16)),
    (("P", "N"), (8, 17)),
    (("P", "P"), (8, 8)),
]
MG_RTOL = {torch.float32: 1e-6, torch.float64: 1e-13}


def _problem(kinds, shape, dtype):
    a = torch.exp(torch.randn(3, *shape, dtype=dtype))
    coef, diag = O.stencil(O.face_coefficients(a, kinds), (0.1, 0.2), kinds)
    u = torch.randn(3, *shape, dtype=dtype)
    f = torch.randn(1, *shape, dtype=dtype)  # broadcast over the batch
    free = torch.ones(shape, dtype=dtype)
    for d, kind in enumerate(kinds):
        if kind == "D":
            free.narrow(d, 0, 1).zero_()
            free.narrow(d, shape[d] - 1, 1).zero_()
    return u, f, coef, diag, free


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kinds,shape", MG_CASES)
def test_multigrid_kernels_match_torch(kinds, shape, dtype):
    u, f, coef, diag, free = _problem(kinds, shape, dtype)
    r_ref = O.residual(u, f, coef, diag, kinds)
    assert _rel(free * TM.residual(u, f, coef, diag, kinds), free * r_ref) < MG_RTOL[dtype]

    weight = 0.8 * free / diag
    u_ref, u_tri = u.clone(), u.clone()
    assert TM.jacobi(u_tri, f, coef, diag, kinds, weight, 3) == O.jacobi(
        u_ref, f, coef, diag, kinds, weight, 3)
    assert _rel(u_tri, u_ref) < MG_RTOL[dtype]

    red, black = O.red_black(shape, dtype, "cpu")
    first, second = red * free / diag, black * free / diag
    u_ref, u_tri = u.clone(), u.clone()
    O.rbgs(u_ref, f, coef, diag, kinds, first, second, 2)
    TM.rbgs(u_tri, f, coef, diag, kinds, first, second, 2)
    assert _rel(u_tri, u_ref) < MG_RTOL[dtype]
    assert torch.equal(u_tri * (1 - free), u * (1 - free))  # fixed nodes never move

    coarse = O.restrict(r_ref, kinds)
    assert _rel(TM.restrict(r_ref, kinds), coarse) < MG_RTOL[dtype]
    assert _rel(TM.prolong(coarse, kinds), O.prolong(coarse, kinds)) < MG_RTOL[dtype]


def test_rbgs_reduces_residual_like_torch():
    kinds, shape = ("D", "D"), (13, 13)
    u, f, coef, diag, free = _problem(kinds, shape, torch.float64)
    red, black = O.red_black(shape, torch.float64, "cpu")
    u_tri = u * (1 - free)
    before = (free * O.residual(u_tri, f, coef, diag, kinds)).norm()
    TM.rbgs(u_tri, f, coef, diag, kinds, red * free / diag, black * free / diag, 3)
    after = (free * O.residual(u_tri, f, coef, diag, kinds)).norm()
    assert after < 0.5 * before


def test_multigrid_bad_input():
    u = torch.randn(2, 9, 9)
    coef, diag = O.stencil(O.face_coefficients(torch.ones(1, 9, 9), "DD"), (1.0, 1.0), "DD")
    with pytest.raises(InvalidArgumentError, match="kinds"):
        TM.residual(u, u, coef, diag, ("D", "D", "D"))
    with pytest.raises(ShapeError, match="r"):
        TM.restrict(torch.randn(2, 8, 9), ("D", "D"))
    with pytest.raises(InvalidArgumentError, match="u"):
        TM.residual(u.half(), u.half(), coef, diag, "DD")
    with pytest.raises(ShapeError, match="f"):
        TM.residual(u, torch.randn(2, 9, 8), coef, diag, "DD")
    with pytest.raises(InvalidArgumentError, match="u"):
        TM.jacobi(u.transpose(1, 2), u, coef, diag, "DD", diag, 1)


@pytest.mark.slow
@cpu_only
def test_kernels_compile_for_a_cuda_target_without_a_gpu():
    # ahead-of-time compilation (Triton IR -> PTX -> cubin for sm_90, fp32):
    # catches code that the interpreter accepts but the compiler rejects
    _run("import triton\n"
         "from triton.backends.compiler import GPUTarget\n"
         "from triton.compiler import ASTSource\n"
         "from opflow.kernels import triton_module\n"
         "ts, tm = triton_module('triton_spectral'), triton_module('triton_multigrid')\n"
         "assert not ts.INTERPRETED\n"
         "def build(fn, constexprs):\n"
         "    sig = {n: 'constexpr' if n in constexprs else ('*fp32' if n.endswith('_ptr')\n"
         "           else 'i32') for n in fn.arg_names}\n"
         "    target = GPUTarget('cuda', 90, 32)\n"
         "    k = triton.compile(ASTSource(fn, sig, constexprs), target=target)\n"
         "    assert '.entry' in k.asm['ptx']\n"
         "build(ts._contract_kernel, {'CONJ_L': True, 'CONJ_R': False, 'BLOCK_C': 16,\n"
         "                            'BLOCK_K': 64})\n"
         "blocks = {'BLOCK_I': 16, 'BLOCK_J': 32}\n"
         "for mode in (0, 1, 2):\n"
         "    build(tm._smooth_kernel, {'KIND0': 0, 'KIND1': 1, 'MODE': mode, **blocks})\n"
         "build(tm._restrict_kernel, {'KIND0': 1, 'KIND1': 2, **blocks})\n"
         "build(tm._prolong_kernel, {'KIND0': 2, 'KIND1': 0, **blocks})\n")


@pytest.mark.parametrize("bc, smoother", [("dirichlet", "rbgs"), ("periodic", "jacobi"),
                                          ("neumann", "rbgs")])
def test_multigrid_solver_on_triton_kernels_matches_torch(bc, smoother):
    """The classical solver's cycles run on the fused kernels under use("triton")
    (interpreted here) and converge to the same solution as the torch reference."""
    from opflow import Field, Grid, solve
    from opflow.solvers.pde import Multigrid, PoissonProblem
    from opflow.solvers.pde.multigrid.hierarchy import cycle_kernels

    n = 9
    periodic = ("x", "y") if bc == "periodic" else ()
    g = Grid.uniform(x=(0, 1, n - 1 if periodic else n), y=(0, 1, n - 1 if periodic else n),
                     periodic=periodic)
    x, y = g.mesh(torch.float64)
    f = torch.cos(2 * torch.pi * x) * torch.sin(2 * torch.pi * y) + (0 if periodic else 1.0)
    if bc == "neumann":
        f = torch.cos(torch.pi * x) * torch.cos(2 * torch.pi * y)
    prob = PoissonProblem(Field(f[None], g), bc=bc)
    alg = Multigrid(smoother=smoother, rtol=1e-10)
    with K.use("torch"):
        assert cycle_kernels(2, "cpu") is O
        reference = solve(prob, alg)
    with K.use("triton"):
        assert cycle_kernels(2, "cpu") is TM and cycle_kernels(3, "cpu") is O
        fused = solve(prob, alg)
    assert fused.success and reference.success
    assert _rel(fused.u.values, reference.u.values) < 1e-8
