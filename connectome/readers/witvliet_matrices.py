"""Witvliet et al. 2021 synapse count matrices (``synapse_count_matrices.xlsx``).

One sheet per dataset (``Dataset1`` ... ``Dataset8``). Layout: row 1 ``Pre``, row 2 cell
type groups, row 3 the presynaptic names from column D; column A ``Post``, column B
groups, column C the postsynaptic names from row 5. Values are chemical synapse counts
(their sum equals the chemical total of the dataset's edge list). Note the orientation:
rows are postsynaptic, so the matrix is transposed on reading.
"""

from __future__ import annotations

import re
from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import Matrix, RawConnectome, matrix_edges
from connectome.readers._tables import excel_sheets, matrix_block, read_sheet

FORMAT = "witvliet_matrices"
DESCRIPTION = "Witvliet 2021 synapse count matrices (XLSX, sheets Dataset1..8, rows = post)"
_SHEET = re.compile(r"^dataset\s*(\d+)$", re.I)


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".xlsx":
        return False
    try:
        return any(_SHEET.match(s) for s in excel_sheets(path))
    except FormatError:
        return False


def read(path: Path) -> list[RawConnectome]:
    out = []
    for sheet in excel_sheets(path):
        m = _SHEET.match(sheet)
        if not m:
            continue
        cells = read_sheet(path, sheet)
        if str(cells.iat[0, 3]).strip().lower() != "pre" or str(cells.iat[4, 0]).strip().lower() != "post":
            raise FormatError(f"{path.name}, sheet {sheet!r}: expected 'Pre' in D1 and 'Post' in A5")
        posts, pres, values = matrix_block(cells, path, sheet, 2, 2, 4, 3)
        matrix = Matrix("chemical", pres, posts, values.T)
        out.append(RawConnectome(source=f"witvliet_2020_{m.group(1)}/matrix", source_file=str(path),
                                 format=FORMAT, matrices=[matrix], edges=matrix_edges(matrix),
                                 weight={"chemical": "synapse count"}, covered=sorted(set(pres) | set(posts)),
                                 metadata={"sheet": sheet}))
    if not out:
        raise FormatError(f"{path.name}: no 'DatasetN' sheets")
    return out
