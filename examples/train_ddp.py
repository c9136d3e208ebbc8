"""Data-parallel training with torchrun: one script for one process, one machine or many.

One process:                    python examples/train_ddp.py
Two processes, this machine:    torchrun --nproc_per_node 2 examples/train_ddp.py
Two machines with 4 GPUs each (the same command on both; HOST is one of them)::

    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 --rdzv_id darcy-fno \\
        examples/train_ddp.py --data /shared/darcy.nc --out /shared/runs/fno

Nothing below is specific to distributed training except the data step: the
Trainer reads torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), joins the process group (gloo on CPU, nccl on
GPU), wraps the model in DistributedDataParallel and gives each process its
share of every epoch; only rank 0 writes checkpoints and metrics. Rank 0
makes the data file when it does not exist yet while the others wait at a
barrier. ``--batch-size`` is per process, so N processes step with N times
the batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch.distributed as dist

from opflow import FNO
from opflow.data import OperatorDataset, generate
from opflow.train import Trainer, setup_distributed


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="Darcy netCDF file with variables a and u (made if missing; "
                        "default OUT/darcy.nc)")
    p.add_argument("--out", type=Path, default=Path("runs/ddp"),
                   help="run folder (default runs/ddp; git ignores runs/)")
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--n-test", type=int, default=64)
    p.add_argument("--resolution", type=int, default=33)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8, help="samples per process and step")
    p.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK if available")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return p.parse_args(argv)


def make_data(path: Path, n: int, resolution: int, is_main: bool, distributed: bool) -> None:
    """Rank 0 generates the file if needed; every rank returns once it exists."""
    if is_main and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate("darcy", n=n, resolution=resolution, seed=0, out=path, progress=False).close()
    if distributed:
        dist.barrier()


def main(argv=None) -> dict:
    args = parse_args(argv)
    ctx = setup_distributed(args.device)  # the Trainer reuses this process group
    say = print if ctx.is_main else (lambda *a, **k: None)
    data_path = args.data or args.out / "darcy.nc"
    make_data(data_path, args.n_train + args.n_test, args.resolution, ctx.is_main, ctx.enabled)
    data = OperatorDataset(data_path, inputs="a", outputs="u")
    train, test = data.split([args.n_train, args.n_test], seed=0)

    model = FNO(1, 1, modes=(8, 8), width=24, n_layers=4)
    trainer = Trainer(model, loss="rel_l2", epochs=args.epochs, batch_size=args.batch_size,
                      lr=2e-3, normalizers="auto", out_dir=args.out, device=args.device,
                      seed=0, resume=args.resume)
    say(f"world size {ctx.world_size} ({ctx.backend or 'single process'}) on {ctx.device}; "
        f"{len(train)} training samples, {args.batch_size} per process and step")
    t0 = time.perf_counter()
    trainer.fit(train, test)
    seconds = time.perf_counter() - t0
    metrics = trainer.evaluate(test)
    say(f"{trainer.epoch} epochs in {seconds:.1f} s; test relative L2 "
        f"{metrics['rel_l2_mean']:.4f}; checkpoints and metrics in {args.out}")
    data.close()
    return {"world_size": ctx.world_size, "seconds": seconds,
            "rel_l2": float(metrics["rel_l2_mean"])}


if __name__ == "__main__":
    main()
