"""The Zarr v3 activity store: one chunk per worm, lazily opened, written atomically.

Layout (dims ``worm``, ``time``, ``neuron``, ``roi``, ``frame`` and ``behavior_<x>_k``):
every variable of :mod:`activity.homogenize` gains a leading ``worm`` dim; per-worm facts
(``dataset``, ``source_file``, ``source_sha256``, ``worm_id``, ``format``...) are ``worm``
coords. Non-worm dims are padded with NaN / "" up to a *capacity* that is always a whole
number of chunks, so growing a dim for a longer recording never rewrites a chunk; the
store's attrs record the real extents and :func:`open_activity` trims to them.

Atomicity: a writer takes ``STORE.lock``, builds the new version in ``STORE.staging-*``
(a hard-link clone of the current store: zarr replaces files by rename, so the live
store's files are never modified), then swaps the two directories in one
``renameat2(RENAME_EXCHANGE)`` call (two renames where that call is missing, with
recovery on the next open). A killed writer leaves only a staging directory, removed by
the next writer; the store it started from is untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import dask.array  # noqa: F401  (open_activity is dask-backed; importing here keeps the cost out of the first write)
import numpy as np
import xarray as xr
import zarr

from activity.homogenize import HomogenizeParams
from connectome.atomic import recover, swap_in
from connectome.errors import StoreError
from connectome.neurons import neuron_table

STORE_FORMAT = "wormflow-activity/1"
BLOCKS = {"time": 2048, "roi": 256, "frame": 2048}
FLUSH_EVERY = 8                  # worms written per to_zarr call (amortizes its fixed cost)
K_BLOCK = 64                     # extra dims of multi-column behaviour (body angles...)
PER_WORM_ATTRS = ("n_frames", "n_rois", "n_labelled", "duration_s", "native_t0", "native_median_dt")
PER_WORM_TEXT = ("label_notes", "events", "metadata")
WORM_COORDS = ("dataset", "source_file", "source_sha256", "worm_id", "format", "extra_sources")

warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")


def wormflow_version() -> str:
    try:
        return importlib_metadata.version("wormflow")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


def _block(dim: str) -> int:
    return BLOCKS.get(dim, K_BLOCK)


def _capacity(dim: str, size: int) -> int:
    b = _block(dim)
    return max(b, -(-size // b) * b)


# ---------------------------------------------------------------- atomic swap

def _hardlink_clone(src: Path, dst: Path) -> None:
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(root) / name, dst / rel / name)


# ---------------------------------------------------------------- reading

def _attrs(path: Path) -> dict:
    meta = path / "zarr.json"
    if not meta.is_file():
        raise StoreError(f"{path}: not an activity store (no zarr.json)")
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: zarr.json is not valid JSON: {exc}") from exc
    if attrs.get("wormflow_store") != STORE_FORMAT:
        raise StoreError(f"{path}: not a wormflow activity store (store format {attrs.get('wormflow_store')!r})")
    return attrs


def open_activity(path: str | Path, trim: bool = True) -> xr.Dataset:
    """Open an activity store lazily (dask, one chunk per worm).

    Dims: ``worm``, ``time`` (seconds from 0, ``attrs["dt"]``), ``neuron`` (the 302
    registry names in registry order), ``roi``, ``frame``. With ``trim`` (default) the
    padding beyond the longest recording is cut off.
    """
    path = Path(path)
    recover(path)
    attrs = _attrs(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = xr.open_zarr(path, consolidated=True, chunks={}, zarr_format=3)
    except Exception as exc:  # zarr/xarray raise many types for a damaged store
        raise StoreError(f"{path}: the activity store cannot be opened: {exc}") from exc
    ext = attrs.get("extent", {})
    if trim and ds.sizes.get("worm", 0):
        ds = ds.isel({d: slice(0, n) for d, n in ext.items() if d in ds.dims})
    return ds


# ---------------------------------------------------------------- writing

class StoreWriter:
    """Append homogenized worms to a store as one atomic transaction.

    ``with StoreWriter(path, params) as w: w.append(worm_ds, sha256)``: the new version
    replaces the store when the block exits normally; on an exception the store is left
    as it was.
    """

    def __init__(self, path: str | Path, params: HomogenizeParams, provenance: dict | None = None):
        self.path = Path(path)
        self.params = params
        self.provenance = provenance or {}
        self.staging = self.path.with_name(f"{self.path.name}.staging-{os.getpid()}")
        self._lock_fh = None
        self._appended = 0
        self._attrs: dict = {}
        self._buffer: list = []

    # -- transaction
    def __enter__(self) -> "StoreWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.path.with_name(self.path.name + ".lock"), "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise StoreError(f"{self.path}: another wormflow process is writing to this store; try again when it ends")
        recover(self.path)
        for stale in self.path.parent.glob(f"{self.path.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if self.path.exists():
            self._attrs = _attrs(self.path)
            stored = self._attrs.get("homogenize_params")
            if stored and json.loads(stored) != json.loads(self.params.to_json()):
                self._release()
                raise StoreError(f"{self.path}: store was built with parameters {stored}; cannot append worms "
                                 f"homogenized with {self.params.to_json()} (use a new store)")
            _hardlink_clone(self.path, self.staging)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
            if exc_type is None and self._appended:
                self._finalize()
                swap_in(self.staging, self.path)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            self._release()

    def _release(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- content
    def existing(self) -> tuple[set[tuple[str, str]], set[str]]:
        """(source sha256, worm id in file) pairs and worm names already stored, in one read."""
        if not self._attrs.get("n_worms"):
            return set(), set()
        ds = xr.open_zarr(self.staging, consolidated=False, chunks=None, zarr_format=3)
        keys = set(zip(ds["source_sha256"].values.tolist(), ds["worm_id"].values.tolist()))
        return keys, set(ds["worm"].values.tolist())

    def append(self, worm: xr.Dataset, source_sha256: str, name: str, extra_sha256: dict | None = None) -> None:
        """Add one homogenized worm (the output of :func:`activity.homogenize.homogenize`)."""
        self._buffer.append((worm, source_sha256, name, extra_sha256 or {}))
        if len(self._buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the buffered worms to the staging store (one to_zarr call)."""
        if not self._buffer:
            return
        extent = dict(self._attrs.get("extent", {}))
        for worm, *_ in self._buffer:
            for dim, size in worm.sizes.items():
                if dim != "neuron":
                    extent[dim] = max(extent.get(dim, 0), int(size))
        capacity = {dim: _capacity(dim, n) for dim, n in extent.items()}
        stored = self._attrs.get("capacity", {})
        n_worms = int(self._attrs.get("n_worms", 0))
        parts = [self._to_layout(w, capacity, sha, name, extra) for w, sha, name, extra in self._buffer]
        ds = xr.concat(parts, dim="worm", data_vars="all", coords="different", compat="equals", join="outer",
                       fill_value=_FILLS) if len(parts) > 1 else parts[0]
        if n_worms == 0:
            self._first_write(ds, capacity)
        else:
            grown = {d: c for d, c in capacity.items() if c > stored.get(d, 0)}
            if grown:
                self._grow(grown)
            self._append_arrays(self._align_variables(ds, capacity, n_worms), n_worms)
        self._appended += len(parts)
        self._attrs.update({"extent": extent, "capacity": {**stored, **capacity}, "n_worms": n_worms + len(parts)})
        self._buffer.clear()

    def _to_layout(self, worm: xr.Dataset, capacity: dict, sha: str, name: str, extra_sha: dict) -> xr.Dataset:
        ds = worm.drop_vars("time").map(_pad_to, capacity=capacity)
        ds = ds.assign_coords(time=("time", np.arange(capacity["time"]) * self.params.dt, {"units": "s"}))
        ds = ds.expand_dims(worm=[name])
        a = worm.attrs
        per_worm = {k: ("worm", [a[k]]) for k in PER_WORM_ATTRS}
        per_worm.update({k: ("worm", np.array([a[k]], dtype=object)) for k in PER_WORM_TEXT})
        ds = ds.assign(per_worm)
        coords = {"dataset": a["dataset"], "source_file": str(Path(a["source_file"]).resolve()),
                  "source_sha256": sha, "worm_id": a["worm_id"], "format": a["format"],
                  "extra_sources": json.dumps(extra_sha)}
        ds = ds.assign_coords({k: ("worm", np.array([v], dtype=object)) for k, v in coords.items()})
        ds.attrs = {}
        return ds

    def _encoding(self, ds: xr.Dataset, capacity: dict) -> dict:
        enc = {}
        for v in ds.variables:
            if "worm" in ds[v].dims:
                enc[v] = {"chunks": tuple(1 if d == "worm" else _block(d) if d in capacity else ds.sizes[d]
                                          for d in ds[v].dims)}
        return enc

    def _first_write(self, ds: xr.Dataset, capacity: dict) -> None:
        table = neuron_table()
        ds = ds.assign_coords({f"neuron_{c}" if c in ("lr", "dv") else c:
                               ("neuron", table[c].to_numpy(dtype=object if table[c].dtype == object else None))
                               for c in table.columns})
        ds.to_zarr(self.staging, mode="w", consolidated=False, zarr_format=3,
                   encoding=self._encoding(ds, capacity))

    def _staging_group(self) -> zarr.Group:
        # use_consolidated=False: the clone still carries the previous version's consolidated
        # metadata, which would hide every resize made since
        return zarr.open_group(self.staging, mode="r+", zarr_format=3, use_consolidated=False)

    def _grow(self, grown: dict) -> None:
        group = self._staging_group()
        for name, arr in group.arrays():
            dims = arr.metadata.dimension_names or ()
            if any(d in grown for d in dims):
                arr.resize(tuple(grown.get(d, s) for d, s in zip(dims, arr.shape)))
        if "time" in grown:
            group["time"][:] = np.arange(grown["time"]) * self.params.dt

    def _append_arrays(self, ds: xr.Dataset, n_worms: int) -> None:
        """Write ``ds`` (already in the stored layout) after the first ``n_worms`` worms.

        Straight through zarr rather than ``to_zarr(append_dim=...)``: xarray re-reads and
        re-validates every array's metadata on each append, which cost ~0.1 s per worm.
        """
        group = self._staging_group()
        k = ds.sizes["worm"]
        for name, arr in group.arrays():
            dims = tuple(arr.metadata.dimension_names or ())
            if "worm" not in dims:
                continue
            values = ds[name].transpose(*dims).values
            axis = dims.index("worm")
            shape = list(arr.shape)
            shape[axis] = n_worms + k
            arr.resize(tuple(shape))
            where = tuple(slice(n_worms, n_worms + k) if d == "worm" else slice(None) for d in dims)
            arr[where] = values

    def _align_variables(self, ds: xr.Dataset, capacity: dict, n_worms: int) -> xr.Dataset:
        group = self._staging_group()
        have = {name: arr for name, arr in group.arrays()}
        for v in list(ds.data_vars):
            if v in have:
                stored_dims = tuple(have[v].metadata.dimension_names or ())
                if stored_dims != ds[v].dims:
                    extra = [d for d in stored_dims if d not in ds[v].dims]
                    if len(stored_dims) == ds[v].ndim + 1 and len(extra) == 1:   # (T,) into (T, K): K=1
                        ds[v] = _pad_to(ds[v].expand_dims({extra[0]: 1}, axis=-1).transpose(*stored_dims),
                                        {extra[0]: capacity.get(extra[0], _capacity(extra[0], 1))})
                    else:
                        raise StoreError(f"{self.path}: variable {v} is stored with dims {stored_dims} but the new "
                                         f"worm has {ds[v].dims}")
                continue
            if v not in have:                     # new behaviour variable: backfill earlier worms
                var = ds[v]
                shape = tuple(n_worms if d == "worm" else capacity.get(d, var.sizes[d]) for d in var.dims)
                chunks = tuple(1 if d == "worm" else _block(d) if d in capacity else var.sizes[d] for d in var.dims)
                group.create_array(v, shape=shape, chunks=chunks, dtype=var.dtype, fill_value=np.nan,
                                   dimension_names=var.dims, attributes=dict(var.attrs))
                for d in var.dims:
                    if d not in capacity and d != "worm":
                        raise StoreError(f"{self.path}: dimension {d} of new variable {v} has no capacity")
        for name, arr in have.items():
            dims = tuple(arr.metadata.dimension_names or ())
            if "worm" in dims and name not in ds.variables:
                shape = tuple(capacity.get(d, s) if d != "worm" else 1 for d, s in zip(dims, arr.shape))
                dtype = object if arr.dtype.kind in "OUT" or "str" in str(arr.dtype) else arr.dtype
                ds[name] = (dims, np.full(shape, _fill_for(dtype), dtype=dtype))
        return ds

    def _finalize(self) -> None:
        group = self._staging_group()
        now = datetime.now(timezone.utc).isoformat()
        attrs = {
            "wormflow_store": STORE_FORMAT, "wormflow_version": wormflow_version(),
            "dt": self.params.dt, "homogenize_params": self.params.to_json(),
            "n_worms": self._attrs["n_worms"], "extent": self._attrs["extent"],
            "capacity": self._attrs["capacity"], "created": self._attrs.get("created", now), "updated": now,
            "versions": {m: _version(m) for m in ("numpy", "scipy", "xarray", "zarr", "h5py", "dask")},
            "provenance": self.provenance,
        }
        group.attrs.update(attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # "consolidated metadata is not in the v3 spec" (yet)
            zarr.consolidate_metadata(self.staging, zarr_format=3)


_FILLS = {"calcium": np.nan}


def _fill_for(dtype) -> object:
    if dtype == object:
        return ""
    if dtype == bool:
        return False
    return np.nan


def _pad_to(var: xr.DataArray, capacity: dict) -> xr.DataArray:
    """Pad every capacity-managed dim of ``var`` to its capacity with a fill that suits its dtype."""
    shape = tuple(max(capacity.get(d, n), n) for d, n in zip(var.dims, var.shape))
    if shape == var.shape:
        return var
    # np.full, not np.pad: np.pad is slower and fills object arrays with np.str_, which
    # zarr's string codec refuses
    data = np.full(shape, _fill_for(var.dtype), dtype=var.dtype)
    data[tuple(slice(0, n) for n in var.shape)] = var.values
    return xr.DataArray(data, dims=var.dims, attrs=var.attrs)


def _version(module: str) -> str:
    try:
        return importlib_metadata.version(module)
    except importlib_metadata.PackageNotFoundError:
        return ""
