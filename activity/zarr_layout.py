"""How the activity store lays a variable out in Zarr v3: chunk and capacity sizes, and
the attributes ``xarray.to_zarr`` would write, so that the writer (which writes the Zarr
files itself, :mod:`activity.zarr_io`) produces stores xarray reads as its own."""

from __future__ import annotations

import numpy as np

from activity.zarr_io import string_as_object
from wormflow.core.errors import StoreError

BLOCKS = {"time": 2048, "roi": 256, "frame": 2048}
K_BLOCK = 64                     # extra dims of multi-column behaviour (body angles...)
WORM_BLOCK = 64                  # worm-axis growth step; small per-worm variables: worms per chunk
N_NEURONS = 302
NAN_FILL = "AAAAAAAA+H8="        # xarray's _FillValue attribute for NaN (float64, base64)


def block(dim: str) -> int:
    return WORM_BLOCK if dim == "worm" else BLOCKS.get(dim, K_BLOCK)


def capacity(dim: str, size: int) -> int:
    b = block(dim)
    return max(b, -(-size // b) * b)


def chunk_per_worm(dims) -> bool:
    """The data, one chunk per worm: 2-D series along time or native frames (calcium,
    ROI traces, multi-column behaviour). 1-D series (``valid``, ``native_time``, scalar
    behaviour: a few kB per worm) share a chunk per block of worms, as the ROI tables do,
    so that a worm writes a handful of files however many small variables it has."""
    dims = [d for d in dims if d != "worm"]
    return len(dims) >= 2 and ("time" in dims or "frame" in dims)


def dims_of(arr) -> tuple[str, ...]:
    return arr.dims


def coordinates_of(arrays: dict) -> dict[str, list[str]]:
    """The coordinate names an existing store gives its per-worm and per-neuron variables."""
    worm = arrays["n_frames"].attrs.get("coordinates", "").split() if "n_frames" in arrays else []
    calcium = arrays["calcium"].attrs.get("coordinates", "").split() if "calcium" in arrays else []
    return {"worm": worm, "neuron": [c for c in calcium if c not in worm]}


def conform(stored_dims: tuple, dims: tuple, values: np.ndarray, where: str) -> np.ndarray:
    """One worm's ``values`` (dims ``dims``) shaped for an array stored with ``stored_dims``."""
    dims = tuple(dims)
    if dims == stored_dims:
        return values
    if len(stored_dims) == len(dims) + 1 and stored_dims[:-1] == dims:     # (T,) into (T, K): K = 1
        return values[..., None]
    raise StoreError(f"{where} is stored with dims {stored_dims} but the new worm has {dims}")


def xarray_attrs(dtype: np.dtype, attrs: dict, coords: list[str]) -> dict:
    """Attributes as ``xarray.to_zarr`` writes them: the variable's, its coordinates, _FillValue for floats."""
    out = dict(attrs)
    if coords:
        out["coordinates"] = " ".join(coords)
    if np.dtype(dtype).kind == "f":
        out["_FillValue"] = NAN_FILL
    return out


def fill_for(dtype) -> object:
    dtype = string_as_object(dtype)
    if dtype == object:
        return ""
    if dtype == bool:
        return False
    if dtype.kind in "iu":
        return 0
    return np.nan
