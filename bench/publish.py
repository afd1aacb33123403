"""Benchmark: `wormflow publish` on the mirror's data.

Builds a workdir from the mirror (activity store of every recording, connectome store of
every file, a tsnet result with horizontal VGs), then times publishing each collection and
prints the output size, next to the size of the stores it came from (the named baseline:
the ratio says how much the Parquet folders weigh against the Zarr stores).

Run: WORMFLOW_MIRROR=../shared/data .venv/bin/python bench/publish.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from pipeline.tsnet import tsnet_on_store  # noqa: E402
from pipeline.connectome_ingest import ingest_connectomes  # noqa: E402
from pipeline.ingest import ingest_activity  # noqa: E402
from pipeline.publish import publish_activity, publish_analysis, publish_connectome  # noqa: E402


def size(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    mirror = Path(os.environ.get("WORMFLOW_MIRROR", ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        ingest_activity([mirror / "activity" / "Dag2023", mirror / "activity" / "Scholz2018"], wd / "activity.zarr")
        ingest_connectomes([mirror / "connectome"], wd / "connectome.zarr")
        tsnet_on_store(wd / "activity.zarr", wd / "analysis", constructions=("horizontal",), workers=2,
                       progress=False)
        print(f"{'collection':<12}{'seconds':>9}{'rows':>10}{'out MB':>9}{'store MB':>10}{'out/store':>11}")
        for name, fn, store in (("activity", publish_activity, wd / "activity.zarr"),
                                ("connectome", publish_connectome, wd / "connectome.zarr"),
                                ("analysis", publish_analysis, wd / "analysis")):
            t0 = time.perf_counter()
            col = fn(store, wd / "pub" / name, f"bench/{name}")
            dt = time.perf_counter() - t0
            out = size(col.folder)
            src = size(store) if name != "analysis" else size(store / "tsnet.zarr")
            print(f"{name:<12}{dt:>9.2f}{sum(col.rows.values()):>10}{out:>9.1f}{src:>10.1f}{out / src:>11.2f}")


if __name__ == "__main__":
    main()
