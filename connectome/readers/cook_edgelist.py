"""Cook 2019 hermaphrodite edge list (c302's ``herm_full_edgelist.csv``):
``Source, Target, Weight, Type`` with Type chemical/electrical and names padded with spaces."""

from __future__ import annotations

from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import header_table, numeric_column, read_text_table, text_column

FORMAT = "cook_edgelist"
DESCRIPTION = "edge list CSV Source, Target, Weight, Type (Cook 2019 via c302)"
_COLUMNS = {"pre": ("source",), "post": ("target",), "weight": ("weight",), "type": ("type",)}


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    try:
        with open(path, "r", errors="replace") as fh:
            head = [h.strip().lower() for h in fh.readline().split(",")]
    except OSError:
        return False
    return head[:4] == ["source", "target", "weight", "type"]


def read(path: Path) -> list[RawConnectome]:
    cells = read_text_table(path, sep=",")
    cols = header_table(cells, path, "(text)", _COLUMNS)
    kinds = [k.lower() for k in text_column(cells, cols["type"])]
    unknown = sorted(set(kinds) - {"chemical", "electrical"})
    if unknown:
        raise FormatError(f"{path.name}: unknown connection types {unknown} (expected chemical or electrical)")
    edges = edge_frame(text_column(cells, cols["pre"]), text_column(cells, cols["post"]), kinds,
                       numeric_column(cells, cols["weight"], path, "(text)"))
    sex = "male" if "male" in path.stem.lower() and "fe" not in path.stem.lower() else "herm"
    return [RawConnectome(source=f"cook_2019_{sex}/edgelist", source_file=str(path), format=FORMAT, edges=edges,
                          weight={"chemical": "synapse count (Cook 2019)", "electrical": "gap junction count"})]
