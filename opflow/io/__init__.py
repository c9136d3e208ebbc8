"""Files and xarray: the edges where opflow data enters and leaves."""

from .convert import OpflowAccessor, field_to_dataarray, field_to_dataset, grid_from_xarray, to_field

__all__ = ["OpflowAccessor", "field_to_dataarray", "field_to_dataset", "grid_from_xarray", "to_field"]
