"""Files and xarray: the edges where opflow data enters and leaves."""

from ._atomic import atomic_path, remove_stale_temporaries
from .convert import (
    OpflowAccessor,
    field_to_dataarray,
    field_to_dataset,
    flip_decreasing,
    grid_from_xarray,
    to_field,
)
from .files import open_dataset, save
from .pdebench import (
    is_pdebench,
    open_pdebench,
    pdebench_layout,
    write_pdebench_1d,
    write_pdebench_2d,
)

__all__ = [
    "OpflowAccessor",
    "atomic_path",
    "field_to_dataarray",
    "field_to_dataset",
    "flip_decreasing",
    "grid_from_xarray",
    "is_pdebench",
    "open_dataset",
    "open_pdebench",
    "pdebench_layout",
    "remove_stale_temporaries",
    "save",
    "to_field",
    "write_pdebench_1d",
    "write_pdebench_2d",
]
