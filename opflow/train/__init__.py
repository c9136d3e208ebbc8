"""Training neural operators: the Trainer, losses, checkpoints, torchrun support.

    trainer = opflow.train.Trainer(model, loss="rel_l2", epochs=100, normalizers="auto",
                                   out_dir="run")
    history = trainer.fit(train, val)            # resumable: Trainer(..., resume=True)
    errors = trainer.evaluate(test, out="run/test.nc")
    prediction = trainer.predict(a)

The command line (``opflow train`` / ``opflow predict``) lives in
:mod:`opflow.train.commands`.
"""

from .checkpoint import (
    load_checkpoint,
    normalizers_from_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .distributed import DistributedContext, setup_distributed
from .losses import LOSSES, rel_h1, rel_l2, resolve_loss
from .trainer import Trainer, TrainingDivergedError, build_model

__all__ = [
    "DistributedContext",
    "LOSSES",
    "Trainer",
    "TrainingDivergedError",
    "build_model",
    "load_checkpoint",
    "normalizers_from_checkpoint",
    "read_checkpoint",
    "rel_h1",
    "rel_l2",
    "resolve_loss",
    "restore_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "setup_distributed",
]
