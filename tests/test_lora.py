"""LoRA adapters: identity at start, merge/unmerge, frozen base, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from opflow.errors import InvalidArgumentError
from opflow.operators import FNO, DeepONet
from opflow.operators.lora import LoRA, add_lora, lora_layers, merge_lora, remove_lora, unmerge_lora

LAYERS = [
    (lambda: nn.Linear(6, 5), (3, 4, 6)),
    (lambda: nn.Conv1d(6, 5, 1), (3, 6, 7)),
    (lambda: nn.Conv2d(6, 5, kernel_size=(1, 1)), (3, 6, 4, 5)),
]


def _trained(layer: LoRA) -> LoRA:
    """Give the adapter a non-zero update (B is zero at construction)."""
    with torch.no_grad():
        layer.lora_B.normal_(generator=torch.Generator().manual_seed(1))
    return layer


@pytest.mark.parametrize("make, shape", LAYERS)
def test_identity_at_init(make, shape):
    torch.manual_seed(0)
    base = make().double()
    x = torch.randn(shape, dtype=torch.float64)
    before = base(x)
    layer = LoRA(base, rank=2)
    assert torch.equal(layer(x), before)
    assert torch.count_nonzero(layer.lora_A) > 0 and torch.count_nonzero(layer.lora_B) == 0


@pytest.mark.parametrize("make, shape", LAYERS)
def test_update_is_low_rank_product(make, shape):
    """Unmerged output equals the base layer with weight W + (alpha/r) B A, built by hand."""
    torch.manual_seed(0)
    base = make().double()
    layer = _trained(LoRA(base, rank=3, alpha=6.0))
    x = torch.randn(shape, dtype=torch.float64)
    ref = make().double()
    with torch.no_grad():
        ref.weight.copy_(base.weight + 2.0 * (layer.lora_B @ layer.lora_A).view(base.weight.shape))
        ref.bias.copy_(base.bias)
    torch.testing.assert_close(layer(x), ref(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, shape", LAYERS)
def test_merge_matches_unmerged_and_unmerge_restores(make, shape):
    torch.manual_seed(0)
    layer = _trained(LoRA(make(), rank=2))
    w0 = layer.base.weight.clone()
    x = torch.randn(shape)
    y = layer(x)
    layer.merge()
    assert layer.merged
    assert (layer(x) - y).abs().max() < 1e-6
    layer.merge()  # idempotent
    assert (layer(x) - y).abs().max() < 1e-6
    layer.unmerge()
    assert (layer.base.weight - w0).abs().max() < 1e-6
    assert (layer(x) - y).abs().max() < 1e-6


@pytest.mark.parametrize("make, shape", LAYERS)
def test_only_adapters_train_and_gradients_flow(make, shape):
    torch.manual_seed(0)
    layer = LoRA(make(), rank=2)
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B"}
    layer(torch.randn(shape)).square().sum().backward()
    assert layer.base.weight.grad is None
    # B = 0 at start: dL/dB = dL/dy (A x)^T is non-zero, dL/dA = B^T ... is zero
    assert layer.lora_B.grad.abs().max() > 0
    assert torch.count_nonzero(layer.lora_A.grad) == 0


def test_gradient_matches_finite_difference():
    torch.manual_seed(0)
    layer = _trained(LoRA(nn.Linear(4, 3).double(), rank=2))
    x = torch.randn(5, 4, dtype=torch.float64)
    torch.autograd.gradcheck(lambda a, b: torch.func.functional_call(
        layer, {"lora_A": a, "lora_B": b}, (x,)), (layer.lora_A, layer.lora_B))


def test_unsupported_layers_raise():
    with pytest.raises(InvalidArgumentError, match="1x1 convolution"):
        LoRA(nn.Conv1d(3, 3, kernel_size=3), rank=1)
    with pytest.raises(InvalidArgumentError, match="nn.Linear"):
        LoRA(nn.LSTM(3, 3), rank=1)
    with pytest.raises(InvalidArgumentError, match="rank"):
        LoRA(nn.Linear(3, 2), rank=3)
    with pytest.raises(InvalidArgumentError, match="already wrapped"):
        LoRA(LoRA(nn.Linear(3, 3), rank=1), rank=1)


def test_add_lora_fno_counts_and_identity():
    torch.manual_seed(0)
    model = FNO(2, 1, modes=(6,), width=8, n_layers=2, projection_channels=16)
    x = torch.randn(3, 2, 32)
    before = model(x)
    n = add_lora(model, rank=2)
    # lifting (3 -> 8), two skips (8 -> 8), projection (8 -> 16, 16 -> 1); rank capped at 1
    expected = 2 * (3 + 8) + 2 * 2 * (8 + 8) + 2 * (8 + 16) + 1 * (16 + 1)
    assert n == expected == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert len(lora_layers(model)) == 5
    assert torch.equal(model(x), before)
    assert not model.layers[0].spectral.requires_grad


def test_add_lora_fno_trains_merges_and_removes():
    """The FNO reads .weight directly: the adapter must change its output, merged or not."""
    torch.manual_seed(0)
    model = FNO(1, 1, modes=(6,), width=8, n_layers=2, projection_channels=16)
    add_lora(model, rank=2, targets=["layers.*.skip"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(4, 1, 32)
    target = torch.roll(x, 3, dims=-1)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = (model(x) - target).square().mean()
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    y = model(x)
    assert merge_lora(model) == 2
    assert (model(x) - y).abs().max() < 1e-6
    unmerge_lora(model)
    assert (model(x) - y).abs().max() < 1e-6
    remove_lora(model)
    assert not lora_layers(model)
    assert (model(x) - y).abs().max() < 1e-6
    clone = FNO(**{k: v for k, v in model.config.items() if k != "name"})
    clone.load_state_dict(model.state_dict())
    assert (clone(x) - y).abs().max() < 1e-6


def test_add_lora_deeponet_targets_and_errors():
    model = DeepONet([10, 16, 8], [1, 16, 8])
    n = add_lora(model, rank=4, targets=["branch.linears.*"])
    assert n == 4 * (10 + 16) + 4 * (16 + 8)
    assert all(not p.requires_grad for p in model.trunk.parameters())
    with pytest.raises(InvalidArgumentError, match="targets"):
        add_lora(DeepONet([10, 16, 8], [1, 16, 8]), rank=2, targets=["nope.*"])
    stacked = DeepONet([10, 16, 8], [1, 16, 8], stacked=True)
    with pytest.raises(InvalidArgumentError, match="nn.Linear"):
        add_lora(stacked, rank=2, targets=["branch"])
    with pytest.raises(InvalidArgumentError, match="rank"):
        add_lora(model, rank=0)
