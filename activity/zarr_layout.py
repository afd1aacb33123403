"""How the activity store lays its variables out in Zarr v3, and the attributes xarray
reads them by.

Shapes are exact: every dim is as long as the longest worm's (a shorter worm reads NaN
beyond its end), and growing one is a metadata change in the commit, never a rewrite.

Chunks. The big series (worm, time, neuron), (worm, frame, roi), (worm, time, k) are
**sharded**: one shard per worm (a shard of up to 4096 time points or frames and every
neuron or ROI, so appending a worm writes one object per array), holding inner chunks of
2048 time points (17 min at 0.5 s, most recordings' whole length) × 16 neurons (or 64
ROIs). A shard's index lets a reader fetch single inner chunks, so
``calcium.sel(neuron="AVAL")`` over N worms reads N shard indexes and N inner chunks of
16 of the 302 neurons, not every byte of every worm; smaller time blocks would only add
requests to that query (measured: 4 requests per worm instead of 2 made it slower). The 1-D per-worm series (``valid``,
velocity, ``native_time``) are one chunk per worm; the per-worm facts (``dataset``,
``n_frames``…) one chunk per 4096 worms, a few bytes each: every writer reads the
source sha256, worm id and name of every stored worm (to skip a file already in), and
every open reads the per-worm coordinates, so these take few objects (at 10,000 worms,
3 chunks an array instead of 40 with 256 per chunk); an append rewrites one such chunk.
"""

from __future__ import annotations

import numpy as np

from wormflow.core.errors import StoreError

INNER = {"time": 2048, "frame": 2048, "neuron": 16, "roi": 64}
SHARD = {"time": 4096, "frame": 4096, "neuron": 320, "roi": 256}
SERIES_CHUNK = {"time": 4096, "frame": 4096, "roi": 256, "neuron": 320}
FACTS_CHUNK = 4096
NAN_FILL = "AAAAAAAA+H8="        # xarray's _FillValue attribute for NaN (float64, base64)


def string_as_object(dtype) -> np.dtype:
    """numpy's string dtypes (object, fixed-width ``<U``, numpy 2's ``StringDType``) as object."""
    dtype = np.dtype(dtype)
    return np.dtype(object) if dtype.kind in "OUT" else dtype


def chunking(dims: tuple[str, ...], shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """(chunks, shards or None) of an array with ``dims`` (``worm`` first), see the module."""
    if dims[0] != "worm":                # coordinates: the time axis in long chunks, the neuron table whole
        return tuple(SERIES_CHUNK["time"] if d == "time" else max(n, 1) for d, n in zip(dims, shape)), None
    rest = dims[1:]
    if not rest:
        return (FACTS_CHUNK,), None
    if len(rest) == 1:
        return (1, SERIES_CHUNK.get(rest[0], max(shape[1], 1))), None
    inner, shard = [1], [1]
    for d, n in zip(rest, shape[1:]):
        if d in INNER:
            inner.append(INNER[d])
            shard.append(SHARD[d])
        else:                            # the columns of multi-column behaviour: all in one chunk
            inner.append(max(n, 1))
            shard.append(max(n, 1))
    return tuple(inner), tuple(shard)


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
