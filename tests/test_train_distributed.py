"""opflow.train under torchrun: two CPU processes (gloo) train one model with DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent('''
    import os
    import sys

    import torch
    from torch import nn

    from opflow import Field, Grid
    from opflow.train import Trainer

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    grid = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))


    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = {"name": "tiny"}
            self.net = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1, padding_mode="circular"),
                                     nn.GELU(), nn.Conv1d(4, 1, 1))

        def forward(self, a):
            return Field(self.net(a.values), a.grid)


    saves = []
    original = Trainer.save_checkpoint
    Trainer.save_checkpoint = lambda self, path: (saves.append(str(path)), original(self, path))[1]

    torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 1, 16, generator=g)
    u = torch.roll(a, 1, -1) - a
    a, u = Field(a, grid, "a"), Field(u, grid, "u")
    trainer = Trainer(Tiny(), epochs=2, batch_size=3, normalizers="auto", device="cpu",
                      out_dir=os.path.join(out, "run"), progress=False)
    assert trainer.ctx.world_size == 2 and trainer.ctx.backend == "gloo", trainer.ctx
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    # 5 validation samples on 2 processes: a padded split would count one twice
    history = trainer.fit((a[:7], u[:7]), (a[7:], u[7:]))
    whole = trainer.evaluate((a[7:], u[7:]))  # one process, every sample once
    torch.save({"start": start, "end": trainer.model.state_dict(), "history": history,
                "saves": saves, "whole": whole["rel_l2_mean"]}, os.path.join(out, f"rank{rank}.pt"))
''')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_hold_identical_weights_and_only_rank0_writes(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0["end"]:
        assert torch.equal(r0["start"][k], r1["start"][k])  # broadcast from rank 0
        assert torch.equal(r0["end"][k], r1["end"][k])  # same averaged gradient steps
    assert any(not torch.equal(r0["start"][k], r0["end"][k]) for k in r0["end"])
    losses = [[{k: v for k, v in row.items() if k != "seconds"} for row in r["history"]]
              for r in (r0, r1)]
    assert losses[0] == losses[1] and len(losses[0]) == 2  # all-reduced metrics
    # validation counts each of the 5 samples once (no padding of the split)
    assert abs(r0["history"][-1]["val_rel_l2"] - float(r0["whole"])) < 1e-6
    assert r0["saves"] and r1["saves"] == []  # only rank 0 writes checkpoints
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "metrics.csv",
                                                     "metrics.json"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["trainer"]["world_size"] == 2
    assert all(torch.equal(last["model"][k], r0["end"][k]) for k in r0["end"])
