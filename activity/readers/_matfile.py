"""MATLAB .mat files, v5 (scipy.io) and v7.3 (HDF5, decoded with h5py), as plain Python.

Structs become dicts, cell arrays lists, char arrays strings, numeric arrays numpy arrays
in MATLAB's own orientation (T x N stays T x N), with singleton dimensions of vectors and
scalars squeezed as scipy's ``simplify_cells`` does. No MATLAB object (MCOS) is decoded.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from activity.readers._hdf5 import is_hdf5, open_hdf5, read_array
from wormflow.core.errors import FormatError

MAT_V5_MAGIC = b"MATLAB 5.0 MAT-file"
MAT_V73_MAGIC = b"MATLAB 7.3 MAT-file"


def is_mat(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError:
        return False
    return head.startswith(MAT_V5_MAGIC) or head.startswith(MAT_V73_MAGIC)


def variable_names(path: Path) -> set[str]:
    """Top-level variable names, cheaply (no array is loaded)."""
    if is_hdf5(path):
        with h5py.File(path, "r") as f:
            return {k for k in f.keys() if not k.startswith("#")}
    from scipy.io import whosmat
    return {name for name, _shape, _cls in whosmat(str(path))}


def _squeeze(a: np.ndarray):
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()
    if a.ndim == 1 and a.size == 1:
        return a[0].item() if isinstance(a[0], np.generic) else a[0]
    return a


MAX_OBJECTS = 200_000           # objects one file may make the decoder visit (references fan out)


def _decode(f: h5py.File, obj, depth: int = 0, seen: list | None = None):
    seen = [0] if seen is None else seen
    seen[0] += 1
    if depth > 64:
        raise ValueError("nesting deeper than 64 levels")
    if seen[0] > MAX_OBJECTS:
        raise ValueError(f"more than {MAX_OBJECTS} objects reached through references (a reference loop?)")
    if isinstance(obj, h5py.Group):
        return {k: _decode(f, v, depth + 1, seen) for k, v in obj.items() if not k.startswith("#")}
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return "" if cls == "char" else np.empty(0)
    data = read_array(f, Path(f.filename), obj)
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel())
    if data.dtype == h5py.ref_dtype or data.dtype == object:
        items = [_decode(f, f[ref], depth + 1, seen) for ref in np.asarray(data).T.ravel()]
        return items[0] if len(items) == 1 and cls != "cell" else items
    arr = np.asarray(data).T
    if cls == "logical":
        arr = arr.astype(bool)
    return _squeeze(arr)


def _simplify_v5(x):
    if isinstance(x, dict):
        return {k: _simplify_v5(v) for k, v in x.items()}
    if isinstance(x, np.ndarray) and x.dtype == object:
        return [_simplify_v5(v) for v in x.ravel(order="F")]
    if isinstance(x, list):
        return [_simplify_v5(v) for v in x]
    if isinstance(x, np.str_):
        return str(x)
    return x


def load_mat(path: Path) -> dict:
    """All top-level variables of a v5 or v7.3 MAT file."""
    path = Path(path)
    if is_hdf5(path):
        with open_hdf5(path) as f:
            return {k: _decode(f, v) for k, v in f.items() if not k.startswith("#")}
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError
    try:
        raw = loadmat(str(path), simplify_cells=True)
    except (MatReadError, ValueError, OSError) as exc:
        raise FormatError(f"{path.name}: not a readable MATLAB file (truncated or corrupt?): {exc}") from exc
    return {k: _simplify_v5(v) for k, v in raw.items() if not k.startswith("__")}


def as_text_label(value) -> str:
    """A MATLAB ID cell entry -> one label string; several candidates joined with '/'."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        if value.dtype.kind in "US":
            return "/".join(str(v).strip() for v in value.ravel() if str(v).strip())
        return ""          # numeric placeholders (e.g. NaN) carry no identity
    if isinstance(value, (list, tuple)):
        parts = [as_text_label(v) for v in value]
        return "/".join(dict.fromkeys(p for p in parts if p))
    return ""


def as_2d(name: str, value, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise FormatError(f"{where}: {name} must be a 2-D time x ROI matrix, got shape {arr.shape}")
    return arr


def require_field(struct: dict, names: tuple[str, ...], where: str, what: str):
    for n in names:
        if n in struct:
            return n, struct[n]
    raise FormatError(f"{where}: missing required field for {what} (expected one of {', '.join(names)})")
