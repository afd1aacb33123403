"""What every output says about how it was made: the package version, the versions of the
libraries it was made with, and the sha256 of each input file."""

from __future__ import annotations

import hashlib
from importlib import metadata as importlib_metadata
from pathlib import Path


def wormflow_version() -> str:
    """The installed wormflow's version ('0+unknown' when run from a tree that is not installed)."""
    return package_version("wormflow") or "0+unknown"


def package_version(name: str) -> str:
    """An installed distribution's version, '' when it is not installed."""
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return ""


def sha256_of(path: str | Path, block: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in blocks (hashlib releases the GIL, so a thread
    can hash ahead while another reads)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()
