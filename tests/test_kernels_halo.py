"""Halo padding against ``F.pad`` (values and gradients), and MgNO with the
fused padding against MgNO with the reference (backend "torch")."""

import pytest
import torch
from torch.nn import functional as F

import opflow.kernels as K
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.kernels import halo_pad
from opflow.operators.mgno import MgNO


@pytest.mark.parametrize("mode", ["circular", "reflect"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 6), (1, 2, 3, 4, 5), (2, 2)])
def test_halo_pad_matches_f_pad(shape, mode):
    ndim = min(len(shape) - 2, 3) if len(shape) > 2 else 1
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    y = halo_pad(x, ndim, mode)
    y_ref = F.pad(x, (1, 1) * ndim, mode=mode) if len(shape) > 2 else \
        F.pad(x[None], (1, 1), mode=mode)[0]
    assert torch.equal(y, y_ref)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx_ref,) = torch.autograd.grad(y_ref, x, g)
    assert torch.allclose(gx, gx_ref, rtol=0, atol=1e-14)


def test_halo_pad_gradcheck_and_reference_backend():
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: halo_pad(t, 2, "circular"), (x,))
    assert halo_pad(x, 2, "reflect", backend="torch").grad_fn.name().startswith("Reflection")


def test_halo_pad_bad_input():
    with pytest.raises(InvalidArgumentError, match="mode"):
        halo_pad(torch.randn(1, 4), 1, "replicate")
    with pytest.raises(InvalidArgumentError, match="ndim"):
        halo_pad(torch.randn(1, 4), 4, "circular")
    with pytest.raises(ShapeError, match="x"):
        halo_pad(torch.randn(1, 1, 1), 1, "reflect")


@pytest.mark.parametrize("padding,ndim", [("circular", 2), ("reflect", 2), ("circular", 1)])
def test_mgno_fused_padding_matches_reference(padding, ndim):
    model = MgNO(2, 1, levels=3, width=6, n_layers=2, ndim=ndim, padding=padding).double()
    x = torch.randn(3, 2, *(16,) * ndim, dtype=torch.float64)
    target = torch.randn(3, 1, *(16,) * ndim, dtype=torch.float64)

    def run():
        model.zero_grad(set_to_none=True)
        out = model(x)
        ((out - target) ** 2).mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    out, grads = run()
    with K.use("torch"):
        out_ref, grads_ref = run()
    assert (out - out_ref).abs().max() <= 1e-5 * out_ref.abs().max()
    assert len(grads) == len(grads_ref)
    for g, g_ref in zip(grads, grads_ref):
        assert (g - g_ref).abs().max() <= 1e-5 * g_ref.abs().max()
