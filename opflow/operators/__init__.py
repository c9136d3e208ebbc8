"""Neural operators: FNO, DeepONet, POD-DeepONet, MgNO, the multi-task DeepONet and LoRA.

Every model takes a :class:`~opflow.Field` (and returns a Field on the grid it
maps to) or a plain tensor (and returns a tensor), and has a ``config`` dict
from which :func:`build_operator` rebuilds it::

    model = FNO(1, 1, modes=(12, 12), width=32)
    clone = build_operator(model.config)
    clone.load_state_dict(model.state_dict())

Peer models load through :meth:`FNO.from_neuraloperator` and
:meth:`DeepONet.from_deepxde`.
"""

from .base import NeuralOperator, build_operator, register_operator, registered_operators
from .deeponet import DeepONet
from .fno import FNO, FourierLayer
from .interop import deeponet_from_deepxde, fno_from_neuraloperator
from .lora import LoRA, add_lora, merge_lora, remove_lora, unmerge_lora
from .mgno import MgNO, VCycle
from .multitask import MultiTaskDeepONet
from .pod_deeponet import POD_DeepONet

__all__ = [
    "DeepONet",
    "FNO",
    "FourierLayer",
    "LoRA",
    "MgNO",
    "MultiTaskDeepONet",
    "NeuralOperator",
    "POD_DeepONet",
    "VCycle",
    "add_lora",
    "build_operator",
    "deeponet_from_deepxde",
    "fno_from_neuraloperator",
    "merge_lora",
    "remove_lora",
    "unmerge_lora",
    "register_operator",
    "registered_operators",
]
