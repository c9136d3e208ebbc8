"""The GPU check: everything opflow has never run on a GPU, in one short run.

``bash benchmarks/gpu_check.sh [OUT]`` (this file does the work) on a machine
with CUDA, in about 5 minutes:

1. the Triton kernel tests compiled for the GPU (``tests/test_kernels_triton.py``
   with ``OPFLOW_TRITON_DEVICE=cuda``, not the interpreter);
2. the ``kernels`` benchmark (its GPU rows: Triton spectral convolution and
   multigrid kernels, achieved bandwidth as a fraction of the device's peak);
3. on the GPU, same run: FNO train step of opflow against neuraloperator (when
   installed) with the same weights, and the spectral convolution forward +
   backward with opflow's ``fft`` and ``triton`` backends;
4. a short FNO training (200 Adam steps on a smooth operator) with its loss drop.

Every figure is written with the device's name to ``OUT/gpu_check.json``
(default ``benchmarks/results/gpu``), the kernels benchmark to
``OUT/kernels.json``; the CPU results in ``benchmarks/results`` are left alone.
A step that fails is recorded with its error and the next one runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

BATCH, WIDTH, SIZE, LAYERS, MODES = 16, 32, 64, 4, (24, 22)


def _timed(cases: dict, repeat: int = 20, warmup: int = 3) -> dict:
    """Median / min ms of each callable, interleaved, with a device sync per call."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "repeat": repeat}
            for k, v in samples.items()}


def _train_step(model, x, target):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        (model(x) - target).square().mean().backward()
        opt.step()

    return step


def kernel_tests() -> dict:
    env = {**os.environ, "OPFLOW_TRITON_DEVICE": "cuda", "TRITON_INTERPRET": "0",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "",
                           "-p", "no:cacheprovider", "tests/test_kernels_triton.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    return {"returncode": proc.returncode, "summary": tail[-1] if tail else "", "tail": tail}


def kernels_benchmark() -> dict:
    import bench_kernels

    results = bench_kernels.main()
    return {k: v for k, v in results.items() if k.startswith("gpu_")}


def fno_against_neuraloperator() -> dict:
    from opflow.operators import FNO

    try:
        from neuralop.models import FNO as PeerFNO
    except ImportError:
        return {"skipped": "neuraloperator not installed"}
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, SIZE, SIZE, device="cuda")
    target = torch.randn(BATCH, 1, SIZE, SIZE, device="cuda")
    peer = PeerFNO(n_modes=MODES, in_channels=1, out_channels=1, hidden_channels=WIDTH,
                   n_layers=LAYERS).cuda()
    ours = FNO.from_neuraloperator(peer).cuda()
    with torch.no_grad():
        diff = float((ours(x) - peer(x)).abs().max())
    out = _timed({"fno_train_opflow": _train_step(ours, x, target),
                  "fno_train_neuraloperator": _train_step(peer, x, target)})
    out["fno_train_opflow"]["speedup_vs_neuraloperator"] = (
        out["fno_train_neuraloperator"]["median_ms"] / out["fno_train_opflow"]["median_ms"])
    out["fno_train_opflow"]["max_abs_diff"] = diff
    return out


def spectral_backends() -> dict:
    from opflow import kernels as K
    from opflow.kernels import spectral_conv, weight_shape

    modes = (MODES[0] // 2, MODES[1] // 2 + 1)
    h = torch.randn(BATCH, WIDTH, SIZE, SIZE, device="cuda", requires_grad=True)
    w = torch.randn(weight_shape(WIDTH, WIDTH, modes), device="cuda", dtype=torch.complex64)
    grad = torch.randn(BATCH, WIDTH, SIZE, SIZE, device="cuda")

    def case(backend):
        def run():
            y = spectral_conv(h, w, backend=backend)
            y.backward(grad)
        return run

    cases = {"spectral_fwd_bwd_fft": case("fft")}
    if K.triton_available():
        cases["spectral_fwd_bwd_triton"] = case("triton")
    return _timed(cases)


def short_training(steps: int = 200) -> dict:
    from opflow import Field, Grid
    from opflow.operators import FNO

    torch.manual_seed(0)
    grid = Grid.uniform(x=(0.0, 1.0, SIZE), y=(0.0, 1.0, SIZE), periodic=("x", "y"))
    a = torch.randn(64, 1, SIZE, SIZE, device="cuda")
    # a smooth linear operator to learn: one heat-equation smoothing step in Fourier space
    k2 = sum(k ** 2 for k in torch.meshgrid(*[torch.fft.fftfreq(SIZE, 1.0 / SIZE).cuda()] * 2,
                                          indexing="ij"))
    u = torch.fft.ifft2(torch.fft.fft2(a) * torch.exp(-1e-3 * k2)).real
    model = FNO(1, 1, modes=(12, 12), width=WIDTH, n_layers=LAYERS).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    torch.cuda.synchronize()
    start = time.perf_counter()
    for s in range(steps):
        idx = torch.arange(16 * s, 16 * s + 16) % 64
        loss = (model(Field(a[idx], grid)).values - u[idx]).square().mean() / u[idx].square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"steps": steps, "ms_per_step": 1e3 * seconds / steps, "first_loss": losses[0],
            "last_loss": losses[-1]}


def main(out: Path) -> int:
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    os.environ["OPFLOW_BENCH_RESULTS"] = str(out)  # bench_kernels writes here, not over CPU runs
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": {}}
    try:
        import triton
        report["triton"] = triton.__version__
    except ImportError:
        report["triton"] = None
    status = 0
    for name, step in [("kernel_tests", kernel_tests), ("kernels_benchmark", kernels_benchmark),
                       ("fno_vs_neuraloperator", fno_against_neuraloperator),
                       ("spectral_backends", spectral_backends),
                       ("short_training", short_training)]:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            report["steps"][name] = {"result": step()}
        except Exception:  # record it and go on: one broken step must not hide the others
            report["steps"][name] = {"error": traceback.format_exc()[-3000:]}
            status = 1
        report["steps"][name]["seconds"] = time.perf_counter() - start
        print(json.dumps(report["steps"][name], indent=1, default=str)[:3000], flush=True)
    tests = report["steps"].get("kernel_tests", {}).get("result", {})
    status = status or int(tests.get("returncode", 1) != 0)
    path = out / "gpu_check.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {path} ({report['device']})")
    return status


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "gpu"))
