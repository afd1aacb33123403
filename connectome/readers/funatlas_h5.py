"""The Randi et al. 2023 signal-propagation atlas (``funatlas.h5`` of wormneuroatlas).

``neuron_ids`` (300 names) and one group per strain (``wt``, ``unc31``) holding 300 x 300
``q``, ``q_eq``, ``dFF`` and ``occ1``. wormneuroatlas indexes these ``[responding,
stimulated]``; we transpose to the store's ``[pre = stimulated, post = responding]``.
The per-pair kernel and trial arrays (object datasets) are not read.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from wormflow.core.errors import FormatError
from connectome.raw import Matrix, RawConnectome

FORMAT = "funatlas_h5"
DESCRIPTION = "Randi 2023 functional atlas funatlas.h5 (wt / unc31: q, q_eq, dFF, occ1)"
_FIELDS = {"q": "funatlas_q", "q_eq": "funatlas_q_eq", "dFF": "funatlas_dff", "occ1": "funatlas_occurrences"}


def sniff(path: Path) -> bool:
    if path.suffix.lower() not in {".h5", ".hdf5"}:
        return False
    try:
        with h5py.File(path, "r") as f:
            return "neuron_ids" in f and "wt" in f
    except OSError:
        return False


def read(path: Path) -> list[RawConnectome]:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path.name}: not a readable HDF5 file: {exc}") from exc
    with f:
        if "neuron_ids" not in f:
            raise FormatError(f"{path.name}: no 'neuron_ids' dataset")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["neuron_ids"][()]]
        out = []
        for strain in ("wt", "unc31"):
            if strain not in f:
                continue
            matrices = []
            for field, kind in _FIELDS.items():
                if field not in f[strain]:
                    raise FormatError(f"{path.name}: group {strain!r} has no {field!r} dataset")
                values = np.asarray(f[strain][field][()], dtype=float)
                if values.shape != (len(names), len(names)):
                    raise FormatError(f"{path.name}: {strain}/{field} is {values.shape}, expected "
                                      f"({len(names)}, {len(names)}) to match neuron_ids")
                matrices.append(Matrix(kind, names, names, values.T))
            threshold = float(f[strain]["q_eq_th"][()]) if "q_eq_th" in f[strain] else None
            out.append(RawConnectome(source=f"randi_2023_funatlas_{strain}", source_file=str(path), format=FORMAT,
                                     matrices=matrices, covered=names,
                                     weight={k: f"{v} [{strain}]" for k, v in _FIELDS.items()},
                                     metadata={"strain": strain, "q_eq_threshold": threshold}))
    if not out:
        raise FormatError(f"{path.name}: neither a 'wt' nor an 'unc31' group")
    return out
