"""Spectral convolution kernel: FFT and truncated-DFT paths against a naive DFT,
against each other, gradients, backend selection and input checks."""

import math

import pytest
import torch

import opflow.kernels as K
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.kernels import dft, spectral_conv, weight_shape
from opflow.kernels.spectral_conv import choose_backend

BACKENDS = ["fft", "dft"]

# (grid shape, modes): odd sizes, Nyquist kept on the last axis (m = n/2 + 1)
# and on a leading axis (2 m = n), 1-D to 3-D
CASES = [
    ((16,), (5,)),
    ((16,), (9,)),
    ((15,), (8,)),
    ((12, 10), (3, 4)),
    ((8, 8), (4, 5)),
    ((9, 7), (4, 4)),
    ((8, 6, 10), (2, 3, 4)),
    ((6, 6, 6), (3, 3, 4)),
]


def naive_spectral_conv(x, wr, wi, modes):
    """Definition by explicit sums of complex exponentials (float64)."""
    x = x.double()
    w = torch.complex(wr.double(), wi.double())
    _, _, *n = x.shape
    d = len(n)
    freqs = [torch.cat([torch.arange(m), torch.arange(-m, 0)]) for m in modes[:-1]]
    freqs.append(torch.arange(modes[-1]))
    ks = torch.meshgrid(*freqs, indexing="ij")
    ns = torch.meshgrid(*[torch.arange(s) for s in n], indexing="ij")
    phase = sum(ks[j].reshape(*ks[j].shape, *(1,) * d).double() * ns[j].double() / n[j]
                for j in range(d))
    e = torch.exp(-2j * math.pi * phase)  # (*K, *N)
    kd, nd = "klm"[:d], "xyz"[:d]
    xk = torch.einsum(f"bi{nd},{kd}{nd}->bi{kd}", x.to(torch.complex128), e)
    yk = torch.einsum(f"bi{kd},io{kd}->bo{kd}", xk, w)
    last = ks[-1]
    twice = ~((last == 0) | ((n[-1] % 2 == 0) & (last == n[-1] // 2)))
    weight = 1.0 + twice.double()  # the other half of a real signal's spectrum
    return torch.einsum(f"bo{kd},{kd}{nd}->bo{nd}", yk * weight, e.conj()).real / math.prod(n)


def _weights(ci, co, modes, dtype=torch.float64, requires_grad=False):
    shape = weight_shape(ci, co, modes)
    return (torch.randn(shape, dtype=dtype, requires_grad=requires_grad),
            torch.randn(shape, dtype=dtype, requires_grad=requires_grad))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, modes", CASES)
def test_matches_naive_dft(backend, shape, modes):
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    wr, wi = _weights(3, 2, modes)
    out = spectral_conv(x, (wr, wi), backend=backend)
    ref = naive_spectral_conv(x, wr, wi, modes)
    assert out.shape == (2, 2, *shape) and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, modes, b, c", [((64, 64), (12, 12), 2, 8), ((128,), (16,), 4, 8),
                                               ((16, 12, 10), (4, 4, 3), 2, 4)])
def test_fft_and_dft_agree_float32(shape, modes, b, c):
    x = torch.randn(b, c, *shape)
    w = torch.complex(*_weights(c, c, modes, torch.float32)) * 0.1
    a = spectral_conv(x, w, backend="fft")
    d = spectral_conv(x, w, backend="dft")
    scale = a.abs().max()
    assert float((a - d).abs().max() / scale) < 2e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, modes", [((8,), (3,)), ((6, 8), (2, 3)), ((4, 4, 6), (1, 2, 2))])
def test_gradcheck(backend, shape, modes):
    x = torch.randn(2, 2, *shape, dtype=torch.float64, requires_grad=True)
    wr, wi = _weights(2, 3, modes, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def fn(x, wr, wi, bias):
        return spectral_conv(x, (wr, wi), bias=bias, backend=backend)

    assert torch.autograd.gradcheck(fn, (x, wr, wi, bias))


def test_gradients_agree_between_backends():
    x = torch.randn(3, 4, 32, 24, requires_grad=True)
    w = (torch.randn(4, 5, 16, 9) * 0.1).to(torch.complex64).requires_grad_()
    g = torch.randn(3, 5, 32, 24)
    grads = []
    for backend in BACKENDS:
        x.grad = w.grad = None
        spectral_conv(x, w, backend=backend).backward(g)
        grads.append((x.grad.clone(), w.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_is_added_everywhere(backend):
    x = torch.randn(2, 3, 16, 12, dtype=torch.float64)
    wr, wi = _weights(3, 4, (4, 5))
    bias = torch.randn(4, dtype=torch.float64)
    plain = spectral_conv(x, (wr, wi), backend=backend)
    out = spectral_conv(x, (wr, wi), bias=bias, backend=backend)
    torch.testing.assert_close(out, plain + bias[:, None, None], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_modes_select_the_low_block_of_the_weight(backend):
    x = torch.randn(2, 2, 12, 10, dtype=torch.float64)
    wr, wi = _weights(2, 3, (5, 6))
    sub = [torch.cat([w[:, :, :3], w[:, :, -3:]], dim=2)[..., :4] for w in (wr, wi)]
    torch.testing.assert_close(spectral_conv(x, (wr, wi), (3, 4), backend=backend),
                               naive_spectral_conv(x, *sub, (3, 4)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resolution_consistency_on_band_limited_input(backend):
    """A band-limited function sampled on 32 and on 64 points gives samples of
    the same output function."""
    def sample(n):
        t = torch.arange(n, dtype=torch.float64) / n
        u = torch.sin(2 * math.pi * t) + 0.5 * torch.cos(2 * math.pi * 5 * t + 0.3)
        return torch.stack([u, u**2])[None]  # 2 channels, frequencies <= 10

    wr, wi = _weights(2, 2, (12,))
    coarse = spectral_conv(sample(32), (wr, wi), backend=backend)
    fine = spectral_conv(sample(64), (wr, wi), backend=backend)
    torch.testing.assert_close(fine[..., ::2], coarse, rtol=1e-10, atol=1e-10)


def test_backend_selection_and_override():
    x = torch.randn(1, 1, 64, 64)
    assert K.current_backend() == "auto"
    assert choose_backend(x, (12, 12)) == "dft"  # CPU, few modes
    assert choose_backend(torch.randn(1, 1, 1024), (512,)) == "fft"  # most of the spectrum
    with K.use("fft"):
        assert K.current_backend() == "fft"
        assert choose_backend(x, (12, 12)) == "fft"
        assert choose_backend(x, (12, 12), backend="dft") == "dft"  # argument wins
    assert K.current_backend() == "auto"
    previous = K.use("torch")
    try:
        assert choose_backend(x, (12, 12)) == "fft"  # the torch reference
    finally:
        with previous:
            pass
    assert K.current_backend() == "auto"
    with pytest.raises(InvalidArgumentError, match="backend"):
        K.use("triton-please")
    with pytest.raises(InvalidArgumentError, match="backend"):
        spectral_conv(x, torch.zeros(1, 1, 4, 3, dtype=torch.complex64), backend="cuda")


def test_dft_matrices_are_cached_and_exact():
    a = dft.rdft_matrix(16, 5)
    assert dft.rdft_matrix(16, 5) is a
    x = torch.randn(3, 16, dtype=torch.float64)
    ref = torch.fft.rfft(x)[:, :5]
    f = dft.rdft_matrix(16, 5, dtype=torch.float64)
    out = x @ f.T
    torch.testing.assert_close(out[:, :5], ref.real)
    torch.testing.assert_close(out[:, 5:], ref.imag)
    c, s = dft.trig_matrices(16, 3, dtype=torch.float64)
    full = torch.fft.fft(x)[:, dft.kept_frequencies(3, last=False) % 16]
    torch.testing.assert_close(x @ c.T, full.real)
    torch.testing.assert_close(-(x @ s.T), full.imag)
    dft.clear_cache()
    assert dft.rdft_matrix(16, 5) is not a


def test_bad_inputs_raise_opflow_errors():
    w = torch.zeros(2, 3, 8, 5, dtype=torch.complex64)
    with pytest.raises(ShapeError, match="weight"):
        spectral_conv(torch.randn(1, 4, 16, 16), w)  # channels
    with pytest.raises(ShapeError, match="weight"):
        spectral_conv(torch.randn(1, 2, 16), w)  # 1-D input, 2-D weight
    with pytest.raises(ShapeError, match="x"):
        spectral_conv(torch.randn(2, 16), w)
    with pytest.raises(InvalidArgumentError, match="modes"):
        spectral_conv(torch.randn(1, 2, 6, 16), w)  # grid too coarse for 4 modes
    with pytest.raises(InvalidArgumentError, match="modes"):
        spectral_conv(torch.randn(1, 2, 16, 16), w, modes=(5, 5))  # more than the weight
    with pytest.raises(InvalidArgumentError, match="x"):
        spectral_conv(torch.randn(1, 2, 16, 16, dtype=torch.complex64), w)
    with pytest.raises(InvalidArgumentError, match="weight"):
        spectral_conv(torch.randn(1, 2, 16, 16), w.real)  # real without its pair
    with pytest.raises(ShapeError, match="weight"):
        spectral_conv(torch.randn(1, 2, 16, 16), (w.real, w.imag[..., :4]))
    with pytest.raises(ShapeError, match="bias"):
        spectral_conv(torch.randn(1, 2, 16, 16), w, bias=torch.zeros(2))
