"""Neural operators: opflow against neuraloperator and DeepXDE, same run, same weights.

Setup (ANCHORS.md):
- FNO 2-D, 4 layers, 32 channels, 64x64, batch 16, 1 -> 1 channels, MSE loss,
  Adam (lr 1e-3). The peer is neuraloperator's default FNO (lifting and
  projection MLPs with 64 hidden channels, channel MLPs with soft gating,
  grid embedding, GELU); opflow's FNO is built from it with
  FNO.from_neuraloperator (same architecture and weights; outputs agree to
  float32 round-off, column max_abs_diff). "12 modes" = opflow modes (12, 12)
  = neuraloperator n_modes (24, 22) (frequencies -12..11 x 0..11, as Li et
  al.); the "anchor" cases use neuraloperator n_modes (12, 12) = opflow
  (6, 7), the setting of the ANCHORS speed figure.
- spectral convolution alone, forward + backward, 32 -> 32 channels, 12 modes,
  64x64, batch 16: opflow (auto = truncated DFT on CPU, and the FFT path)
  against neuraloperator's SpectralConv with the same weights.
- DeepONet, Cartesian product: branch 100 -> 128 -> 128 -> 128, trunk
  2 -> 128 -> 128 -> 128, ReLU, 64 functions x 1024 points, MSE, Adam
  (lr 1e-3). The peer is DeepXDE's DeepONetCartesianProd (PyTorch backend);
  opflow's DeepONet is built from it with DeepONet.from_deepxde. Both run in
  the same plain training loop; deepxde_model is DeepXDE's own Model.train
  loop (per step, 20 steps per call).
Timings are interleaved (each case once per round); torch's default threads.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import time_interleaved, write_result  # noqa: E402

from opflow.operators import FNO, DeepONet  # noqa: E402

BATCH, WIDTH, SIZE, LAYERS = 16, 32, 64, 4
N_FUNCS, N_POINTS = 64, 1024


def _train_step(model, call, target):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (call() - target).square().mean()
        loss.backward()
        opt.step()

    return step


def _no_grad(call):
    def run():
        with torch.no_grad():
            call()

    return run


def _ratios(results: dict, group: dict[str, str], peer_case: str, peer_name: str) -> None:
    peer = results[peer_case]["median_ms"]
    for case in group:
        results[case][f"speedup_vs_{peer_name}"] = peer / results[case]["median_ms"]


def _fno_cases(results: dict) -> None:
    try:
        from neuralop.layers.spectral_convolution import SpectralConv
        from neuralop.models import FNO as PeerFNO
    except ImportError:
        print("neuraloperator not installed: FNO cases skipped (pip install -e .[peers])")
        return
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, SIZE, SIZE)
    target = torch.randn(BATCH, 1, SIZE, SIZE)
    groups = []
    for tag, n_modes in (("", (24, 22)), ("_anchor", (12, 12))):
        peer = PeerFNO(n_modes=n_modes, in_channels=1, out_channels=1, hidden_channels=WIDTH,
                       n_layers=LAYERS)
        ours = FNO.from_neuraloperator(peer)
        with torch.no_grad():
            diff = float((ours(x) - peer(x)).abs().max())
        cases = {f"fno_train{tag}_opflow": _train_step(ours, lambda m=ours: m(x), target),
                 f"fno_train{tag}_neuraloperator": _train_step(peer, lambda m=peer: m(x), target)}
        if not tag:
            cases["fno_forward_opflow"] = _no_grad(lambda m=ours: m(x))
            cases["fno_forward_neuraloperator"] = _no_grad(lambda m=peer: m(x))
        timing = time_interleaved(cases, repeat=10, warmup=2)
        for case, t in timing.items():
            results[case] = {**t, "max_abs_diff": diff, "modes_opflow": list(ours.modes),
                             "n_modes_neuraloperator": list(n_modes)}
        groups.append((f"fno_train{tag}", [c for c in cases if "train" in c]))
        if not tag:
            groups.append(("fno_forward", [c for c in cases if "forward" in c]))
    for _, group in groups:
        peer_case = next(c for c in group if c.endswith("neuraloperator"))
        _ratios(results, dict.fromkeys(group), peer_case, "neuraloperator")

    # the spectral convolution alone, forward + backward
    from opflow.kernels import spectral_conv

    conv = SpectralConv(WIDTH, WIDTH, (24, 22), bias=False)
    w = conv.weight.to_tensor().detach() if not isinstance(conv.weight, torch.Tensor) \
        else conv.weight.detach()
    w = torch.fft.ifftshift(w, dim=2)  # neuraloperator's fftshift-ed layout -> FFT order
    wr, wi = w.real.clone().requires_grad_(), w.imag.clone().requires_grad_()
    h = torch.randn(BATCH, WIDTH, SIZE, SIZE, requires_grad=True)
    grad = torch.randn(BATCH, WIDTH, SIZE, SIZE)
    with torch.no_grad():
        diff = float((spectral_conv(h, (wr, wi)) - conv(h)).abs().max())

    def ours(backend):
        return lambda: spectral_conv(h, (wr, wi), backend=backend).backward(grad)

    cases = {"spectral_conv_opflow_auto": ours(None), "spectral_conv_opflow_fft": ours("fft"),
             "spectral_conv_neuraloperator": lambda: conv(h).backward(grad)}
    for case, t in time_interleaved(cases, repeat=15, warmup=2).items():
        results[case] = {**t, "max_abs_diff": diff}
    _ratios(results, cases, "spectral_conv_neuraloperator", "neuraloperator")


def _deeponet_cases(results: dict) -> None:
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        import deepxde as dde
    except ImportError:
        print("deepxde not installed: DeepONet cases skipped (pip install -e .[peers])")
        return
    if dde.backend.backend_name != "pytorch":
        print("deepxde runs with another backend: DeepONet cases skipped (DDE_BACKEND=pytorch)")
        return
    torch.manual_seed(0)
    branch, trunk = [100, 128, 128, 128], [2, 128, 128, 128]
    peer = dde.nn.pytorch.DeepONetCartesianProd(branch, trunk, "relu", "Glorot normal")
    ours = DeepONet.from_deepxde(peer)
    u, y = torch.randn(N_FUNCS, 100), torch.rand(N_POINTS, 2)
    target = torch.randn(N_FUNCS, N_POINTS)
    with torch.no_grad():
        diff = float((ours(u, y) - peer((u, y))).abs().max())
    peer_model_net = dde.nn.pytorch.DeepONetCartesianProd(branch, trunk, "relu", "Glorot normal")
    data = dde.data.TripleCartesianProd((u.numpy(), y.numpy()), target.numpy(),
                                        (u.numpy(), y.numpy()), target.numpy())
    model = dde.Model(data, peer_model_net)
    model.compile("adam", lr=1e-3)
    steps = 20

    def deepxde_model():
        model.train(iterations=steps, display_every=10**9, verbose=0)

    cases = {"deeponet_train_opflow": _train_step(ours, lambda: ours(u, y), target),
             "deeponet_train_deepxde_net": _train_step(peer, lambda: peer((u, y)), target),
             "deeponet_train_deepxde_model": deepxde_model}
    for case, t in time_interleaved(cases, repeat=30, warmup=2).items():
        if case.endswith("model"):
            t = {**t, "median_ms": t["median_ms"] / steps, "min_ms": t["min_ms"] / steps}
        results[case] = {**t, "max_abs_diff": diff}
    _ratios(results, cases, "deeponet_train_deepxde_net", "deepxde")
    model_ms = results["deeponet_train_deepxde_model"]["median_ms"]
    for case in cases:
        results[case]["speedup_vs_deepxde_model"] = model_ms / results[case]["median_ms"]


def main() -> dict:
    results: dict = {}
    _fno_cases(results)
    _deeponet_cases(results)
    for case, r in results.items():
        ratio = next((f"{k[len('speedup_vs_'):]} {v:.2f}x" for k, v in r.items()
                      if k.startswith("speedup_vs_")), "")
        print(f"{case:34s} {r['median_ms']:9.2f} ms (min {r['min_ms']:8.2f})  "
              f"max diff {r['max_abs_diff']:.1e}  {ratio}")
    write_result("operators", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
