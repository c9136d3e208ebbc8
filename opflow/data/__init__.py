"""Datasets of Fields for operator learning, their batching and normalisation.

Importing this package registers :func:`collate_fields` with PyTorch's default
collate, so ``DataLoader(OperatorDataset(...), batch_size=B)`` yields Fields.
"""

from . import (
    diffusion_sorption,  # noqa: F401  (registers the "diffusion-sorption" recipe)
    kuramoto_sivashinsky,  # noqa: F401  (registers the "kuramoto-sivashinsky" recipe)
)
from .collate import collate_fields
from .generation import RECIPES, generate
from .grf import grf, grf_basis
from .multitask import (  # importing it registers the "multitask" recipe
    GEOMETRIES,
    MultiTaskData,
    generate_multitask,
    geometry_mask,
    load_multitask,
)
from .normalizer import RunningMoments, UnitGaussianNormalizer
from .operator_dataset import OperatorDataset

__all__ = ["OperatorDataset", "RunningMoments", "UnitGaussianNormalizer", "collate_fields",
           "grf", "grf_basis", "generate", "RECIPES", "GEOMETRIES", "MultiTaskData",
           "generate_multitask", "geometry_mask", "load_multitask"]
