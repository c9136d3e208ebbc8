"""Training neural operators: the Trainer, losses, checkpoints, torchrun support::

    trainer = opflow.train.Trainer(model, loss="rel_l2", epochs=100, normalizers="auto",
                                   out_dir="run")
    history = trainer.fit(train, val)            # resumable: Trainer(..., resume=True)
    errors = trainer.evaluate(test, out="run/test.nc")
    prediction = trainer.predict(a)

Every training loop steps through one core, :mod:`opflow.train.loop`
(:class:`~opflow.train.loop.OptimizerStep` for the Trainer's epochs,
:func:`~opflow.train.loop.fit_steps` for step-counted loops: multi-task
transfer in :mod:`opflow.train.transfer`, LeMON in :mod:`opflow.meta`).
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
from .loop import OptimizerStep, TrainingDivergedError, fit_steps
from .losses import LOSSES, rel_h1, rel_l2, resolve_loss
from .trainer import Trainer, build_model
from .transfer import evaluate_by_geometry, fine_tune, fit, freeze, masked_rel_l2

__all__ = [
    "DistributedContext",
    "LOSSES",
    "OptimizerStep",
    "Trainer",
    "TrainingDivergedError",
    "build_model",
    "evaluate_by_geometry",
    "fine_tune",
    "fit",
    "fit_steps",
    "freeze",
    "load_checkpoint",
    "masked_rel_l2",
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
