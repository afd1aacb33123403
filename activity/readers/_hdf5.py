"""Small helpers shared by the HDF5-based readers (Flavell, NWB, MATLAB v7.3).

Every HDF5 input is read as untrusted: :func:`open_hdf5` refuses a file that reaches
outside itself (external links, external raw storage, virtual datasets: any of them can
make h5py read another file of this machine, whose bytes would then travel into the
store and into published datasets), and :func:`read_array` checks a dataset's declared
size against what the file really stores and against a memory budget before it reads.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from wormflow.core.errors import FormatError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# a dataset whose declared bytes exceed this many times what it stores is refused, when
# compressed (real traces compress 2-10x; an all-fill dataset "compresses" without bound)
MAX_COMPRESSION_RATIO = 1000
SMALL_BYTES = 1 << 20            # below this a dataset is read without the storage checks


def is_hdf5(path: Path) -> bool:
    """True if the file carries the HDF5 signature at offset 0 or 512 (MATLAB v7.3 header)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head[:8] == HDF5_SIGNATURE or head[512:520] == HDF5_SIGNATURE


def memory_budget() -> int:
    """Bytes one array read may allocate: half the memory available now."""
    import psutil

    return int(psutil.virtual_memory().available // 2)


def check_contained(f: h5py.File, path: Path) -> None:
    """Refuse a file with an external link, a dataset stored in other files, or a virtual dataset."""
    name = Path(path).name
    found: list[str] = []

    def visit(link_name: str, link) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{link_name!r} is an external link to {link.filename}:{link.path}")
            return
        if isinstance(link, h5py.SoftLink):
            return
        obj = f.get(link_name)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                found.append(f"dataset {link_name!r} keeps its data in external file(s) "
                             f"{', '.join(str(e[0], 'utf-8', 'replace') if isinstance(e[0], bytes) else str(e[0]) for e in obj.external)}")
            elif obj.is_virtual:
                found.append(f"dataset {link_name!r} is a virtual dataset mapping other files")

    f.visititems_links(visit)
    if found:
        raise FormatError(f"{name}: refused: {found[0]}{f' (and {len(found) - 1} more)' if len(found) > 1 else ''}; "
                          "wormflow reads nothing outside the input file")


@contextmanager
def open_hdf5(path: Path):
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        size = Path(path).stat().st_size if Path(path).exists() else 0
        why = "truncated or corrupt HDF5" if is_hdf5(path) else "not an HDF5 file"
        raise FormatError(f"{path}: {why} ({size} bytes): {exc}") from exc
    try:
        try:
            check_contained(f, path)
        except (OSError, RuntimeError, KeyError) as exc:
            raise FormatError(f"{path}: truncated or corrupt HDF5: its structure cannot be walked: {exc}") from exc
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


def check_size(ds: h5py.Dataset, path: Path, budget: int | None = None) -> None:
    """Refuse to read a dataset whose declared size the file does not back, or that would
    not fit the memory budget; the error names the dataset and its declared size."""
    declared = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize) if ds.shape else ds.dtype.itemsize
    what = f"{Path(path).name}: dataset {ds.name!r} declares shape {ds.shape} of {ds.dtype} ({declared / 1e9:.3g} GB)"
    budget = memory_budget() if budget is None else budget
    if declared > budget:
        raise FormatError(f"{what}, more than the {budget / 1e9:.3g} GB this read may use")
    if declared <= SMALL_BYTES:
        return
    stored = ds.id.get_storage_size()
    filtered = ds.id.get_create_plist().get_nfilters() > 0
    if not filtered and stored < declared:
        raise FormatError(f"{what} but stores only {stored} bytes: never written, or the file is truncated")
    if stored * MAX_COMPRESSION_RATIO < declared:
        raise FormatError(f"{what} but stores only {stored} bytes (over {MAX_COMPRESSION_RATIO}x compression): "
                          "never written, or not real data")


def read_array(f: h5py.File, path: Path, name: "str | h5py.Dataset", budget: int | None = None):
    ds = name if isinstance(name, h5py.Dataset) else require(f, path, name)
    check_size(ds, path, budget)
    try:
        return ds[()]
    except OSError as exc:
        raise FormatError(f"{path}: dataset {ds.name!r} cannot be read: truncated or corrupt HDF5: {exc}") from exc
