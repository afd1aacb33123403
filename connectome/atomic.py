"""Atomic replacement of a store directory, shared by the activity and connectome stores."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
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
