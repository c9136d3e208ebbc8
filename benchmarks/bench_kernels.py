"""Kernels: spectral convolution and multigrid primitives, timings and a roofline table.

Setup:
- spectral convolution, forward + backward, 32 -> 32 channels, opflow modes
  (12, 12) (= neuraloperator n_modes (24, 22)), 64x64, batch 16, float32:
  opflow's FFT path (the torch reference), its truncated DFT path, and
  neuraloperator's SpectralConv (when installed) in the same interleaved run.
- MgNO train step (forward + backward of an MSE loss), 2-D, 64x64, batch 8,
  width 24, 4 levels, 4 layers, circular, reflect and zero padding: reference primitives
  (``opflow.kernels.use("torch")``: ``F.pad``) against the fused halo padding
  (default); zero padding as the control (the convolutions pad themselves).
- padding alone, forward + backward, (8, 24, 64, 64) float32: ``F.pad``
  against :func:`opflow.kernels.halo_pad`, circular and reflect.
- roofline table: bytes moved (each operand read once, each result written
  once) and flops per call, computed analytically, with the achieved GB/s of
  the CPU (torch) implementation, and as a fraction of this machine's copy
  bandwidth (``copy_`` between two 64 MiB buffers), measured in the same
  run. Operands that fit in cache can exceed the copy bandwidth (fraction > 1).
  The spectral rows count the truncated-DFT path's flops (the FFT path's row
  reuses them: same bytes, its own transform costs differ).
- CUDA only (not measured on the CPU-only machine where this file was
  written): the Triton kernels timed the same way, achieved bandwidth as a
  fraction of the device's peak (table below, by device name) next to the
  device name.
"""

from __future__ import annotations

import sys

import torch
from torch.nn import functional as F

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import time_call, time_interleaved, write_result  # noqa: E402

import opflow.kernels as K  # noqa: E402
import opflow.solvers.pde.multigrid.operators as O  # noqa: E402
from opflow.kernels import spectral_conv, weight_shape  # noqa: E402
from opflow.operators.mgno import MgNO  # noqa: E402

BATCH, WIDTH, SIZE, MODES = 16, 32, 64, (12, 12)
MG_BATCH, MG_SIZE = 16, 129

# HBM peak bandwidth (GB/s) by device-name fragment, from the vendors' data sheets
PEAK_GBS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0,
            "A100-SXM4-80GB": 2039.0, "A100": 1555.0, "L4": 300.0, "T4": 320.0}


def _spectral_cases(device: str = "cpu") -> dict:
    x = torch.randn(BATCH, WIDTH, SIZE, SIZE, device=device, requires_grad=True)
    shape = weight_shape(WIDTH, WIDTH, MODES)
    wr = torch.randn(shape, device=device, requires_grad=True)
    wi = torch.randn(shape, device=device, requires_grad=True)

    def ours(backend):
        def run():
            spectral_conv(x, (wr, wi), backend=backend).square().sum().backward()
        return run

    cases = {"opflow_fft": ours("fft")}
    if device == "cpu":
        cases["opflow_dft"] = ours("dft")
    else:
        cases["opflow_triton"] = ours("triton")
    try:
        from neuralop.layers.spectral_convolution import SpectralConv
    except ImportError:
        return cases
    conv = SpectralConv(WIDTH, WIDTH, (2 * MODES[0], 2 * MODES[1] - 2), bias=False).to(device)

    def peer():
        conv(x).square().sum().backward()

    cases["neuralop_SpectralConv"] = peer
    return cases


def _mgno_cases(padding: str) -> dict:
    torch.manual_seed(0)
    model = MgNO(1, 1, levels=4, width=24, n_layers=4, padding=padding)
    x, y = torch.randn(8, 1, 64, 64), torch.randn(8, 1, 64, 64)

    def step():
        model.zero_grad(set_to_none=True)
        (model(x) - y).square().mean().backward()

    def reference():
        with K.use("torch"):
            step()

    return {"mgno_step_reference": reference, "mgno_step_fused": step}


def _pad_cases() -> dict:
    """One-point padding of an MgNO activation, forward + backward."""
    x = torch.randn(8, 24, 64, 64, requires_grad=True)
    g = torch.randn(8, 24, 66, 66)
    cases = {}
    for mode in ("circular", "reflect"):
        cases[f"pad_fwd_bwd_{mode}_F.pad"] = lambda m=mode: F.pad(x, (1,) * 4, mode=m).backward(g)
        cases[f"pad_fwd_bwd_{mode}_halo"] = lambda m=mode: K.halo_pad(x, 2, m).backward(g)
    return cases


def _roofline_rows(size: int = 4) -> dict:
    """Bytes and flops per call, analytic (``size`` bytes per real number)."""
    b, c, n, (m1, m2) = BATCH, WIDTH, SIZE, MODES
    kept = 2 * m1 * m2
    half = n * (n // 2 + 1)
    nodes, coarse = MG_BATCH * MG_SIZE**2, MG_BATCH * ((MG_SIZE + 1) // 2) ** 2
    # one 2-D truncated DFT: last axis n -> 2 m2 reals per row, then the leading
    # axis n -> 2 m1 complex modes on the m2 columns (four real products)
    dft_flops = 2 * b * c * (n * n * 2 * m2 + 4 * 2 * m1 * n * m2)
    return {
        # kept modes of X (complex) and W read, the full zero-padded spectrum written
        "spectral_mix": {"bytes": size * (2 * b * c * kept + 2 * c * c * kept + 2 * b * c * half),
                         "flops": 8 * b * c * c * kept},
        # x read, y written; flops of the truncated-DFT path: forward and inverse
        # transforms as real matrix products (2 flops per multiply-add) + mixing
        "spectral_conv_forward": {"bytes": size * 2 * b * c * n * n,
                                  "flops": 2 * dft_flops + 8 * b * c * c * kept},
        # u, f, c_x, c_y, s read and u written once per node
        "jacobi_sweep": {"bytes": size * 6 * nodes, "flops": 14 * nodes},
        "restrict": {"bytes": size * (nodes + coarse), "flops": 17 * coarse},
        "prolong": {"bytes": size * (coarse + nodes), "flops": 3 * nodes},
        "halo_pad_2d": {"bytes": size * (b * c * n * n + b * c * (n + 2) ** 2), "flops": 0},
    }


def _cpu_roofline() -> dict:
    rows = _roofline_rows()
    x = torch.randn(BATCH, WIDTH, SIZE, SIZE)
    w = torch.randn(weight_shape(WIDTH, WIDTH, MODES), dtype=torch.complex64)
    kinds = ("D", "D")
    a = torch.exp(torch.randn(MG_BATCH, MG_SIZE, MG_SIZE))
    coef, diag = O.stencil(O.face_coefficients(a, kinds), (1.0, 1.0), kinds)
    u, f = torch.randn_like(a), torch.randn_like(a)
    s = 0.8 / diag
    r = O.residual(u, f, coef, diag, kinds)
    e = O.restrict(r, kinds)
    big, dst = torch.randn(64 * 2**20 // 4), torch.empty(64 * 2**20 // 4)
    dst.copy_(big)  # touch the pages once: first-touch faults are not bandwidth

    rows["spectral_conv_forward_fft"] = rows["spectral_conv_forward"]
    calls = {
        "spectral_conv_forward": lambda: spectral_conv(x, w),  # auto: truncated DFT
        "spectral_conv_forward_fft": lambda: spectral_conv(x, w, backend="fft"),
        "jacobi_sweep": lambda: O.jacobi(u, f, coef, diag, kinds, s, 1),
        "restrict": lambda: O.restrict(r, kinds),
        "prolong": lambda: O.prolong(e, kinds),
        "halo_pad_2d": lambda: K.halo_pad(x, 2, "circular"),
    }
    copy_ms = time_call(lambda: dst.copy_(big), repeat=10)["median_ms"]
    copy_gbs = 2 * big.numel() * 4 / copy_ms / 1e6
    out = {"cpu_copy_bandwidth": {"GBps": copy_gbs}}
    for name, fn in calls.items():
        ms = time_call(fn, repeat=10)["median_ms"]
        gbs = rows[name]["bytes"] / ms / 1e6
        out[f"roofline_{name}"] = {
            **rows[name], "intensity_flop_per_byte": rows[name]["flops"] / rows[name]["bytes"],
            "cpu_ms": ms, "cpu_GBps": gbs, "cpu_GFLOPs": rows[name]["flops"] / ms / 1e6,
            "fraction_of_copy_bw": gbs / copy_gbs}
    return out


def _triton_results(device: str = "cuda", repeat: int = 50) -> dict:
    """Triton timings and bandwidth fraction (run by :func:`main` only with CUDA and
    triton; ``device="cpu"`` under ``TRITON_INTERPRET=1`` smoke-tests this code)."""
    cuda = device == "cuda"
    name = torch.cuda.get_device_name() if cuda else "cpu (Triton interpreter)"
    peak = next((v for k, v in PEAK_GBS.items() if k in name), None)

    def synced(fn):
        def run():
            fn()
            if cuda:
                torch.cuda.synchronize()
        return run

    out = {}
    cases = {k: synced(v) for k, v in _spectral_cases(device).items()}
    for case, t in time_interleaved(cases, repeat=repeat, warmup=2).items():
        out[f"gpu_spectral_fwd_bwd_{case}"] = {**t, "device": name}
    tm = K.triton_module("triton_multigrid")
    ts = K.triton_module("triton_spectral")
    kinds = ("D", "D")
    a = torch.exp(torch.randn(MG_BATCH, MG_SIZE, MG_SIZE, device=device))
    coef, diag = O.stencil(O.face_coefficients(a, kinds), (1.0, 1.0), kinds)
    u, f = torch.randn_like(a), torch.randn_like(a)
    s = 0.8 / diag
    e = tm.restrict(u, kinds)
    x = torch.randn(BATCH, WIDTH, SIZE, SIZE, device=device)
    xf = torch.fft.rfftn(x, dim=(2, 3))
    w = torch.randn(weight_shape(WIDTH, WIDTH, MODES), device=device)
    calls = {"spectral_mix": lambda: ts.spectral_mix(xf, w, w, MODES),
             "jacobi_sweep": lambda: tm.jacobi(u, f, coef, diag, kinds, s, 1),
             "restrict": lambda: tm.restrict(u, kinds),
             "prolong": lambda: tm.prolong(e, kinds)}
    rows = _roofline_rows()
    for case, fn in calls.items():
        ms = time_call(synced(fn), repeat=repeat, warmup=2)["median_ms"]
        gbs = rows[case]["bytes"] / ms / 1e6
        out[f"gpu_triton_{case}"] = {"median_ms": ms, "GBps": gbs, "device": name,
                                     "fraction_of_peak": gbs / peak if peak else None}
    return out


def main() -> dict:
    torch.manual_seed(0)
    results = {}
    for case, t in time_interleaved(_spectral_cases(), repeat=7).items():
        results[f"spectral_fwd_bwd_{case}"] = t
    results.update(time_interleaved(_pad_cases(), repeat=15))
    for padding in ("circular", "reflect", "zeros"):
        mg = time_interleaved(_mgno_cases(padding), repeat=7)
        ref, fused = mg["mgno_step_reference"], mg["mgno_step_fused"]
        results[f"mgno_step_{padding}_reference"] = ref
        results[f"mgno_step_{padding}_fused"] = fused
        results[f"mgno_step_{padding}_speedup"] = {
            "median_ratio": ref["median_ms"] / fused["median_ms"],
            "min_ratio": ref["min_ms"] / fused["min_ms"]}
    results.update(_cpu_roofline())
    if torch.cuda.is_available() and K.triton_available():
        results.update(_triton_results())
    setup = (f"CPU float32. Spectral conv fwd+bwd: {WIDTH}->{WIDTH} channels, modes {MODES} "
             f"(neuralop n_modes (24, 22)), {SIZE}x{SIZE}, batch {BATCH}. MgNO train step: 2-D "
             "64x64, batch 8, width 24, 4 levels, 4 layers, circular, reflect and zero padding, "
             "reference (use('torch'): F.pad) vs fused halo padding (zero padding has no "
             "pad copies, so no change is expected there). Roofline: analytic bytes/flops per "
             f"call (float32), multigrid on {MG_BATCH}x{MG_SIZE}^2, achieved GB/s of the CPU "
             "torch implementation and fraction of this machine's clone() bandwidth. GPU rows "
             "(Triton, fraction of HBM peak) only when CUDA is available: not measured here.")
    write_result("kernels", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    for key, value in main().items():
        print(key, value)
