"""Connectome ingest and query times on the mirror, measured in one run.

Prints the time to read and store every connectome source of the mirror (per file and in
total), then the time to open the store cold and build one networkx graph, and one
consensus across the whole-animal hermaphrodite sources.

    python bench/connectome_ingest.py [--mirror DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# this script's own name would shadow the connectome package when run as a script

from connectome.build import build  # noqa: E402
from connectome.graph import consensus, to_networkx  # noqa: E402
from connectome.readers import read_connectome  # noqa: E402
from connectome.store import open_connectome  # noqa: E402
from pipeline.connectome_ingest import discover_connectomes, ingest_connectomes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("WORMFLOW_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--mirror", default=default)
    args = ap.parse_args()
    files, _ = discover_connectomes([Path(args.mirror) / "connectome"])
    print(f"{len(files)} connectome files")
    slow = []
    for f in files:
        t = time.perf_counter()
        for raw in read_connectome(f):
            build(raw)
        slow.append((time.perf_counter() - t, f.name))
    for s, name in sorted(slow, reverse=True)[:5]:
        print(f"  read + build {name:48s} {s:6.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "connectome.zarr"
        t = time.perf_counter()
        report = ingest_connectomes([Path(args.mirror) / "connectome"], store)
        ingest_s = time.perf_counter() - t
        print(f"ingest every source ({len(report.sources)} sources, {len(report.failed)} failed): {ingest_s:.1f} s")
        t = time.perf_counter()
        ds = open_connectome(store)
        g = to_networkx(ds, "cook_2019_herm/si5", "chemical")
        graph_s = time.perf_counter() - t
        print(f"open store + networkx graph ({g.number_of_nodes()} nodes, {g.number_of_edges()} edges): "
              f"{graph_s * 1000:.0f} ms")
        t = time.perf_counter()
        c = consensus(ds, ["white_1986_whole/tsv", "varshney_2011/xlsx", "cook_2019_herm/si5", "openworm/xls",
                           "randi_2023_anatomical/h5"])
        int(c["n_sources"].sum())
        print(f"consensus of 5 whole-animal sources: {(time.perf_counter() - t) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
