"""Neural operators: FNO, DeepONet, POD-DeepONet, MgNO, DRIFT-Net, DyMixOp, U-Nets, LoRA, ...

The newer models: :class:`DRIFTNet` (spectral-coupled blocks with radial band
gates), :class:`DyMixOp` (local-global mixing with dynamics-informed
connections), :class:`FunctionSpaceUNet` and :class:`AttentionOperator`
(networks turned into operators, :mod:`opflow.operators.function_space`)
and the plain :class:`UNet` (the counterexample). Their reusable layers
(resampled convolution, attention kernel integral, learnable stencil) are in
:mod:`opflow.operators.blocks`.

Every model takes a :class:`~opflow.Field` (and returns a Field on the grid it
maps to) or a plain tensor (and returns a tensor), and has a ``config`` dict
from which :func:`build_operator` rebuilds it::

    model = FNO(1, 1, modes=(12, 12), width=32)
    clone = build_operator(model.config)
    clone.load_state_dict(model.state_dict())

Peer models load through :meth:`FNO.from_neuraloperator` and
:meth:`DeepONet.from_deepxde`.
"""

from . import blocks
from .base import NeuralOperator, build_operator, register_operator, registered_operators
from .blocks import AttentionKernelIntegral, InterpConv, LearnableStencil
from .deeponet import DeepONet
from .driftnet import DRIFTNet, SpectralCoupledBlock
from .dymixop import DyMixLayer, DyMixOp
from .fno import FNO, FourierLayer
from .function_space import AttentionOperator, FunctionSpaceUNet, UNet
from .interop import deeponet_from_deepxde, fno_from_neuraloperator
from .lora import LoRA, add_lora, merge_lora, remove_lora, unmerge_lora
from .mgno import MgNO, VCycle
from .multitask import MultiTaskDeepONet
from .pod_deeponet import POD_DeepONet

__all__ = [
    "AttentionKernelIntegral",
    "AttentionOperator",
    "DRIFTNet",
    "DeepONet",
    "DyMixLayer",
    "DyMixOp",
    "FNO",
    "FourierLayer",
    "FunctionSpaceUNet",
    "InterpConv",
    "LearnableStencil",
    "LoRA",
    "MgNO",
    "MultiTaskDeepONet",
    "NeuralOperator",
    "POD_DeepONet",
    "SpectralCoupledBlock",
    "UNet",
    "VCycle",
    "blocks",
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
