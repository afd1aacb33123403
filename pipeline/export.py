"""`wormflow export-nwb`: every (or the chosen) worm of a store as one validated NWB file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from activity.nwb import (ExportError, ExportParams, build_nwbfile, check_nwb, missing_for_dandi, worm_record,
                          write_nwb)
from activity.store import open_activity
from wormflow.core.provenance import wormflow_version


@dataclass
class ExportReport:
    exported: list[dict] = field(default_factory=list)      # worm, path, seconds, bytes, problems
    failed: list[tuple[str, str]] = field(default_factory=list)


def load_metadata_table(path: str | Path) -> dict:
    """A TOML table of descriptive metadata per dataset (``[Dag2023] age = "P3D" ...``) for the export."""
    import tomllib

    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExportError(f"{path}: not a readable TOML metadata table: {exc}") from exc
    bad = [k for k, v in table.items() if not isinstance(v, dict)]
    if bad:
        raise ExportError(f"{path}: {', '.join(bad)}: expected one [dataset] table of fields each")
    return table


def safe_component(text: str) -> str:
    """A name from inside a file (dataset, worm id) as one path component: anything but
    letters, digits, '-', '_' and '.' becomes '_', and no leading or trailing dots, so that
    '..', '.' or '.hidden' can never name a parent, this folder or a hidden file."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip(".") or "_"


def nwb_path(out: Path, worm: str) -> Path:
    """OUT/<dataset>/<worm id>.nwb from the store's worm name, each part a :func:`safe_component`;
    the path is checked to stay inside OUT."""
    dataset, _, worm_id = worm.partition("/")
    out = Path(out)
    path = out / safe_component(dataset) / f"{safe_component(worm_id or dataset)}.nwb"
    if not path.resolve().is_relative_to(out.resolve()):          # cannot happen after safe_component
        raise ExportError(f"worm {worm!r}: its file name would leave {out}")
    return path


def nwb_paths(out: Path, worms) -> dict[str, Path]:
    """:func:`nwb_path` of every worm, refusing two worms whose names map to one file."""
    paths: dict[str, Path] = {}
    taken: dict[Path, str] = {}
    for worm in worms:
        path = nwb_path(out, worm)
        if path in taken:
            raise ExportError(f"worms {taken[path]!r} and {worm!r} would both be written to {path}; "
                              "export them to separate folders (--worm)")
        paths[worm], taken[path] = path, worm
    return paths


def export_one(ds, worm: str, path: Path, params: ExportParams, version: str, *, validate: bool = True,
               overwrite: bool = False) -> dict:
    """Export one worm of an opened store and check the file: worm, path, seconds, bytes, problems."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    record = worm_record(ds, worm)
    write_nwb(build_nwbfile(record, params, version), path, overwrite=overwrite)
    seconds = time.perf_counter() - t0
    missing = missing_for_dandi(record, params)
    problems = check_nwb(path) if validate else []
    if missing:          # said once, as what the user must supply, not again as the inspector's finding
        problems = [p for p in problems if "check_subject_age" not in p]
    return {"worm": worm, "path": str(path), "seconds": seconds, "bytes": path.stat().st_size,
            "problems": problems, "missing": missing}


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
    paths = nwb_paths(Path(out), chosen)
    for worm in chosen:
        path = paths[worm]
        try:
            report.exported.append(export_one(ds, worm, path, params, version, validate=validate,
                                              overwrite=overwrite))
        except ExportError as exc:
            report.failed.append((worm, str(exc)))
        if on_worm is not None:
            on_worm(worm)
    return report
