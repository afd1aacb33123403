"""Varshney et al. 2011 ``NeuronConnect`` (c302's ``NeuronConnectFormatted.xls/.xlsx``).

Columns ``Neuron 1, Neuron 2, Type, Nbr``. Types, as documented with the dataset:
``S`` send (Neuron 1 presynaptic to Neuron 2), ``Sp`` send to a polyadic synapse, ``R``
receive and ``Rp`` receive from a polyadic synapse (the same synapses seen from the
other side), ``EJ`` electrical junction (listed from both partners), ``NMJ`` neuromuscular
junction. Chemical counts are S + Sp only: each R/Rp row is the mirror of an S/Sp row
and counting both would double every synapse. R/Rp rows stay in the edge table with
their type in ``detail``; the reader checks they mirror the sends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import excel_sheets, header_table, numeric_column, read_sheet, text_column

FORMAT = "varshney_xls"
DESCRIPTION = "Varshney 2011 NeuronConnect spreadsheet (Neuron 1, Neuron 2, Type, Nbr)"
_COLUMNS = {"n1": ("neuron 1",), "n2": ("neuron 2",), "type": ("type",), "nbr": ("nbr",)}
_TYPES = {"S": "chemical", "Sp": "chemical", "R": "received", "Rp": "received", "EJ": "electrical",
          "NMJ": "chemical"}


def sniff(path: Path) -> bool:
    if path.suffix.lower() not in {".xls", ".xlsx"}:
        return False
    try:
        head = read_sheet(path, excel_sheets(path)[0]).iloc[0].astype(str).str.strip().str.lower().tolist()
    except FormatError:
        return False
    return head[:4] == ["neuron 1", "neuron 2", "type", "nbr"]


def read(path: Path) -> list[RawConnectome]:
    sheet = excel_sheets(path)[0]
    cells = read_sheet(path, sheet)
    cols = header_table(cells, path, sheet, _COLUMNS)
    n1, n2 = text_column(cells, cols["n1"]), text_column(cells, cols["n2"])
    types = text_column(cells, cols["type"])
    nbr = numeric_column(cells, cols["nbr"], path, sheet)
    unknown = sorted(set(types) - set(_TYPES))
    if unknown:
        raise FormatError(f"{path.name}, sheet {sheet!r}: unknown synapse types {unknown} "
                          f"(documented: {', '.join(_TYPES)})")
    t = np.array(types)
    sends = pd.DataFrame({"a": n1, "b": n2, "n": nbr})[np.isin(t, ["S", "Sp"])].groupby(["a", "b"]).n.sum()
    recv = pd.DataFrame({"a": n2, "b": n1, "n": nbr})[np.isin(t, ["R", "Rp"])].groupby(["a", "b"]).n.sum()
    both = sends.index.intersection(recv.index)
    mirrored = float((sends.loc[both] == recv.loc[both]).mean()) if len(both) else float("nan")
    edges = edge_frame(n1, n2, [_TYPES[x] for x in types], nbr, detail=types)
    edges = edges[edges["kind"] != "received"].reset_index(drop=True)
    source = "varshney_2011/" + path.suffix.lower().lstrip(".")
    return [RawConnectome(source=source, source_file=str(path), format=FORMAT, edges=edges,
                          weight={"chemical": "synapse count (S + Sp; NMJ rows to muscles)",
                                  "electrical": "gap junction count"},
                          metadata={"sheet": sheet, "receive_rows_matching_sends": mirrored,
                                    "rows_by_type": {k: int((t == k).sum()) for k in _TYPES}})]
