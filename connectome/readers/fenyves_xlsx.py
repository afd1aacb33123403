"""Fenyves et al. 2020 synapse-sign predictions (PLoS Comput Biol S3, XLSX).

Sheet ``5. Sign prediction``: two header rows, then one row per chemical connection:
source neuron (A), target neuron (D), edge weight (E), edge type (F), and the predicted
polarity in the column headed ``Predicted polarity`` (``+``, ``-``, ``complex``,
``no pred``). The layer holds +1 / -1 / 0 (complex) and nothing for ``no pred``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import column_letter, excel_sheets, read_sheet, text_column

FORMAT = "fenyves_xlsx"
DESCRIPTION = "Fenyves 2020 S3 workbook, sheet '5. Sign prediction'"
SHEET = "5. Sign prediction"
_SIGN = {"+": 1.0, "-": -1.0, "complex": 0.0}


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".xlsx":
        return False
    try:
        return SHEET in excel_sheets(path)
    except FormatError:
        return False


def read(path: Path) -> list[RawConnectome]:
    cells = read_sheet(path, SHEET)
    top = [str(v).strip().lower() for v in cells.iloc[0].tolist()]
    if "predicted polarity" not in top:
        raise FormatError(f"{path.name}, sheet {SHEET!r}: no 'Predicted polarity' column in row 1")
    col = top.index("predicted polarity")
    if str(cells.iat[1, 0]).strip().lower() != "neuron" or str(cells.iat[1, 3]).strip().lower() != "neuron":
        raise FormatError(f"{path.name}, sheet {SHEET!r}: expected 'Neuron' in A2 and D2")
    pre, post = text_column(cells, 0, 2), text_column(cells, 3, 2)
    raw = [v.lower() for v in text_column(cells, col, 2)]
    keep, signs = [], []
    for i, v in enumerate(raw):
        if v in _SIGN:
            keep.append(i), signs.append(_SIGN[v])
        elif v not in ("no pred", ""):
            raise FormatError(f"{path.name}, sheet {SHEET!r}, cell {column_letter(col)}{i + 3}: unknown polarity "
                              f"{v!r} (expected +, -, complex or no pred)")
    edges = edge_frame(np.asarray(pre, object)[keep], np.asarray(post, object)[keep], "sign", signs,
                       detail=np.asarray(raw, object)[keep])
    return [RawConnectome(source="fenyves_2020", source_file=str(path), format=FORMAT, edges=edges,
                          weight={"sign": "predicted sign +1 / -1, 0 for complex"},
                          metadata={"rows": len(raw), "no_prediction": int(sum(v == "no pred" for v in raw))})]
