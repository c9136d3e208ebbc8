"""A small resumable training job for the SIGKILL tests: ``python _train_job.py RUN_DIR``.

Each training call sleeps a little so that a kill lands in the middle of an
epoch as often as between two; the result does not depend on the timing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Stencil, pairs  # noqa: E402

from opflow.train import Trainer  # noqa: E402

EPOCHS = 8


class SlowStencil(Stencil):
    def forward(self, a):
        if self.training:
            time.sleep(0.01)
        return super().forward(a)


def main(run: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a, u = pairs(32, seed=3)
    trainer = Trainer(SlowStencil(), epochs=EPOCHS, batch_size=4, lr=1e-2, progress=False,
                      device="cpu", out_dir=run, seed=0, resume=True)
    trainer.fit((a[:24], u[:24]), (a[24:], u[24:]))


if __name__ == "__main__":
    main(sys.argv[1])
