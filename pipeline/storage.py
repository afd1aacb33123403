"""Writing analysis results: one Icechunk commit per result, and string dtypes zarr 3 accepts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from wormflow.core.atomic import replacing
from wormflow.core.repository import object_strings


def write_zarr_atomic(ds: xr.Dataset, path: str | Path, message: str | None = None) -> Path:
    """Write ``ds`` as the whole content of the Icechunk store at ``path`` (a path or URL) in
    one commit: a failed or killed write leaves the previous version in place, and the
    earlier versions stay readable. The writer holds the store's lock on a local folder."""
    from wormflow.core import repository
    from wormflow.core.provenance import wormflow_version

    ds = ds.copy()
    ds.attrs = json_attrs(ds.attrs)
    for v in ds.variables.values():
        v.attrs = json_attrs(v.attrs)
    with repository.writer_lock(path):
        repo = repository.open_repository(path, create=True)
        session = repo.writable_session(repository.BRANCH)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            object_strings(ds).to_zarr(session.store, mode="w", consolidated=False, zarr_format=3)
        name = ds.attrs.get("analysis") or Path(str(path)).name
        repository.commit(session, message or f"write {name} (wormflow {wormflow_version()})",
                          {"wormflow_version": wormflow_version(), "variables": sorted(map(str, ds.data_vars))}, path)
    return Path(str(path))


def json_attrs(attrs: dict) -> dict:
    """Attributes as strict JSON, which Zarr metadata must be: a NaN or infinite number (an
    undefined score, e.g. restart stability from one restart) becomes null."""
    import math

    def clean(v):
        if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return {k: clean(v) for k, v in attrs.items()}


def open_result(path: str | Path, version: str | None = None) -> xr.Dataset:
    """Open an analysis result written by ``write_zarr_atomic`` (lazily), at its latest
    commit or at ``version``."""
    from wormflow.core import repository

    session = repository.readonly_session(repository.open_repository(path), version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(session.store, consolidated=False, zarr_format=3)


def export_plain_zarr(store, dest: str | Path, version: str | None = None) -> Path:
    """Any wormflow store (a path or URL) written as an ordinary Zarr v3 folder ``dest``
    with consolidated metadata, for tools that do not speak Icechunk. ``dest`` must not
    exist; the folder appears complete or not at all (written beside it, then renamed)."""
    import shutil

    from wormflow.core import repository
    from wormflow.core.errors import StoreError

    dest = Path(dest)
    if dest.exists():
        raise StoreError(f"{dest}: exists; choose a new folder")
    session = repository.readonly_session(repository.open_repository(store), version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3)
        for v in ds.variables.values():
            v.encoding = {}
        ds.attrs = dict(ds.attrs, exported_from=str(repository.parse_location(store)),
                        exported_snapshot=session.snapshot_id)
        tmp = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            object_strings(ds).to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


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
