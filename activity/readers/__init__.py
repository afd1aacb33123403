"""One registry of activity readers, format detection, and the reader contract.

A reader is a :class:`Reader`: its format name, a description, the default dataset name,
``sniff(path) -> bool`` (cheap; a sniff that raises counts as "not mine"),
``read(path, **options) -> list[RawRecording]`` (a file may hold several worms), the
keyword ``options`` its ``read`` takes (the Flavell reader's ``labels``), and
``side_files(path)``: the other files a read of ``path`` will open (the Flavell labels),
so that provenance and caches can hash them.

Built-in readers are modules exposing ``FORMAT``, ``DESCRIPTION``, ``DATASET``, ``sniff``
and ``read`` (and optionally ``OPTIONS`` and ``side_files``). Others come as plugins,
as xarray takes its backends: a distribution declares, in its own pyproject,

    [project.entry-points."wormflow.readers"]
    mylab = "mylab_wormflow:reader"        # a Reader, or a module of the built-in form

A broken plugin, or one that claims a format name already taken, is left out with a
warning; it never breaks the command line. Plugins are found in every process that
imports this package, Dask workers included.

When several readers claim a file, :func:`read_recordings` tries them in registry order
(built-ins first, then plugins by name) and reads with the first that succeeds; the
others are named in the recording's notes, and if all fail the error lists every
candidate with its cause (as MNE's ``read_raw`` does).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from activity.raw import RawRecording, check_recording
from activity.readers import (flavell_h5, leifer_text, lin_mat, nwb, venkatachalam_csv,
                              yemini_mat, zimmer_mat)
from wormflow.core.errors import FormatError, UnknownFormatError, WormflowError, sniff_safely

ENTRY_POINT_GROUP = "wormflow.readers"


def _no_side_files(path: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class Reader:
    format: str
    description: str
    dataset: str
    sniff: Callable[[Path], bool]
    read: Callable[..., list[RawRecording]]
    options: tuple[str, ...] = ()
    side_files: Callable[[Path], list[Path]] = field(default=_no_side_files)
    origin: str = "wormflow"          # the distribution that provides it

    @classmethod
    def from_module(cls, module: ModuleType, origin: str = "wormflow") -> "Reader":
        missing = [a for a in ("FORMAT", "DESCRIPTION", "DATASET", "sniff", "read") if not hasattr(module, a)]
        if missing:
            raise TypeError(f"reader module {module.__name__} lacks {', '.join(missing)}")
        return cls(module.FORMAT, module.DESCRIPTION, module.DATASET, module.sniff, module.read,
                   tuple(getattr(module, "OPTIONS", ())), getattr(module, "side_files", _no_side_files), origin)


BUILT_IN: tuple[ModuleType, ...] = (
    flavell_h5, nwb, zimmer_mat, yemini_mat, lin_mat, leifer_text, venkatachalam_csv,
)


def _plugins(taken: set[str]) -> list[Reader]:
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"wormflow reader plugin {ep.name!r} ({ep.value}"
        where += f", from {ep.dist.name})" if getattr(ep, "dist", None) else ")"
        try:
            obj = ep.load()
            reader = obj if isinstance(obj, Reader) else Reader.from_module(obj, origin=ep.value)
        except Exception as exc:  # a broken plugin must not break wormflow
            warnings.warn(f"{where} is left out: it cannot be loaded: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        if reader.format in taken:
            warnings.warn(f"{where} is left out: the format name {reader.format!r} is taken", stacklevel=2)
            continue
        taken.add(reader.format)
        found.append(reader)
    return found


def _registry() -> dict[str, Reader]:
    readers = {m.FORMAT: Reader.from_module(m) for m in BUILT_IN}
    for reader in _plugins(set(readers)):
        readers[reader.format] = reader
    return readers


READERS: dict[str, Reader] = _registry()


def known_formats() -> str:
    return ", ".join(f"{name} ({r.description})" for name, r in READERS.items())


def detect(path: str | Path) -> list[str]:
    """Names of the formats whose reader recognises ``path`` (may be empty), in registry order."""
    path = Path(path)
    return [name for name, r in READERS.items() if sniff_safely(r.sniff, path)]


def side_files(path: str | Path, format: str | None = None) -> list[Path]:
    """The other files reading ``path`` will open (e.g. the Flavell labels beside it)."""
    path = Path(path)
    names = [format] if format else detect(path)[:1]
    return [Path(p) for n in names if n in READERS for p in READERS[n].side_files(path)]


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


def _read_with(name: str, path: Path, options: dict) -> list[RawRecording]:
    reader = READERS[name]
    taken = {k: v for k, v in options.items() if k in reader.options and v is not None}
    try:
        recordings = reader.read(path, **taken)
    except WormflowError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise FormatError(f"{path.name}: cannot be read as {name}: {exc}") from exc
    if not recordings:
        raise FormatError(f"{path.name}: the {name} reader found no recording in the file")
    return [check_recording(r) for r in recordings]


def read_recordings(path: str | Path, format: str | None = None, claimed: list[str] | None = None,
                    **options) -> list[RawRecording]:
    """Every worm in ``path``, read with the named reader or with the readers that claim it
    (``claimed``: what :func:`detect` already said of it), and validated. ``options`` go to
    the readers that declare them (others ignore them)."""
    path = Path(path)
    _precheck(path)
    if format is not None:
        if format not in READERS:
            raise UnknownFormatError(f"{path.name}: unknown format {format!r}; known formats: {known_formats()}")
        return _read_with(format, path, options)
    found = list(claimed) if claimed else detect(path)
    if not found:
        _refuse_broken_hdf5(path)
        raise UnknownFormatError(f"{path.name}: not a recognised activity file; known formats: {known_formats()}")
    failures = []
    for name in found:
        try:
            recordings = _read_with(name, path, options)
        except WormflowError as exc:
            if len(found) == 1:
                raise
            failures.append(f"{name}: {exc}")
            continue
        others = [n for n in found if n != name]
        if others:
            note = (f"{path.name}: claimed by {', '.join(found)}; read as {name}"
                    + (f" after {'; '.join(failures)}" if failures else ""))
            for r in recordings:
                r.notes.append(note)
        return recordings
    raise FormatError(f"{path.name}: every reader that claims it failed: " + " | ".join(failures))


__all__ = ["READERS", "Reader", "ENTRY_POINT_GROUP", "detect", "read_recordings", "known_formats", "side_files"]
