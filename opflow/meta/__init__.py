"""Meta-learning of neural operators across PDE families (LeMON).

* :mod:`.families`: 1-D periodic PDE families with their coefficients as inputs;
* :mod:`.maml`: first-order MAML pretraining over families (and plain joint training);
* :mod:`.adapt`: few-shot fine-tuning (full, LoRA adapters only, or from scratch);
* :mod:`.commands`: the ``opflow pretrain`` and ``opflow finetune`` commands.
"""

from .adapt import MODES, evaluate, finetune, trainable_parameters
from .families import (
    COEFFICIENT_SCALES,
    COEFFICIENTS,
    FAMILIES,
    INPUTS,
    Family,
    family_dataset,
    generate_family,
    save_family,
    solve_family,
)
from .maml import Task, build_backbone, check_tasks, pretrain, task_from_dataset

__all__ = [
    "COEFFICIENTS",
    "COEFFICIENT_SCALES",
    "FAMILIES",
    "INPUTS",
    "Family",
    "MODES",
    "Task",
    "build_backbone",
    "check_tasks",
    "evaluate",
    "family_dataset",
    "finetune",
    "generate_family",
    "pretrain",
    "save_family",
    "solve_family",
    "task_from_dataset",
    "trainable_parameters",
]
