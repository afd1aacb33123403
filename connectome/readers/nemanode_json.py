"""NemaNode / WormWideWeb JSON edge lists (``white_1986_whole.json``, ``witvliet_2020_8.json``...).

A list of ``{"pre", "post", "typ", "syn"}`` records: ``typ`` 0 chemical, 2 electrical;
``syn`` holds sizes. In the EM datasets that annotate single synapses (records carry
``ids``) it has one entry per synapse, so the weight is ``len(syn)``; in compilations
without ``ids`` (White 1986, Cook & Jarrell 2019) it holds the pair's weight, so the
weight is ``sum(syn)``. ``sum(syn)`` is kept as ``detail`` either way. Gap junctions
appear once from each partner with the same synapses.
"""

from __future__ import annotations

import json
from pathlib import Path

from wormflow.core.errors import FormatError
from connectome.raw import RawConnectome, edge_frame

FORMAT = "nemanode_json"
DESCRIPTION = "NemaNode JSON edge list [{pre, post, typ, syn}]"
_TYP = {0: "chemical", 2: "electrical"}


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"[") and b'"typ"' in head and b'"syn"' in head


def read(path: Path) -> list[RawConnectome]:
    try:
        records = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path.name}: not valid JSON: {exc}") from exc
    if not isinstance(records, list):
        raise FormatError(f"{path.name}: expected a list of edge records")
    pre, post, kind, count, size = [], [], [], [], []
    for i, r in enumerate(records):
        try:
            typ, syn = _TYP[r["typ"]], r["syn"]
            pre.append(r["pre"]), post.append(r["post"])
        except KeyError as exc:
            raise FormatError(f"{path.name}: record {i} has no {exc} field or an unknown typ "
                              f"{r.get('typ')!r} (0 chemical, 2 electrical)") from None
        if not isinstance(syn, list) or not all(isinstance(s, (int, float)) for s in syn):
            raise FormatError(f"{path.name}: record {i} ({r['pre']} -> {r['post']}): 'syn' is not a list of numbers")
        kind.append(typ), count.append(len(syn) if "ids" in r else sum(syn)), size.append(str(sum(syn)))
    edges = edge_frame(pre, post, kind, count, detail=size)
    return [RawConnectome(source=f"{path.stem.lower()}/nemanode", source_file=str(path), format=FORMAT,
                          edges=edges, weight={"chemical": "synapse count (len(syn) with ids, else sum(syn))",
                                               "electrical": "gap junction count (len(syn) with ids, else sum(syn))"})]
