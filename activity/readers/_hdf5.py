"""Small helpers shared by the HDF5-based readers (Flavell, NWB, MATLAB v7.3)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py

from connectome.errors import FormatError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """True if the file carries the HDF5 signature at offset 0 or 512 (MATLAB v7.3 header)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head[:8] == HDF5_SIGNATURE or head[512:520] == HDF5_SIGNATURE


@contextmanager
def open_hdf5(path: Path):
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{Path(path).name}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    try:
        yield f
    finally:
        f.close()


def require(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    if name not in f:
        raise FormatError(f"{Path(path).name}: missing required dataset {name!r}")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise FormatError(f"{Path(path).name}: {name!r} is a group, expected a dataset")
    return obj


def read_array(f: h5py.File, path: Path, name: str):
    ds = require(f, path, name)
    try:
        return ds[()]
    except OSError as exc:
        raise FormatError(f"{Path(path).name}: dataset {name!r} cannot be read (truncated file?): {exc}") from exc
