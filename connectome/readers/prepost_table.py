"""Edge tables with columns ``pre, post, type, synapses`` (type chemical/electrical).

Found as TSV in wormneuroatlas and c302 (``aconnectome_white_1986_whole.csv``, ``_A``,
``_L4``, ``aconnectome_witvliet_2020_7.csv``; the ``_A`` file has a space-separated header
over tab-separated rows) and as single-sheet XLSX in c302 (``witvliet_2020_1.xlsx``...).
Electrical junctions are listed once per pair; :mod:`connectome.build` symmetrizes.
"""

from __future__ import annotations

import re
from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import (excel_sheets, header_table, numeric_column, read_sheet,
                                        read_text_table, text_column)

FORMAT = "prepost_table"
DESCRIPTION = "edge table pre/post/type/synapses (TSV or XLSX)"
_COLUMNS = {"pre": ("pre",), "post": ("post",), "type": ("type",), "synapses": ("synapses",)}
_DATASET = {"white_1986_a": "white_1986_n2u", "white_1986_l4": "white_1986_jsh"}


def _dataset(path: Path) -> str:
    stem = re.sub(r"^aconnectome_", "", path.stem.lower())
    return _DATASET.get(stem, stem)


def sniff(path: Path) -> bool:
    try:
        if path.suffix.lower() in {".csv", ".tsv", ".txt"}:
            with open(path, "r", errors="replace") as fh:
                return fh.readline().split() == ["pre", "post", "type", "synapses"]
        if path.suffix.lower() == ".xlsx" and len(excel_sheets(path)) == 1:
            head = read_sheet(path).iloc[0].astype(str).str.strip().str.lower().tolist()
            return head[:4] == ["pre", "post", "type", "synapses"]
    except (OSError, FormatError):
        return False
    return False


def read(path: Path) -> list[RawConnectome]:
    if path.suffix.lower() == ".xlsx":
        sheet = excel_sheets(path)[0]
        cells = read_sheet(path, sheet)
        tag = "xlsx"
    else:
        sheet = "(text)"
        cells = read_text_table(path, sep=None)
        tag = "tsv"
    cols = header_table(cells, path, sheet, _COLUMNS)
    kinds = [k.lower() for k in text_column(cells, cols["type"])]
    unknown = sorted(set(kinds) - {"chemical", "electrical"})
    if unknown:
        raise FormatError(f"{path.name}, sheet {sheet!r}: unknown connection types {unknown} "
                          "(expected chemical or electrical)")
    edges = edge_frame(text_column(cells, cols["pre"]), text_column(cells, cols["post"]), kinds,
                       numeric_column(cells, cols["synapses"], path, sheet))
    return [RawConnectome(source=f"{_dataset(path)}/{tag}", source_file=str(path), format=FORMAT, edges=edges,
                          weight={"chemical": "synapse count", "electrical": "gap junction count"},
                          metadata={"sheet": sheet})]
