"""Decode the parts of a Julia JLD2 file that hold plain data, with h5py alone.

JLD2 files are HDF5 files. A Julia ``Dict`` is written as a vector of ``Pair`` records
(compound ``first``/``second``) whose fields are object references to the key and the
value; tuples are compounds with fields ``1``, ``2``...; vectors of boxed values are
arrays of references; strings are fixed-length byte strings; an empty value is a 1-byte
opaque type. We follow references recursively and return Python dicts, lists, tuples,
strings and numbers. Nothing is executed and no Julia type is instantiated.
"""

from __future__ import annotations

import h5py
import numpy as np

_MAX_DEPTH = 64


def _decode(f: h5py.File, x, depth: int):
    if depth > _MAX_DEPTH:
        raise ValueError("nesting deeper than 64 levels")
    if isinstance(x, h5py.h5r.Reference):
        if not x:
            return None
        return _decode(f, f[x][()], depth + 1)
    if isinstance(x, (bytes, np.bytes_)):
        return x.decode("utf-8", "replace")
    if isinstance(x, str):
        return x
    if isinstance(x, h5py.Empty):
        return None
    if isinstance(x, (np.void, np.ndarray)) and x.dtype.names:
        if x.shape not in ((), None):
            return [_decode(f, item, depth + 1) for item in x.ravel()]
        names = x.dtype.names
        if names == ("first", "second"):
            return _Pair(_decode(f, x["first"], depth + 1), _decode(f, x["second"], depth + 1))
        return tuple(_decode(f, x[n], depth + 1) for n in names)
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            items = [_decode(f, item, depth + 1) for item in x.ravel()]
            return _dict_if_pairs(items)
        if x.dtype.kind == "V":
            return None
        return x.tolist() if x.ndim else x.item()
    if isinstance(x, np.generic):
        return x.item()
    return x


class _Pair(tuple):
    def __new__(cls, key, value):
        return super().__new__(cls, (key, value))


def _dict_if_pairs(items: list):
    if items and all(isinstance(i, _Pair) for i in items):
        return {k: v for k, v in items}
    return items


def read_jld2_variable(path: str, name: str):
    """Return the decoded Julia value stored under ``name`` in a JLD2 file."""
    with h5py.File(path, "r") as f:
        if name not in f:
            raise KeyError(name)
        value = _decode(f, f[name][()], 0)
    if isinstance(value, list):
        value = _dict_if_pairs(value)
    return value
