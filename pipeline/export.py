"""`wormflow export-nwb`: every (or the chosen) worm of a store as one validated NWB file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from activity.nwb import ExportError, ExportParams, build_nwbfile, check_nwb, worm_record, write_nwb
from activity.store import open_activity, wormflow_version


@dataclass
class ExportReport:
    exported: list[dict] = field(default_factory=list)      # worm, path, seconds, bytes, problems
    failed: list[tuple[str, str]] = field(default_factory=list)


def nwb_path(out: Path, worm: str) -> Path:
    """OUT/<dataset>/<worm id>.nwb, with anything but letters, digits, '-', '_' and '.' replaced."""
    dataset, _, worm_id = worm.partition("/")
    safe = (lambda s: re.sub(r"[^A-Za-z0-9._-]+", "_", s))
    return Path(out) / safe(dataset) / f"{safe(worm_id or dataset)}.nwb"


def export_one(ds, worm: str, path: Path, params: ExportParams, version: str, *, validate: bool = True,
               overwrite: bool = False) -> dict:
    """Export one worm of an opened store and check the file: worm, path, seconds, bytes, problems."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    write_nwb(build_nwbfile(worm_record(ds, worm), params, version), path, overwrite=overwrite)
    seconds = time.perf_counter() - t0
    return {"worm": worm, "path": str(path), "seconds": seconds, "bytes": path.stat().st_size,
            "problems": check_nwb(path) if validate else []}


def export_store(store: str | Path, out: str | Path, *, worms=None, params: ExportParams = ExportParams(),
                 overwrite: bool = False, validate: bool = True,
                 on_worm: Callable[[str], None] | None = None) -> ExportReport:
    """Export worms of ``store`` under ``out``; a worm that cannot be exported fails alone."""
    ds = open_activity(store)
    chosen = list(worms) if worms else ds.worm.values.tolist()
    missing = sorted(set(chosen) - set(ds.worm.values.tolist()))
    if missing:
        raise ExportError(f"worms not in the store: {', '.join(missing)}")
    report = ExportReport()
    version = wormflow_version()
    for worm in chosen:
        path = nwb_path(Path(out), worm)
        try:
            report.exported.append(export_one(ds, worm, path, params, version, validate=validate,
                                              overwrite=overwrite))
        except ExportError as exc:
            report.failed.append((worm, str(exc)))
        if on_worm is not None:
            on_worm(worm)
    return report
