"""One registry of activity readers, and format detection.

Each reader module exposes ``FORMAT`` (registry name), ``DESCRIPTION``, ``DATASET``
(default dataset name), ``sniff(path) -> bool`` (cheap, never raises) and
``read(path, **options) -> list[RawRecording]`` (a file may hold several worms).
Adding a lab format = one module + one line in ``_MODULES`` + its tests.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from activity.raw import RawRecording, check_recording
from activity.readers import (flavell_h5, leifer_text, lin_mat, nwb, venkatachalam_csv,
                              yemini_mat, zimmer_mat)
from wormflow.core.errors import FormatError, UnknownFormatError, WormflowError

_MODULES: tuple[ModuleType, ...] = (
    flavell_h5, nwb, zimmer_mat, yemini_mat, lin_mat, leifer_text, venkatachalam_csv,
)
READERS: dict[str, ModuleType] = {m.FORMAT: m for m in _MODULES}


def known_formats() -> str:
    return ", ".join(f"{name} ({m.DESCRIPTION})" for name, m in READERS.items())


def detect(path: str | Path) -> list[str]:
    """Names of the formats whose reader recognises ``path`` (may be empty)."""
    path = Path(path)
    return [name for name, m in READERS.items() if _sniffs(m, path)]


def _sniffs(module: ModuleType, path: Path) -> bool:
    """A reader's sniff, which must never raise: a crafted file can make h5py or scipy raise
    anything while a sniffer peeks, and a sniff that raises would stop a whole batch."""
    try:
        return bool(module.sniff(path))
    except Exception:
        return False


def _precheck(path: Path) -> None:
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise FormatError(f"{path.name}: the file is empty (0 bytes)")


def _refuse_broken_hdf5(path: Path) -> None:
    """An HDF5 file no reader could open is named as truncated or corrupt, not as unknown."""
    from activity.readers._hdf5 import is_hdf5

    if not is_hdf5(path):
        return
    import h5py

    try:
        with h5py.File(path, "r"):
            return
    except OSError as exc:
        raise FormatError(f"{path}: truncated or corrupt HDF5 ({path.stat().st_size} bytes); "
                          f"h5py cannot open it: {exc}") from exc


def read_recordings(path: str | Path, format: str | None = None, **options) -> list[RawRecording]:
    """Read every worm in ``path`` with the named or detected reader, validated."""
    path = Path(path)
    _precheck(path)
    if format is not None:
        if format not in READERS:
            raise UnknownFormatError(f"{path.name}: unknown format {format!r}; known formats: {known_formats()}")
        name = format
    else:
        found = detect(path)
        if not found:
            _refuse_broken_hdf5(path)
            raise UnknownFormatError(
                f"{path.name}: not a recognised activity file; known formats: {known_formats()}")
        name = found[0]
    try:
        recordings = READERS[name].read(path, **options)
    except WormflowError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise FormatError(f"{path.name}: cannot be read as {name}: {exc}") from exc
    if not recordings:
        raise FormatError(f"{path.name}: the {name} reader found no recording in the file")
    return [check_recording(r) for r in recordings]


__all__ = ["READERS", "detect", "read_recordings", "known_formats"]
