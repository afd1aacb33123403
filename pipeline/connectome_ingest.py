"""Ingest connectome files into the connectome store (the file-touching side of ``connectome``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from connectome.build import build
from wormflow.core.errors import WormflowError, failure_message
from connectome.readers import COMPANIONS, read_connectome
from connectome.store import open_connectome, write_connectome
from wormflow.core.provenance import sha256_of, wormflow_version


@dataclass
class ConnectomeReport:
    sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (file, why)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discover_connectomes(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(files to read, companion files skipped with the reason). Unrecognised files in a
    folder are returned too, so that they fail with a clear error rather than vanish."""
    files, skipped = [], []
    for p in map(Path, paths):
        for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]):
            if f.name in COMPANIONS:
                skipped.append((str(f), COMPANIONS[f.name]))
            else:
                files.append(f)
    return list(dict.fromkeys(files)), skipped


def ingest_connectomes(paths: Iterable[str | Path], store: str | Path, format: str | None = None,
                       on_file: Callable[[Path], None] | None = None) -> ConnectomeReport:
    files, skipped = discover_connectomes(paths)
    report = ConnectomeReport(skipped=skipped)
    items, sha = [], {}
    for path in files:
        try:
            raws = read_connectome(path, format=format)
            sha[str(path)] = sha256_of(path)
            for raw in raws:
                if raw.source in report.sources:
                    raise WormflowError(f"{path.name}: source {raw.source!r} was already read from another "
                                        "file in this batch; ingest one of them")
                for extra in raw.extra_sources:
                    sha[extra] = sha256_of(Path(extra))
                built = build(raw)
                items.append((raw, built))
                report.sources.append(raw.source)
                if built.unknown:
                    report.notes.append(f"{raw.source}: names that are neither registry neurons nor known "
                                        f"cells, kept in the edge table only: {', '.join(built.unknown)}")
        except Exception as exc:  # one bad file must not stop the batch
            report.failed.append((str(path), failure_message(path.name, exc)))
        if on_file is not None:
            on_file(path)
    if items:
        prov = {r.source: {"file": str(Path(r.source_file).resolve()), "sha256": sha[r.source_file],
                           "format": r.format} for r, _ in items}
        write_connectome(store, items, sha, provenance=prov, version=wormflow_version())
    return report


def connectome_summary(store: str | Path) -> list[dict]:
    """Per source: neurons covered, edges and totals per layer."""
    ds = open_connectome(store)
    rows = []
    for s in ds["source"].values.tolist():
        one = ds.sel(source=s)
        row = {"source": s, "neurons": int(one["covered"].sum()), "format": str(one["format"].values)}
        for kind in ("chemical", "electrical"):
            w = np.nan_to_num(one[kind].values)
            n_edges = int((w != 0).sum())
            total = float(w.sum())
            if kind == "electrical":          # symmetric: count each junction pair once
                n_edges, total = int(np.triu(w != 0).sum()), float(np.triu(w).sum())
            row[kind] = (n_edges, total)
        row["other_layers"] = [k for k in ("monoamine", "neuropeptide", "sign", "funatlas_q")
                               if bool(one[k].notnull().any())]
        rows.append(row)
    return rows
