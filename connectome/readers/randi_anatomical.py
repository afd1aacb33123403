"""The anatomical connectome compiled by wormneuroatlas (Randi et al. 2023).

``aconnectome_default.h5`` (datasets ``chem`` and ``gap``, 300 x 300) or
``aconnectome.json`` (``chemical``, ``electrical`` 300 x 300, ``chemical_sign``), rows
and columns in the order of ``neuron_ids.txt`` (``index<TAB>name``), which must sit beside
the file. wormneuroatlas indexes ``[post, pre]`` (the matrix has DA1 -> AVAL where every
EM source has AVAL -> DA1), so both matrices are transposed on reading. Its AWCON/AWCOFF
rows name functional AWC identities, not sides; they are reported as unknown names.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from wormflow.core.errors import FormatError
from connectome.raw import Matrix, RawConnectome, matrix_edges

FORMAT = "randi_anatomical"
DESCRIPTION = "wormneuroatlas anatomical connectome (aconnectome_default.h5 / aconnectome.json + neuron_ids.txt)"
IDS = "neuron_ids.txt"


def sniff(path: Path) -> bool:
    if not (path.with_name(IDS).is_file() and path.name.startswith("aconnectome")):
        return False
    if path.suffix.lower() == ".json":
        with open(path, "rb") as fh:
            head = fh.read(64)
        return b'"chemical' in head or b'"electrical' in head
    if path.suffix.lower() == ".h5":
        try:
            with h5py.File(path, "r") as f:
                return "chem" in f and "gap" in f
        except OSError:
            return False
    return False


def read_ids(path: Path) -> list[str]:
    ids = path.with_name(IDS)
    if not ids.is_file():
        raise FormatError(f"{path.name}: {IDS} (the row/column order) is not beside the file")
    names = []
    for n, line in enumerate(ids.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != n - 1:
            raise FormatError(f"{IDS}, line {n}: expected '<index> <name>' with index {n - 1}, got {line!r}")
        names.append(parts[1])
    return names


def read(path: Path) -> list[RawConnectome]:
    names = read_ids(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
            chem, gap = np.asarray(data["chemical"], float), np.asarray(data["electrical"], float)
        except (json.JSONDecodeError, KeyError) as exc:
            raise FormatError(f"{path.name}: expected JSON with 'chemical' and 'electrical' matrices: {exc}") from exc
    else:
        try:
            with h5py.File(path, "r") as f:
                chem, gap = f["chem"][()].astype(float), f["gap"][()].astype(float)
        except (OSError, KeyError) as exc:
            raise FormatError(f"{path.name}: expected HDF5 datasets 'chem' and 'gap': {exc}") from exc
    for label, m in (("chemical", chem), ("electrical", gap)):
        if m.shape != (len(names), len(names)):
            raise FormatError(f"{path.name}: {label} matrix is {m.shape} but {IDS} lists {len(names)} neurons")
    matrices = [Matrix("chemical", names, names, chem.T), Matrix("electrical", names, names, gap.T)]
    tag = "json" if path.suffix.lower() == ".json" else "h5"
    return [RawConnectome(source=f"randi_2023_anatomical/{tag}", source_file=str(path), format=FORMAT,
                          matrices=matrices, edges=pd.concat([matrix_edges(m) for m in matrices], ignore_index=True),
                          weight={"chemical": "synapse count compiled by wormneuroatlas",
                                  "electrical": "gap junction count compiled by wormneuroatlas"},
                          covered=names, extra_sources=[str(path.with_name(IDS))])]
