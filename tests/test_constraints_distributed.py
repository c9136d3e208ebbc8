"""PI-HC-MoE experts spread over two CPU processes (gloo, torchrun): the same output and
gradient as one process solving every expert, and a Trainer run that finishes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

SCRIPT = textwrap.dedent('''
    import os
    import sys

    import torch

    sys.path.insert(0, sys.argv[2])
    from test_constraints import FeatureBasis, heat, inputs

    from opflow import Field
    from opflow.constraints import HardConstraint, Partition, initial_condition
    from opflow.train import Trainer, setup_distributed

    out = sys.argv[1]
    ctx = setup_distributed("cpu")
    rank = ctx.rank
    a = inputs(batch=5)
    mine = slice(0, 3) if rank == 0 else slice(3, 5)     # uneven: 3 and 2 samples
    weight = torch.linspace(1.0, 2.0, 5, dtype=torch.float64).reshape(5, 1, 1, 1)

    def layer(distribute):
        torch.manual_seed(0)
        return HardConstraint(FeatureBasis(10), heat, 10, partition=Partition(x=3), points=5,
                              ridge=1e-4, conditions=[initial_condition(points=3)],
                              distribute=distribute)

    spread = layer(True)
    u = spread(a[mine])
    ((u.values ** 2) * weight[mine]).sum().backward()
    alone = layer(False)
    ref = alone(a)
    ((ref.values ** 2) * weight).sum().backward()
    spread.eval()
    with torch.no_grad():
        local = spread(a[mine])                       # evaluation: every expert here
    result = {"u": u.values.detach(), "codes": u.attrs["expert_retcodes"],
              "grad_p": spread.basis.p.grad, "grad_q": spread.basis.q.grad,
              "ref_u": ref.values.detach()[mine], "ref_codes": ref.attrs["expert_retcodes"],
              "ref_grad_p": alone.basis.p.grad, "ref_grad_q": alone.basis.q.grad,
              "eval_u": local.values}

    trained = layer(True)
    trainer = Trainer(trained, loss=trained.residual_loss, epochs=2, batch_size=2, lr=1e-2,
                      device="cpu", progress=False, seed=0)
    data = inputs(batch=8, seed=3)
    history = trainer.fit((data[:6], Field(torch.zeros_like(data.values[:6]), data.grid)),
                          (data[6:], Field(torch.zeros_like(data.values[6:]), data.grid)))
    result["trained"] = {k: v.clone() for k, v in trained.basis.state_dict().items()}
    result["losses"] = [float(h["train_loss"]) for h in history]
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
''')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_experts_spread_over_two_processes_match_one_process(tmp_path):
    script = tmp_path / "experts.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
           str(tmp_path), str(Path(__file__).parent)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = [torch.load(tmp_path / f"rank{k}.pt", weights_only=False) for k in (0, 1)]
    for res in r:
        assert torch.allclose(res["u"], res["ref_u"], rtol=1e-9, atol=1e-12)
        assert torch.allclose(res["eval_u"], res["ref_u"], rtol=1e-9, atol=1e-12)
    codes = r[0]["codes"].split(",") + r[1]["codes"].split(",")
    assert codes == r[0]["ref_codes"].split(",") and len(codes) == 5 * 3
    # each process holds the gradient through its own samples; together, the whole one
    for name in ("grad_p", "grad_q"):
        total = r[0][name] + r[1][name]
        # equal up to the solves' tolerance (each batch of experts stops on its own)
        assert torch.allclose(total, r[0][f"ref_{name}"], rtol=1e-5, atol=1e-8)
        assert not torch.allclose(r[0][name], r[0][f"ref_{name}"], rtol=1e-3)
    for k, v in r[0]["trained"].items():
        assert torch.equal(v, r[1]["trained"][k])     # DDP: one update on every process
    assert r[0]["losses"] == r[1]["losses"] and len(r[0]["losses"]) == 2
