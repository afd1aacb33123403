"""The Zarr v3 activity store: one chunk per worm, lazily opened, written atomically.

Layout (dims ``worm``, ``time``, ``neuron``, ``roi``, ``frame`` and ``behavior_<x>_k``):
every variable of :mod:`activity.homogenize` gains a leading ``worm`` dim; per-worm facts
(``dataset``, ``source_file``, ``source_sha256``, ``worm_id``, ``format``...) are ``worm``
coords. Every dim is padded with NaN / "" up to a *capacity* that is a whole number of
chunks (``worm`` grows 64 at a time), so a longer recording or another worm never
rewrites a chunk or, mostly, any metadata; the store's attrs record the real extents
(``n_worms`` for the worm axis) and :func:`open_activity` trims to them. The 2-D time
series (calcium, ROI and native traces, multi-column behaviour) have one chunk per worm;
the small per-worm variables (1-D series such as ``valid`` or velocity, ROI labels,
``observed``, per-worm facts) one chunk per 64 worms, and :func:`open_activity` presents
every variable one chunk per worm. Chunk files sit side by side
(``calcium/c.3.0.0``); numbers are compressed with blosc lz4.

Atomicity: a writer takes ``STORE.lock``, builds the new version in ``STORE.staging-*``
(a hard-link clone of the current store: a file that was already there is replaced by a
rename, never written in place, so the live store's files are never modified), then
swaps the two directories in one ``renameat2(RENAME_EXCHANGE)`` call (two renames where
that call is missing, with recovery on the next open). A killed writer leaves only a
staging directory, removed by the next writer; the store it started from is untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activity import zarr_io
from activity import zarr_layout as layout
from activity.homogenize import HomogenizeParams, Worm
from activity.zarr_layout import chunk_per_worm, conform, coordinates_of, dims_of, fill_for, xarray_attrs
from wormflow.core.atomic import recover, swap_in
from wormflow.core.errors import StoreError
from wormflow.core.provenance import package_version, wormflow_version
from wormflow.core.neurons import FLOAT_COLUMNS, neuron_names, registry_columns

if TYPE_CHECKING:
    import xarray as xr

STORE_FORMAT = "wormflow-activity/1"
QUEUED_WORMS = 2                 # worms read ahead of the writer thread (bounds memory)
PER_WORM_ATTRS = ("n_frames", "n_rois", "n_labelled", "n_grid_dropped", "n_values_masked", "duration_s",
                  "native_t0", "native_median_dt", "max_frame_gap_s")
PER_WORM_TEXT = ("label_notes", "events", "metadata")
PER_WORM_COORDS = ("worm", "dataset", "source_file", "source_sha256", "worm_id", "format", "extra_sources",
                   "signal", "units")
FACT_DTYPES = {**{k: np.dtype(object) for k in PER_WORM_COORDS},
               **{k: np.dtype(np.int64) for k in ("n_frames", "n_rois", "n_labelled", "n_grid_dropped",
                                                  "n_values_masked")},
               **{k: np.dtype(np.float64) for k in ("duration_s", "native_t0", "native_median_dt",
                                                    "max_frame_gap_s")},
               **{k: np.dtype(object) for k in PER_WORM_TEXT}}



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


# facts every activity store states: a store without one is refused, never read with a default
REQUIRED_FACTS = ("dt", "homogenize_params", "n_worms", "extent", "wormflow_version", "provenance")


def store_fact(ds: "xr.Dataset", name: str) -> float | str:
    """One of the store's facts (``dt``...), from a Dataset :func:`open_activity` returned;
    a clear :class:`StoreError` naming the store and the fact when it is missing."""
    if name not in ds.attrs:
        where = ds.encoding.get("wormflow_store") or "the activity dataset"
        raise StoreError(f"{where}: the store does not state its {name!r}; it cannot be read without it "
                         "(was it written by wormflow?)")
    value = ds.attrs[name]
    return float(value) if name == "dt" else value


def open_activity(path: str | Path, trim: bool = True) -> "xr.Dataset":
    """Open an activity store lazily (dask, one chunk per worm).

    Dims: ``worm``, ``time`` (seconds from 0, ``attrs["dt"]``), ``neuron`` (the 302
    registry names in registry order), ``roi``, ``frame``. With ``trim`` (default) the
    padding beyond the longest recording is cut off.
    """
    import xarray as xr

    path = Path(path)
    recover(path)
    attrs = _attrs(path)
    missing = [k for k in REQUIRED_FACTS if k not in attrs]
    if missing:
        raise StoreError(f"{path}: the store does not state {', '.join(map(repr, missing))}; "
                         "refusing to read it with a guessed value")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # one dask chunk per worm from the start (the small per-worm tables share a chunk
            # per block of worms on disk): a rechunk afterwards would cost 50 rechunk graphs
            # and, on first use, dask importing distributed (0.7 s of a cold open)
            ds = xr.open_zarr(path, consolidated=True, chunks={"worm": 1}, zarr_format=3)
    except Exception as exc:  # zarr/xarray raise many types for a damaged store
        raise StoreError(f"{path}: the activity store cannot be opened: {exc}") from exc
    ext = dict(attrs.get("extent", {}))
    ext["worm"] = int(attrs.get("n_worms", ds.sizes.get("worm", 0)))   # the worm axis grows in blocks: always cut
    if not trim:
        ext = {"worm": ext["worm"]}
    ds = ds.isel({d: slice(0, n) for d, n in ext.items() if d in ds.dims})
    ds = _eager_worm_coords(path, ds)
    _describe_signal(ds)
    ds.encoding["wormflow_store"] = str(path)
    return ds


def _eager_worm_coords(path: Path, ds: "xr.Dataset") -> "xr.Dataset":
    """The per-worm coordinates (dataset, worm_id, signal...) as numpy, read in one pass
    each without dask: a few bytes per worm, needed by selections (``where``, ``groupby``)
    and by every summary, and never worth a task graph (or a cluster) to compute."""
    import xarray as xr

    names = [c for c in PER_WORM_COORDS if c in ds.coords and c != "worm"]
    if not names:
        return ds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = xr.open_zarr(path, consolidated=True, chunks=None, zarr_format=3)
    n = ds.sizes["worm"]
    return ds.assign_coords({c: ("worm", raw[c].values[:n]) for c in names})


def _describe_signal(ds: "xr.Dataset") -> None:
    """State on the trace variables the signal and units their worms share, or that they differ."""
    for coord in ("signal", "units"):
        if coord not in ds.coords:
            continue
        values = sorted({str(v) for v in ds[coord].values.tolist()})
        said = values[0] if len(values) == 1 else f"differs between worms: see the '{coord}' coordinate"
        for name in ("calcium", "roi_calcium", "native_calcium"):
            if name in ds:
                ds[name].attrs[coord] = said


# ---------------------------------------------------------------- writing

class StoreWriter:
    """Append homogenized worms to a store as one atomic transaction.

    ``with StoreWriter(path, params) as w: w.append(worm, sha256, name)``: the new version
    replaces the store when the block exits normally; on an exception the store is left
    as it was. ``worm`` is a :class:`activity.homogenize.Worm` or the ``xarray.Dataset``
    of :func:`activity.homogenize.homogenize`.

    How it is fast and small:

    * it writes the Zarr v3 files itself (:mod:`activity.zarr_io`), with arrays laid out
      exactly as ``xarray.to_zarr`` lays them out (``dimension_names``, ``coordinates``
      and ``_FillValue`` attributes), so ingest imports neither xarray, pandas nor
      zarr-python, and a chunk costs its compression and one file;
    * one writer thread: ``append`` hands the worm's 2-D series to it and returns, so
      the next file is read while this one is written; at most ``QUEUED_WORMS`` wait;
    * the worm axis grows in blocks of 64 worms (the real count is in the store's
      ``extent``, as for every padded dim), so appending a worm rewrites no metadata;
      the small per-worm variables share one chunk per block and are written once per
      block (or at the end).
    """

    def __init__(self, path: str | Path, params: HomogenizeParams, provenance: dict | None = None):
        self.path = Path(path)
        self.params = params
        self.provenance = provenance or {}
        self.staging = self.path.with_name(f"{self.path.name}.staging-{os.getpid()}")
        self._lock_fh = None
        self._attrs: dict = {}
        self._n = 0                               # worms in the store once the queue drains
        self._tables: list[tuple[int, dict, dict]] = []    # (index, small variables, per-worm facts) not yet written
        self._queue: list[Future] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wormflow-store")
        # below: touched only by the writer thread
        self._arrays: dict[str, zarr_io.Array] | None = None
        self._coords: dict[str, list[str]] = {}
        self._extent: dict[str, int] = {}
        self._capacity: dict[str, int] = {}

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
        self._n = int(self._attrs.get("n_worms", 0))
        self._extent = dict(self._attrs.get("extent", {}))
        self._extent.setdefault("worm", self._n)
        self._capacity = dict(self._attrs.get("capacity", {}))
        if not self._n:          # a new store: its fixed arrays are created while the first file is read
            self._submit(self._create_store)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
                if self._n > int(self._attrs.get("n_worms", 0)):
                    self._finalize()
                    swap_in(self.staging, self.path)
        finally:
            self._thread.shutdown(wait=True, cancel_futures=True)
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
        n = int(self._attrs.get("n_worms", 0))
        if not n:
            return set(), set()

        def read():
            arrays = self._open_arrays()
            return [arrays[k].read((0,), (n,)) for k in ("source_sha256", "worm_id", "worm")]

        sha, worm_id, worm = self._thread.submit(read).result()
        return set(zip(sha.tolist(), worm_id.tolist())), set(worm.tolist())

    def append(self, worm: "Worm | xr.Dataset", source_sha256: str, name: str,
               extra_sha256: dict | None = None) -> None:
        """Queue one homogenized worm (:func:`activity.homogenize.homogenize_worm` or ``homogenize``)."""
        if not isinstance(worm, Worm):
            worm = Worm.from_dataset(worm)
        a = worm.attrs
        facts = {"worm": name, "dataset": a["dataset"], "source_file": str(Path(a["source_file"]).resolve()),
                 "source_sha256": source_sha256, "worm_id": a["worm_id"], "format": a["format"],
                 "extra_sources": json.dumps(extra_sha256 or {}), "signal": a["signal"], "units": a["units"]}
        facts.update({k: a[k] for k in PER_WORM_ATTRS + PER_WORM_TEXT})
        series = {k: v for k, v in worm.variables.items() if chunk_per_worm(v[0])}
        small = {k: v for k, v in worm.variables.items() if not chunk_per_worm(v[0])}
        index, self._n = self._n, self._n + 1
        self._tables.append((index, small, facts))
        self._submit(self._write_series, index, series, worm.sizes, worm.variables)
        if (index + 1) % layout.WORM_BLOCK == 0:
            self.flush(wait=False)
        while len(self._queue) > QUEUED_WORMS:       # bounded: memory stays flat however many worms come
            self._queue.pop(0).result()

    def flush(self, wait: bool = True) -> None:
        """Queue the pending per-worm tables; with ``wait``, return once everything is written."""
        if self._tables:
            self._submit(self._write_tables, list(self._tables))
            self._tables.clear()
        if wait:
            while self._queue:
                self._queue.pop(0).result()        # re-raises a failure of the writer thread

    # -- the writer thread
    def _submit(self, fn, *args) -> None:
        self._queue.append(self._thread.submit(fn, *args))

    def _write_series(self, index: int, series: dict, sizes: dict, variables: dict) -> None:
        for dim, size in sizes.items():
            if dim != "neuron":
                self._extent[dim] = max(self._extent.get(dim, 0), size)
        self._extent["worm"] = max(self._extent.get("worm", 0), index + 1)
        capacity = {d: layout.capacity(d, n) for d, n in self._extent.items()}
        arrays = self._open_arrays()
        grown = {d: c for d, c in capacity.items() if c > self._capacity.get(d, 0)}
        self._capacity.update(capacity)
        if "time" not in arrays:                   # the first worm of a new store sets the time capacity
            arrays["time"] = self._static("time", np.arange(capacity["time"]) * self.params.dt, {"units": "s"})
            grown.pop("time", None)
        if grown:
            self._grow(arrays, grown)
        self._ensure(variables)
        for name, (dims, values, _) in series.items():
            arr = arrays[name]
            arr.write((index,), conform(dims_of(arr)[1:], dims, values, where=f"{self.path}: {name}")[None])

    def _write_tables(self, entries: list) -> None:
        """The small per-worm values of ``entries`` (consecutive worms): one write per array."""
        arrays = self._open_arrays()
        self._ensure({k: v for _, small, _ in entries for k, v in small.items()})
        start, k = entries[0][0], len(entries)
        names = {k for _, small, _ in entries for k in small}
        for name in sorted(names):
            arr = arrays[name]
            block = np.full((k,) + arr.shape[1:], fill_for(arr.dtype), dtype=arr.dtype)
            for i, (_, small, _) in enumerate(entries):
                if name in small:
                    v = conform(dims_of(arr)[1:], *small[name][:2], where=f"{self.path}: {name}")
                    block[(i,) + tuple(slice(0, n) for n in v.shape)] = v
            arr.write((start,), block)
        for name in PER_WORM_COORDS + PER_WORM_ATTRS + PER_WORM_TEXT:
            arrays[name].write((start,), np.array([facts[name] for _, _, facts in entries], dtype=arrays[name].dtype))

    def _ensure(self, variables: dict) -> None:
        """Create the arrays of variables the store has not seen yet (earlier worms: fill)."""
        new = {}
        for name, (dims, values, attrs) in variables.items():
            if name not in self._arrays and (name not in new or len(dims) > len(new[name][0])):
                new[name] = (tuple(dims), values.dtype, attrs)      # (T, K) wins over (T,)
        for name, (dims, dtype, attrs) in new.items():
            self._arrays[name] = self._create(name, ("worm",) + dims, dtype, attrs)

    def _open_arrays(self) -> dict:
        if self._arrays is None:
            self._arrays = zarr_io.open_arrays(self.staging)
            self._coords = coordinates_of(self._arrays)
            if "worm" not in self._capacity:       # a store written before the worm axis had a capacity
                self._capacity["worm"] = int(self._arrays["worm"].shape[0])
        return self._arrays

    def _create_store(self) -> None:
        """A new store's fixed arrays: the neuron coordinates (the registry's columns) and
        the per-worm facts; ``time`` waits for the first worm's length."""
        self.staging.mkdir(parents=True)
        zarr_io.write_group(self.staging, {}, {})
        self._arrays = {}
        self._capacity = {"worm": layout.capacity("worm", 1)}
        cols = registry_columns()
        neuron_coords = ["neuron_" + c if c in ("lr", "dv") else c for c in cols]
        self._coords = {"worm": sorted(PER_WORM_COORDS[1:]), "neuron": sorted(neuron_coords)}
        self._arrays["neuron"] = self._static("neuron", np.array(neuron_names(), dtype=object), {})
        for name, values in zip(neuron_coords, cols.values()):
            self._arrays[name] = self._static(name, np.array(values, dtype=float if name in FLOAT_COLUMNS else object), {})
        for name, dtype in FACT_DTYPES.items():
            self._arrays[name] = self._create(name, ("worm",), dtype, {}, coord=name in PER_WORM_COORDS)

    def _static(self, name: str, values: np.ndarray, attrs: dict) -> zarr_io.Array:
        dims = ("time",) if name == "time" else ("neuron",)
        arr = zarr_io.Array.create(self.staging / name, zarr_io.array_metadata(
            values.shape, values.shape, values.dtype, fill_for(values.dtype), dims,
            xarray_attrs(values.dtype, attrs, [])))
        arr.write((0,), values)
        return arr

    def _create(self, name: str, dims: tuple, dtype: np.dtype, attrs: dict, coord: bool = False) -> zarr_io.Array:
        capacity = self._capacity
        for d in dims:
            if d not in capacity and d != "neuron":
                raise StoreError(f"{self.path}: dimension {d} of new variable {name} has no capacity")
        shape = tuple(capacity.get(d, layout.N_NEURONS) for d in dims)
        chunks = (1 if chunk_per_worm(dims) else layout.WORM_BLOCK,) + tuple(
            layout.block(d) if d in capacity else layout.N_NEURONS for d in dims[1:])
        coords = [] if coord else sorted(self._coords["worm"] + (self._coords["neuron"] if "neuron" in dims else []))
        # chunk files side by side (c.0.0.0), not nested folders: a new worm's chunk then
        # creates one file instead of a file and up to three directories
        return zarr_io.Array.create(self.staging / name, zarr_io.array_metadata(
            shape, chunks, dtype, fill_for(dtype), dims, xarray_attrs(np.dtype(dtype), attrs, coords)))

    def _grow(self, arrays: dict, grown: dict) -> None:
        for arr in arrays.values():
            if any(d in grown for d in dims_of(arr)):
                arr.resize(tuple(grown.get(d, s) for d, s in zip(dims_of(arr), arr.shape)))
        if "time" in grown:
            arrays["time"].write((0,), np.arange(grown["time"]) * self.params.dt)

    def _finalize(self) -> None:
        now = datetime.now(timezone.utc).isoformat()
        attrs = {
            **self._attrs,                        # what the store already says, updated below
            "wormflow_store": STORE_FORMAT, "wormflow_version": wormflow_version(),
            "dt": self.params.dt, "homogenize_params": self.params.to_json(),
            "n_worms": self._n, "extent": self._extent,
            "capacity": self._capacity, "created": self._attrs.get("created", now), "updated": now,
            "versions": {m: package_version(m) for m in ("numpy", "scipy", "xarray", "zarr", "h5py", "dask")},
            "provenance": self.provenance,
        }
        # the arrays' metadata consolidated in the group's zarr.json, as zarr.consolidate_metadata does
        self._thread.submit(lambda: zarr_io.write_group(self.staging, attrs, self._open_arrays())).result()



