"""Bentley et al. 2016 extrasynaptic networks (wormneuroatlas CSVs).

``esconnectome_monoamines_Bentley_2016.csv`` and ``esconnectome_neuropeptides_...``:
a ``#source neuron, target neuron, transmitter, receptor[, gene]`` header and one row
per (releasing neuron, receptor-expressing neuron, ligand, receptor). The layer value
for a pair is the number of ligand-receptor pairings linking them; each row stays in the
edge table with ``ligand:receptor`` as detail.
"""

from __future__ import annotations

import csv
from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame

FORMAT = "bentley_csv"
DESCRIPTION = "Bentley 2016 extrasynaptic monoamine / neuropeptide CSV"


def _kind(path: Path) -> str | None:
    low = path.name.lower()
    return "monoamine" if "monoamine" in low else "neuropeptide" if "neuropeptide" in low else None


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".csv" or _kind(path) is None:
        return False
    try:
        with open(path, "r", errors="replace") as fh:
            return fh.readline().lower().startswith("#source neuron")
    except OSError:
        return False


def read(path: Path) -> list[RawConnectome]:
    kind = _kind(path)
    if kind is None:
        raise FormatError(f"{path.name}: cannot tell monoamine from neuropeptide (name the file as Bentley's)")
    pre, post, detail = [], [], []
    with open(path, newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if not header or not header[0].lower().startswith("#source neuron"):
            raise FormatError(f"{path.name}: expected a '#source neuron, target neuron, ...' header")
        for n, row in enumerate(rows, 2):
            if not row:
                continue
            if len(row) < 4:
                raise FormatError(f"{path.name}, line {n}: expected at least 4 fields, got {len(row)}")
            pre.append(row[0]), post.append(row[1]), detail.append(f"{row[2].strip()}:{row[3].strip()}")
    edges = edge_frame(pre, post, kind, [1.0] * len(pre), detail=detail)
    return [RawConnectome(source=f"bentley_2016_{kind}", source_file=str(path), format=FORMAT, edges=edges,
                          weight={kind: f"number of {kind} ligand-receptor pairings"})]
