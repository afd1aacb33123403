"""OpenWorm ``CElegansNeuronTables.xls`` (c302).

Sheet ``Connectome``: ``Origin, Target, Type, Number of Connections, Neurotransmitter``
with Type ``Send`` (chemical, Origin presynaptic) or ``GapJunction``; sheet
``NeuronsToMuscle``: ``Neuron, Muscle, Number of Connections, Neurotransmitter``
(neuromuscular chemical synapses, kept in the edge table).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame
from connectome.readers._tables import excel_sheets, header_table, numeric_column, read_sheet, text_column

FORMAT = "openworm_xls"
DESCRIPTION = "OpenWorm CElegansNeuronTables.xls (sheets Connectome, NeuronsToMuscle)"
_TYPES = {"send": "chemical", "gapjunction": "electrical"}


def sniff(path: Path) -> bool:
    if path.suffix.lower() not in {".xls", ".xlsx"}:
        return False
    try:
        return "Connectome" in excel_sheets(path)
    except FormatError:
        return False


def read(path: Path) -> list[RawConnectome]:
    cells = read_sheet(path, "Connectome")
    cols = header_table(cells, path, "Connectome", {"pre": ("origin",), "post": ("target",), "type": ("type",),
                                                    "n": ("number of connections",),
                                                    "nt": ("neurotransmitter",)})
    types = [t.lower() for t in text_column(cells, cols["type"])]
    unknown = sorted(set(types) - set(_TYPES))
    if unknown:
        raise FormatError(f"{path.name}, sheet 'Connectome': unknown connection types {unknown} "
                          "(expected Send or GapJunction)")
    parts = [edge_frame(text_column(cells, cols["pre"]), text_column(cells, cols["post"]),
                        [_TYPES[t] for t in types], numeric_column(cells, cols["n"], path, "Connectome"),
                        detail=text_column(cells, cols["nt"]))]
    if "NeuronsToMuscle" in excel_sheets(path):
        m = read_sheet(path, "NeuronsToMuscle")
        mc = header_table(m, path, "NeuronsToMuscle", {"pre": ("neuron",), "post": ("muscle",),
                                                         "n": ("number of connections",),
                                                         "nt": ("neurotransmitter",)})
        parts.append(edge_frame(text_column(m, mc["pre"]), text_column(m, mc["post"]), "chemical",
                                numeric_column(m, mc["n"], path, "NeuronsToMuscle"), detail=text_column(m, mc["nt"])))
    return [RawConnectome(source="openworm/xls", source_file=str(path), format=FORMAT,
                          edges=pd.concat(parts, ignore_index=True),
                          weight={"chemical": "number of connections (Send rows; muscles from NeuronsToMuscle)",
                                  "electrical": "number of gap junction connections"})]
