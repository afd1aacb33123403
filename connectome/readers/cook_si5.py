"""Cook et al. 2019 Supplementary Information 5: adjacency matrices (XLSX).

Sheets for the hermaphrodite and the male, chemical and gap-junction (symmetric and
asymmetric). The original release names them e.g. ``hermaphrodite chemical``, ``herm gap
jn symmetric``; the July 2020 corrected release renames them, so sheets are found by the
words they contain (sex, chemical / gap, symmetric), not by exact names. Layout: neuron
names in row 3 (columns, postsynaptic) and column C (rows, presynaptic) from D4 on, with
group labels (PHARYNX, ...) in row 1 and column A; blank cells are 0. Gap junction values
come from the symmetric sheet, whose row and column names must agree.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wormflow.core.errors import FormatError
from connectome.raw import Matrix, RawConnectome, matrix_edges
from connectome.readers._tables import excel_sheets, matrix_block, read_sheet

FORMAT = "cook_si5"
DESCRIPTION = "Cook 2019 SI 5 adjacency matrices (XLSX, original or 2020-corrected release)"


def _find(sheets: list[str], sex: str, kind: str) -> str | None:
    for s in sheets:
        low = s.lower()
        is_sex = low.startswith("herm") if sex == "herm" else low.startswith("male")
        if not is_sex:
            continue
        if kind == "chemical" and "chem" in low:
            return s
        if kind == "electrical" and "gap" in low and "symm" in low and "asymm" not in low:
            return s
    return None


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".xlsx":
        return False
    try:
        sheets = excel_sheets(path)
    except FormatError:
        return False
    return _find(sheets, "herm", "chemical") is not None or _find(sheets, "male", "chemical") is not None


def read(path: Path) -> list[RawConnectome]:
    sheets = excel_sheets(path)
    out = []
    for sex, label in (("herm", "hermaphrodite"), ("male", "male")):
        chem, gap = _find(sheets, sex, "chemical"), _find(sheets, sex, "electrical")
        if chem is None and gap is None:
            continue
        if chem is None or gap is None:
            missing = "chemical" if chem is None else "gap junction (symmetric)"
            raise FormatError(f"{path.name}: no {label} {missing} sheet (sheets: {', '.join(sheets)})")
        matrices = []
        for kind, sheet in (("chemical", chem), ("electrical", gap)):
            rows, cols, values = matrix_block(read_sheet(path, sheet), path, sheet, 2, 2, 3, 3)
            if kind == "electrical" and set(rows) != set(cols):
                only_r, only_c = sorted(set(rows) - set(cols)), sorted(set(cols) - set(rows))
                raise FormatError(f"{path.name}, sheet {sheet!r}: row and column names of the symmetric "
                                  f"matrix disagree (rows only: {only_r[:5]}, columns only: {only_c[:5]})")
            matrices.append(Matrix(kind, rows, cols, values))
        out.append(RawConnectome(
            source=f"cook_2019_{sex}/si5", source_file=str(path), format=FORMAT, matrices=matrices,
            edges=_edges(matrices), weight={"chemical": "synapse count (EM sections summed, Cook 2019)",
                                            "electrical": "gap junction count (symmetric sheet)"},
            covered=sorted(set(matrices[0].pre) | set(matrices[0].post) | set(matrices[1].pre)),
            metadata={"sheets": [chem, gap]}))
    if not out:
        raise FormatError(f"{path.name}: no hermaphrodite or male sheets (sheets: {', '.join(sheets)})")
    return out


def _edges(matrices: list[Matrix]) -> pd.DataFrame:
    return pd.concat([matrix_edges(m) for m in matrices], ignore_index=True)
