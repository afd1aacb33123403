"""WormWiring adjacency lists: headerless ``pre<TAB>post<TAB>count`` lines (c302's
``wormwiring_N2U.txt``). The file has no type column; its counts are read as directed
chemical contacts, and the store says so in the source's weight description."""

from __future__ import annotations

import re
from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import numeric_column, read_text_table, text_column

FORMAT = "wormwiring_txt"
DESCRIPTION = "WormWiring adjacency list, pre<TAB>post<TAB>count, no header"


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".txt":
        return False
    try:
        with open(path, "r", errors="replace") as fh:
            first = fh.readline().rstrip("\n").split("\t")
    except OSError:
        return False
    return len(first) == 3 and first[2].strip().isdigit()


def read(path: Path) -> list[RawConnectome]:
    cells = read_text_table(path, sep="\t")
    if cells.shape[1] != 3:
        raise FormatError(f"{path.name}: expected 3 tab-separated columns (pre, post, count), found {cells.shape[1]}")
    m = re.search(r"wormwiring_(\w+)", path.stem, re.I)
    series = m.group(1).lower() if m else path.stem.lower()
    edges = edge_frame(text_column(cells, 0, 0), text_column(cells, 1, 0), "chemical",
                       numeric_column(cells, 2, path, "(text)", first_row=0))
    return [RawConnectome(source=f"white_1986_{series}/wormwiring", source_file=str(path), format=FORMAT,
                          edges=edges, weight={"chemical": "WormWiring adjacency count (file has no type "
                                                            "column; read as directed chemical contacts)"})]
