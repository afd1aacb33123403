"""Writing analysis results: atomic Zarr replacement and string dtypes zarr 3 accepts."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from wormflow.core.atomic import recover, replacing, swap_in


def object_strings(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width and numpy StringDType strings become object dtype (zarr 3 warns on ``<U``)."""
    def fix(v):
        return v.astype(object) if v.dtype.kind in "UT" else v
    ds = ds.map(fix)
    return ds.assign_coords({k: fix(c.variable) for k, c in ds.coords.items() if c.dtype.kind in "UT"})


def write_zarr_atomic(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a Zarr v3 store that replaces ``path`` in one rename: a failed or killed
    write leaves the previous version in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    for stale in path.parent.glob(f".{path.name}.staging-*"):
        if not _alive(stale.name.rsplit("-", 1)[-1]):     # left by a killed writer
            shutil.rmtree(stale, ignore_errors=True)
    staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "consolidated metadata is not in the v3 spec" (yet)
            object_strings(ds).to_zarr(staging, mode="w", zarr_format=3, consolidated=True)
        swap_in(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def open_result(path: str | Path) -> xr.Dataset:
    """Open an analysis result written by ``write_zarr_atomic`` (lazily)."""
    recover(Path(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # "consolidated metadata is not in the v3 spec" (yet)
        return xr.open_zarr(path, consolidated=True, zarr_format=3)


def json_safe(value):
    """numpy scalars and arrays inside nested structures as plain Python values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def save_checkpoint(result, path: str | Path) -> Path:
    """A LangevinFlow fit as ``.npz`` of plain arrays (no pickled objects), written
    atomically: a killed write leaves the previous checkpoint in place."""
    path = Path(path)
    with replacing(path) as tmp:
        np.savez(tmp, **result.to_arrays())
    return path


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """The fit saved by ``save_checkpoint``; arrays only, ``allow_pickle=False``."""
    from analysis.langevin import from_arrays

    with np.load(path, allow_pickle=False) as z:
        return from_arrays({k: z[k] for k in z.files}, device)
