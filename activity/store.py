"""The activity store: every worm on one neuron axis, in an Icechunk repository.

Layout (dims ``worm``, ``time``, ``neuron``, ``roi``, ``frame`` and ``behavior_<x>_k``):
every variable of :mod:`activity.homogenize` gains a leading ``worm`` dim; per-worm facts
(``dataset``, ``source_file``, ``source_sha256``, ``worm_id``, ``format``...) are ``worm``
coords, loaded eagerly by :func:`open_activity` so that ``where``, ``groupby`` and
``sel(worm=...)`` work on them. Shapes are exact (no padding); chunks and shards are in
:mod:`activity.zarr_layout`.

The store is an Icechunk repository (:mod:`wormflow.core.repository`) on a local folder or
object storage. Each ingest is one commit whose message names the files and whose
metadata lists them with their sha256, the worms added and the wormflow version; a
failed or killed ingest commits nothing. :func:`open_activity` reads the latest commit or
an earlier one (``version``), and states the snapshot it read (``store_snapshot``).
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from activity.homogenize import HomogenizeParams, Worm
from activity.zarr_layout import chunking, conform, fill_for, string_as_object, xarray_attrs
from wormflow.core import repository
from wormflow.core.errors import StoreError
from wormflow.core.neurons import FLOAT_COLUMNS, neuron_names, registry_columns
from wormflow.core.provenance import package_version, wormflow_version

if TYPE_CHECKING:
    import xarray as xr

STORE_FORMAT = "wormflow-activity/2"
WORM_STEP = 32                   # worms of room the worm axis grows by within one transaction
WRITES_AT_ONCE = 4               # zarr calls run concurrently (see _gathered)
WORMS_PER_CHUNK = 16             # worms per dask chunk of open_activity (whole shards each)
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


def _check_attrs(where, attrs: dict) -> None:
    if attrs.get("wormflow_store") != STORE_FORMAT:
        raise StoreError(f"{where}: not a wormflow activity store (store format {attrs.get('wormflow_store')!r})")
    missing = [k for k in REQUIRED_FACTS if k not in attrs]
    if missing:
        raise StoreError(f"{where}: the store does not state {', '.join(map(repr, missing))}; "
                         "refusing to read it with a guessed value")


def open_activity(location: "str | Path", *, version: str | None = None, worms_per_chunk: int = WORMS_PER_CHUNK,
                  endpoint_url: str | None = None) -> "xr.Dataset":
    """Open an activity store lazily at a path or URL (``s3://bucket/prefix``...; see
    :mod:`wormflow.core.repository`): dask arrays of ``worms_per_chunk`` worms per chunk,
    every other dim whole.

    Dims: ``worm``, ``time`` (seconds from 0, ``attrs["dt"]``), ``neuron`` (the 302
    registry names in registry order), ``roi``, ``frame``. ``version``: a tag or snapshot
    id to read instead of the latest commit; ``attrs["store_snapshot"]`` says which was read.
    """
    import xarray as xr
    import zarr

    where = str(repository.parse_location(location))
    repo = repository.open_repository(location, endpoint_url=endpoint_url)
    session = repository.readonly_session(repo, version)
    try:
        group = zarr.open_group(store=session.store, mode="r", zarr_format=3)
    except Exception as exc:  # an empty repository has no root group yet
        raise StoreError(f"{where}: the store holds no activity data ({exc})") from exc
    attrs = dict(group.attrs)
    _check_attrs(where, attrs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # a dask chunk holds whole shards of a few worms: inner chunks as dask chunks would
            # make a graph of tens of thousands of tasks per variable, and one task per worm
            # costs more in scheduling than the query's reads (1,000 worms: 2.3 s against 1.0)
            dims = {d for _, arr in group.arrays() for d in (arr.metadata.dimension_names or ())}
            ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3,
                              chunks={d: (worms_per_chunk if d == "worm" else -1) for d in dims})
    except Exception as exc:  # zarr/xarray raise many types for a damaged store
        raise StoreError(f"{where}: the activity store cannot be opened: {exc}") from exc
    # the per-worm coordinates as numpy, read in one pass each without dask: a few bytes
    # per worm, needed by selections (where, groupby) and every summary
    eager = {c: ("worm", np.asarray(group[c][:], dtype=object)) for c in PER_WORM_COORDS
             if c in ds.coords and c != "worm"}
    ds = ds.assign_coords(worm=np.asarray(group["worm"][:], dtype=object), **eager)
    ds = repository.object_strings(ds)
    _describe_signal(ds)
    ds.attrs["store_snapshot"] = session.snapshot_id
    ds.encoding["wormflow_store"] = where
    return ds


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
    """Append homogenized worms to a store as one commit.

    ``with StoreWriter(location, params) as w: w.append(worm, sha256, name)``: the worms
    are committed when the block exits normally, with a message naming the files (from
    ``provenance["last_ingest"]["inputs"]``); on an exception, or if the process dies,
    nothing is committed and the store stays as it was. The writer works on a private
    branch and moves ``main`` to its commit in one compare-and-swap, so a concurrent
    writer that committed first makes this one fail with a clear error, never a lost
    worm. On a local folder the writer also holds the store's lock for the whole block
    (see :mod:`wormflow.core.repository`).

    ``worm`` is a :class:`activity.homogenize.Worm` or the ``xarray.Dataset`` of
    :func:`activity.homogenize.homogenize`. Every value of a worm is checked against the
    store's layout before anything of it is written, so a refused worm leaves no trace.
    """

    def __init__(self, location: "str | Path", params: HomogenizeParams, provenance: dict | None = None, *,
                 endpoint_url: str | None = None):
        """(See the class.) :meth:`append_on_workers` writes worms on Dask workers instead."""
        self.location = location
        self.where = str(repository.parse_location(location))
        self.params = params
        self.provenance = provenance or {}
        self.endpoint_url = endpoint_url
        self.snapshot_id: str | None = None          # the commit made, once the block ends
        self._lock = None
        self._attrs: dict = {}
        self._n = self._n0 = 0
        self._added: list[str] = []
        self._facts: list[dict] = []
        self._branch: str | None = None              # a private branch, while workers write
        self._broken = False                         # a write failed: the transaction is never committed

    # -- transaction
    def __enter__(self) -> "StoreWriter":
        import zarr

        self._lock = repository.writer_lock(self.location)
        self._lock.__enter__()
        try:
            self.repo = repository.open_repository(self.location, create=True, endpoint_url=self.endpoint_url)
            # the writer works on a private branch; main moves to its commit in one
            # compare-and-swap at the end (repository.fast_forward)
            self._base, self._branch = repository.private_branch(self.repo, self.location)
            self.session = self.repo.writable_session(self._branch)
            self.group = zarr.open_group(store=self.session.store, mode="a", zarr_format=3)
            self._attrs = dict(self.group.attrs)
            # every array's metadata in one listing (array_keys, then one lookup per array,
            # read each twice: 50 ms against 30 for a store's 44 arrays)
            self._arrays = dict(self.group.arrays())
            if self._attrs or self._arrays:
                _check_attrs(self.where, self._attrs)
                stored = self._attrs.get("homogenize_params")
                if json.loads(stored) != json.loads(self.params.to_json()):
                    raise StoreError(f"{self.where}: store was built with parameters {stored}; cannot append "
                                     f"worms homogenized with {self.params.to_json()} (use a new store)")
            self._n = self._n0 = int(self._attrs.get("n_worms", 0))
            self._sizes = self._dim_sizes()
            if not self._arrays:
                self._create_fixed()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self._n > self._n0 and not self._broken:
                self._finalize()
                inputs = self.provenance.get("last_ingest", {}).get("inputs", [])
                files = ", ".join(Path(i["file"]).name for i in inputs) or "(no file named)"
                message = f"ingest {len(self._added)} worm(s) from {files} (wormflow {wormflow_version()})"
                metadata = {"wormflow_version": wormflow_version(), "worms_added": self._added,
                            "inputs": inputs, "n_worms": self._n}
                self.snapshot_id = repository.commit(self.session, message, metadata, self.location)
                repository.fast_forward(self.repo, self._branch, self.snapshot_id, self._base, self.location)
        finally:
            if self._branch is not None:
                repository.drop_branch(self.repo, self._branch)
                self._branch = None
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    # -- content
    def existing(self) -> tuple[set[tuple[str, str]], set[str]]:
        """(source sha256, worm id in file) pairs and worm names already stored."""
        if not self._n:
            return set(), set()
        sha, worm_id, worm = (self._arrays[k][:].tolist() for k in ("source_sha256", "worm_id", "worm"))
        return set(zip(map(str, sha), map(str, worm_id))), set(map(str, worm))

    def append(self, worm: "Worm | xr.Dataset", source_sha256: str, name: str,
               extra_sha256: dict | None = None) -> None:
        """Add one homogenized worm (:func:`activity.homogenize.homogenize_worm` or ``homogenize``)."""
        if not isinstance(worm, Worm):
            worm = Worm.from_dataset(worm)
        if self._n > self._n0 and not self._facts:
            raise StoreError(f"{self.where}: append after append_on_workers in one transaction")
        facts = self._facts_of(worm.attrs, source_sha256, name, extra_sha256)
        # every value checked against the layout before anything is written
        plan = {}
        for var, (dims, values, attrs) in worm.variables.items():
            stored = tuple(self._arrays[var].metadata.dimension_names[1:]) if var in self._arrays else tuple(dims)
            plan[var] = (stored, conform(stored, dims, np.asarray(values), where=f"{self.where}: {var}"), attrs)
        index = self._n
        grow = {}
        for stored, values, _ in plan.values():
            for d, n in zip(stored, values.shape):
                if d != "neuron" and n > max(self._sizes.get(d, 0), grow.get(d, 0)):
                    grow[d] = n
        try:
            self._grow(grow, index + 1)
            _write_all([(self._array(var, ("worm",) + stored, values.dtype, attrs), index, values)
                        for var, (stored, values, attrs) in plan.items()])
        except Exception as exc:         # disk full, read-only, network: the store's failure, not the worm's
            self._broken = True
            raise repository.write_failed(self.location, exc) from exc
        self._facts.append(facts)            # written once per transaction, one slice per array
        self._n = index + 1
        self._added.append(name)

    def check_layout(self, layout: dict) -> None:
        """Refuse (StoreError) a worm whose variables do not fit the store's arrays, from its
        :func:`worm_layout` alone: what :meth:`append` checks, before a worker writes."""
        for var, (dims, _, _) in layout["variables"].items():
            if var in self._arrays:
                stored = tuple(self._arrays[var].metadata.dimension_names[1:])
                conform(stored, tuple(dims), np.empty((0,) * len(dims)), where=f"{self.where}: {var}")

    def append_on_workers(self, client, entries) -> None:
        """Write many worms on Dask workers, each into its own fork of the session, and
        merge them back: ``entries`` are (future of a Worm on a worker, its layout from
        :func:`worm_layout`, source sha256, name, extra sha256). The arrays are created and
        sized first and committed on the writer's private branch (Icechunk forks a session
        only from a commit); ``main`` sees none of it until the block ends."""
        if not entries:
            return
        if self._n > self._n0:
            raise StoreError(f"{self.where}: append_on_workers must be the transaction's only write")
        plan, grow = {}, {}
        for _, layout, _, name, _ in entries:
            self.check_layout(layout)
            for var, (dims, dtype, attrs) in layout["variables"].items():
                if var in self._arrays:
                    continue
                if var in plan:                   # a variable new to the store, met in two worms
                    conform(plan[var][0], tuple(dims), np.empty((0,) * len(dims)), where=f"{self.where}: {var}")
                if var not in plan or len(dims) > len(plan[var][0]):
                    plan[var] = (tuple(dims), np.dtype(dtype), attrs)
            for d, n in layout["sizes"].items():
                if d != "neuron" and n > max(self._sizes.get(d, 0), grow.get(d, 0)):
                    grow[d] = n
        n_new = self._n0 + len(entries)
        self._sizes.update(grow)
        self._sizes["worm"] = n_new
        self._resize({**grow, "worm": n_new})
        for var, (dims, dtype, attrs) in plan.items():
            self._array(var, ("worm",) + dims, dtype, attrs)
        # the sized, empty arrays as a commit of the private branch, forked to the workers
        self.session.commit("wormflow: arrays sized for an ingest on workers")
        prepared = self.repo.writable_session(self._branch)
        forks = [client.submit(write_worm_arrays, prepared.fork(), worm, self._n0 + i, pure=False)
                 for i, (worm, *_rest) in enumerate(entries)]
        try:
            merged = client.gather(forks)
            failed = [err for _, err in merged if err is not None]
            if failed:
                raise failed[0]
            prepared.merge(*(fork for fork, _ in merged))
        except Exception as exc:         # a worker could not write: the store's failure
            self._broken = True
            raise repository.write_failed(self.location, exc) from exc
        self._adopt(prepared)
        for _, layout, sha, name, extra in entries:
            self._facts.append(self._facts_of(layout["attrs"], sha, name, extra))
            self._added.append(name)
        self._n = n_new

    def _adopt(self, session) -> None:
        import zarr

        self.session = session
        self.group = zarr.open_group(store=session.store, mode="a", zarr_format=3)
        self._arrays = dict(self.group.arrays())

    @staticmethod
    def _facts_of(a: dict, source_sha256: str, name: str, extra_sha256: dict | None) -> dict:
        facts = {"worm": name, "dataset": a["dataset"], "source_file": str(Path(a["source_file"]).resolve()),
                 "source_sha256": source_sha256, "worm_id": a["worm_id"], "format": a["format"],
                 "extra_sources": json.dumps(extra_sha256 or {}), "signal": a["signal"], "units": a["units"]}
        facts.update({k: a[k] for k in PER_WORM_ATTRS + PER_WORM_TEXT})
        return facts

    # -- layout
    def _dim_sizes(self) -> dict[str, int]:
        sizes = {}
        for arr in self._arrays.values():
            for d, n in zip(arr.metadata.dimension_names or (), arr.shape):
                sizes[d] = max(sizes.get(d, 0), n)
        return sizes

    def _grow(self, grow: dict[str, int], n_worms: int) -> None:
        """Every array to room for ``n_worms`` worms and the grown dims (a metadata change).
        Within a transaction the worm axis grows WORM_STEP at a time (one resize of every
        array per WORM_STEP worms, not per worm); the commit sets it to the exact count."""
        self._sizes.update(grow)
        self._sizes["worm"] = n_worms
        if not grow and n_worms <= self._arrays["worm"].shape[0]:
            return                                # room left from the last step
        self._resize({**grow, "worm": -(-n_worms // WORM_STEP) * WORM_STEP})

    def _resize(self, target: dict[str, int]) -> None:
        """Every array to the sizes ``target`` names: a metadata change. Growing leaves no
        chunk outside the array and a trim only gives back room no worm was written into,
        so no chunk is looked for to delete: zarr's ``Array.resize`` would list every chunk
        of the array to find them (measured: 2.3 ms per array at 10,000 worms, 1.0 at 1,000,
        which made an append's cost grow with the store)."""
        resizes = []
        for arr in self._arrays.values():
            dims = arr.metadata.dimension_names or ()
            shape = tuple(target.get(d, s) if d in target else s for d, s in zip(dims, arr.shape))
            if shape != arr.shape:
                resizes.append(arr.async_array.resize(shape, delete_outside_chunks=False))

        _gathered(resizes)
        if "time" in target:
            self._arrays["time"][:] = np.arange(self._sizes["time"]) * self.params.dt

    def _array(self, name: str, dims: tuple, dtype, attrs: dict):
        if name in self._arrays:
            return self._arrays[name]
        for d in dims:
            if d != "neuron" and d not in self._sizes:
                raise StoreError(f"{self.where}: dimension {d} of new variable {name} has no size")
        shape = tuple(self._arrays["worm"].shape[0] if d == "worm" else
                      self._sizes[d] if d != "neuron" else len(neuron_names()) for d in dims)
        coords = sorted(PER_WORM_COORDS[1:]) + (sorted(self._neuron_coords()) if "neuron" in dims else [])
        self._arrays[name] = self._create(name, dims, shape, dtype, xarray_attrs(string_as_object(dtype), attrs, coords))
        return self._arrays[name]

    def _create(self, name, dims, shape, dtype, attrs):
        return self._create_many([(name, dims, shape, dtype, attrs)])[name]

    def _create_many(self, specs) -> dict:
        """Arrays (name, dims, shape, dtype, attrs) created in one pass of zarr's event loop
        (one at a time, a new store's 57 fixed arrays took 80 ms)."""
        import zarr

        async def create(name, dims, shape, dtype, attrs):
            dtype = string_as_object(dtype)
            chunks, shards = chunking(dims, shape)
            return await self.group._async_group.create_array(
                name, shape=shape, chunks=chunks, shards=shards, dtype=str if dtype == object else dtype,
                fill_value=fill_for(dtype), dimension_names=dims, attributes=attrs)

        return {spec[0]: zarr.Array(arr) for spec, arr in zip(specs, _gathered([create(*spec) for spec in specs]))}

    @staticmethod
    def _neuron_coords() -> list[str]:
        return ["neuron_" + c if c in ("lr", "dv") else c for c in registry_columns()]

    def _create_fixed(self) -> None:
        """A new store's fixed arrays: the neuron coordinates (the registry's columns), the
        time axis and the per-worm facts."""
        self._sizes = {"worm": 0, "time": 0}
        values = {"neuron": np.array(neuron_names(), dtype=object)}
        for name, column in zip(self._neuron_coords(), registry_columns().values()):
            values[name] = np.array(column, dtype=float if name in FLOAT_COLUMNS else object)
        specs = [(name, ("neuron",), v.shape, v.dtype, {} if name == "neuron" else xarray_attrs(v.dtype, {}, []))
                 for name, v in values.items()]
        specs.append(("time", ("time",), (0,), np.float64, {"units": "s"}))
        for name, dtype in FACT_DTYPES.items():
            attrs = {} if name in PER_WORM_COORDS else xarray_attrs(dtype, {}, sorted(PER_WORM_COORDS[1:]))
            specs.append((name, ("worm",), (0,), dtype, attrs))
        self._arrays = self._create_many(specs)
        _set_all([(self._arrays[name], (slice(None),), v) for name, v in values.items()])

    def _finalize(self) -> None:
        self._resize({"worm": self._n})                    # exact: no room left over
        _set_all([(self._arrays[key], (slice(self._n0, self._n),),
                   np.array([f[key] for f in self._facts], dtype=FACT_DTYPES[key])) for key in FACT_DTYPES])
        now = datetime.now(timezone.utc).isoformat()
        self.group.attrs.update({
            **self._attrs,                        # what the store already says, updated below
            "wormflow_store": STORE_FORMAT, "wormflow_version": wormflow_version(),
            "dt": self.params.dt, "homogenize_params": self.params.to_json(),
            "n_worms": self._n, "extent": {d: n for d, n in self._sizes.items() if d != "neuron"},
            "created": self._attrs.get("created", now), "updated": now,
            "versions": {m: package_version(m) for m in ("numpy", "scipy", "xarray", "zarr", "h5py", "dask",
                                                         "icechunk")},
            "provenance": self.provenance,
        })


def worm_layout(worm: Worm) -> dict:
    """What the store must hold for ``worm`` before its values are written: the sizes of
    its dims, each variable's (dims, dtype, attrs), and its attrs (the per-worm facts)."""
    return {"sizes": worm.sizes,
            "variables": {k: (tuple(d), np.asarray(v).dtype.str if np.asarray(v).dtype.kind not in "OUT" else "O", a)
                          for k, (d, v, a) in worm.variables.items()},
            "attrs": dict(worm.attrs)}


def write_worm_arrays(fork, worm: Worm, index: int):
    """On a worker: ``worm``'s series into the arrays of the forked session ``fork`` at
    ``index`` (arrays already created and sized); returns (the fork to merge, None), or
    (None, the error) when the store could not be written. The error travels back as a
    value: the driver reports it once, and the worker logs no traceback for it."""
    import zarr

    try:
        group = zarr.open_group(store=fork.store, mode="r+", zarr_format=3)
        writes = []
        for var, (dims, values, _) in worm.variables.items():
            arr = group[var]
            writes.append((arr, index, conform(tuple(arr.metadata.dimension_names[1:]), dims, np.asarray(values),
                                               where=var)))
        _write_all(writes)
    except Exception as exc:  # disk full, read-only, network: reported by the driver
        return None, exc
    return fork, None


def _write_all(writes) -> None:
    """Write (array, worm index, one worm's values) triples: see :func:`_set_all`."""
    _set_all([(arr, (index,) + tuple(slice(0, n) for n in values.shape), values) for arr, index, values in writes])


def _set_all(writes) -> None:
    """Write (array, selection, values) triples concurrently (see :func:`_gathered`)."""
    _gathered([arr.async_array.setitem(selection, _encodable(values)) for arr, selection, values in writes])


def _gathered(coroutines):
    """Run zarr coroutines (writes, resizes, creations of many arrays) in one pass of zarr's
    event loop, ``WRITES_AT_ONCE`` at a time, and return their results. One blocking call
    per array cost 2-4 ms of waiting each (25 arrays per Flavell worm; an append took 30%
    less time gathered), and on object storage each would be a round trip. The bound
    keeps Icechunk's runtime from starting a thread per concurrent request."""
    import asyncio

    from zarr.core.sync import sync

    async def run():
        limit = asyncio.Semaphore(WRITES_AT_ONCE)

        async def one(coroutine):
            async with limit:
                return await coroutine

        # every coroutine runs to its end: on a full disk many fail, and one left running
        # after the first error would be reported by asyncio as never retrieved
        return await asyncio.gather(*(one(c) for c in coroutines), return_exceptions=True)

    results = sync(run())
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _encodable(values: np.ndarray) -> np.ndarray:
    """Strings as zarr 3 wants them (object, never fixed-width ``<U``)."""
    return values.astype(object) if values.dtype.kind in "UT" else values
