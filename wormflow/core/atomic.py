"""Atomic writing: a directory swapped in whole (the stores, published folders), and a file
renamed into place (:func:`replacing`)."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2). False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"renameat2 exchange of {a} and {b} failed: {os.strerror(err)}")


def recover(path: Path) -> None:
    """Finish an interrupted two-rename swap: put the previous version back if needed."""
    path = Path(path)
    previous = path.with_name(path.name + ".previous")
    if not path.exists() and previous.exists():
        os.rename(previous, path)
    elif path.exists() and previous.exists():
        shutil.rmtree(previous, ignore_errors=True)


def swap_in(staging: Path, path: Path) -> None:
    if not path.exists():
        os.rename(staging, path)
        return
    if exchange(staging, path):
        shutil.rmtree(staging, ignore_errors=True)
        return
    previous = path.with_name(path.name + ".previous")
    os.rename(path, previous)
    os.rename(staging, path)
    shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def replacing(path: str | Path):
    """Write a file under a temporary name beside ``path`` and rename it over ``path`` once
    the block ends normally: a reader never sees half a file, and a failed or killed write
    leaves the previous file (or none). The one temp-then-rename writer of wormflow::

        with replacing(out / "x.parquet") as tmp:
            pq.write_table(table, tmp)

    The temporary name keeps the suffix (libraries that pick a format from it still do),
    is hidden, and carries the process and thread, so concurrent writers never share one.
    The data is flushed to disk before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
