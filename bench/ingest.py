"""Ingest speed and memory against the named baselines, measured in the same run.

For the mirror's Flavell worms (Dag2023): seconds per worm and peak RSS of our ingest
(read + JLD2 identities + homogenize + atomic store write), next to the bare h5py read
of the same arrays (the floor). Then peak RSS when ingesting 10, 100 and 1000 synthetic
worms (must stay flat). Every measurement runs in a fresh subprocess so its peak RSS is
its own; the mirror measurements are repeated (``--repeats``, median) because a single
run on a shared 2-core machine varies by +-20%.

Reference (not re-run here; from the issue): worm-graph's Dag2023 preprocessor, median
2.2 s per worm and 590 MB peak RSS on these files on this kind of machine.

    python bench/ingest.py [--mirror DIR] [--synthetic 10,100,1000] [--repeats 3]

The ``phases`` line splits one ingest of the same worms into its parts, each timed where
it runs: the main thread reads, decodes the JLD2 identities and homogenizes while the
writer thread creates the store, writes each worm's chunks, the per-worm tables and the
consolidated metadata. The two overlap (two cores, one GIL), so the parts add up to more
than the total. The ``query`` line is the issue's ``open_activity(store).calcium.sel(
neuron="AVAL")`` over every worm, in a fresh process: imports, then open + select + load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORMGRAPH_S_PER_WORM = 2.2
WORMGRAPH_PEAK_MB = 590.0

CHILD = r"""
import json, resource, sys, time, shutil
mode, arg, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "floor":
    import h5py, glob
    files = sorted(glob.glob(arg + "/activity/Dag2023/*/*.h5"))
    t0 = time.perf_counter()
    for fn in files:
        with h5py.File(fn, "r") as f:
            f["gcamp/trace_array"][()]; f["timing/timestamp_confocal"][()]
            [d[()] for d in f["behavior"].values()]
            if "neuropal_registration/roi_match" in f: f["neuropal_registration/roi_match"][()]
    n = len(files)
elif mode == "sha256":                   # the provenance checksums ingest must compute, alone
    import glob
    from wormflow.core.provenance import sha256_of
    files = sorted(glob.glob(arg + "/activity/Dag2023/*/*.h5"))
    t0 = time.perf_counter()
    for fn in files + glob.glob(arg + "/activity/Dag2023/*.jld2"):
        sha256_of(fn)
    n = len(files)
elif mode == "cli":                      # the whole command, imports included (t0 is the start)
    from pipeline.cli import main
    try:
        main(["ingest", "activity", arg + "/activity/Dag2023", "--store", out], standalone_mode=False)
    finally:
        sys.stdout.flush()
    n = json.load(open(out + "/zarr.json"))["attributes"]["n_worms"]
elif mode in ("ingest", "phases"):
    import pipeline.ingest as ingest
    phases = {}
    if mode == "phases":                  # time each part where it runs (the same calls, wrapped)
        from activity.readers import flavell_h5
        from activity.store import StoreWriter
        def timed(owner, name, key):
            fn = getattr(owner, name)
            def wrapper(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    phases[key] = phases.get(key, 0.0) + time.perf_counter() - t
            setattr(owner, name, wrapper)
        for owner, name, key in [(ingest, "read_recordings", "main: read (labels included)"),
                                 (flavell_h5, "load_labels", "main: JLD2 labels"),
                                 (ingest, "homogenize_worm", "main: homogenize"),
                                 (StoreWriter, "_create_store", "writer: create the store"),
                                 (StoreWriter, "_write_series", "writer: series chunks"),
                                 (StoreWriter, "_write_tables", "writer: per-worm tables"),
                                 (StoreWriter, "_finalize", "writer: consolidated metadata")]:
            timed(owner, name, key)
            phases[key] = 0.0                 # listed in this order
    t0 = time.perf_counter()
    rep = ingest.ingest_activity([arg + "/activity/Dag2023"], out)
    n = len(rep.added)
    assert not rep.failed, rep.failed
    if phases:
        print(json.dumps({"phases": phases}))
elif mode == "query":                    # a cold open of the store ``arg`` in a fresh process
    # imported first, as they would be at the first use: xarray's zarr backend imports
    # zarr, and dask's first compute imports distributed (to look for a client)
    import xarray, dask.array, zarr, distributed
    from activity import open_activity
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = open_activity(arg)
    t_open = time.perf_counter() - t0
    values = ds.calcium.sel(neuron="AVAL").values
    n = values.shape[0]
    print(json.dumps({"imports": t_import, "open": t_open}))
else:
    import numpy as np
    from activity.homogenize import HomogenizeParams, homogenize_worm
    from activity.raw import RawRecording
    from activity.store import StoreWriter
    rng = np.random.default_rng(0)
    labels = ["AVAL", "AVAR", "RIML", "RIMR", "SMDVL", "SMDVR"] + [""] * 124
    n = int(arg)
    t0 = time.perf_counter()
    params = HomogenizeParams()
    with StoreWriter(out, params) as w:
        for i in range(n):
            t = 1.2e6 + np.arange(800) * 0.6
            rec = RawRecording(f"s{i}.h5", f"s{i}", "Synthetic", "synthetic", t, rng.normal(size=(800, 130)), labels, signal="synthetic fixture", units="a.u.")
            w.append(homogenize_worm(rec, params), f"{i:064x}", f"Synthetic/s{i}")
seconds = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "seconds": seconds, "peak_mb": peak_mb}))
"""


def run(mode: str, arg: str, out: str | None = None) -> dict:
    """One measurement in a fresh process; its store goes to ``out`` (default: a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = out or str(Path(tmp) / "store.zarr")
        proc = subprocess.run([sys.executable, "-c", CHILD, mode, arg, out], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode:
            raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
        result = {}
        for line in proc.stdout.strip().splitlines():
            if line.startswith("{"):
                result.update(json.loads(line))
        return result


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_mirror = os.environ.get("WORMFLOW_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--mirror", default=default_mirror)
    ap.add_argument("--synthetic", default="10,100,1000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    floor = _median([run("floor", args.mirror) for _ in range(args.repeats)])
    ours = _median([run("ingest", args.mirror) for _ in range(args.repeats)])
    f_worm = floor["seconds"] / floor["n"]
    o_worm = ours["seconds"] / ours["n"]
    print(f"Flavell worms in the mirror: {ours['n']}")
    print(f"  bare h5py read (floor)      {f_worm:8.4f} s/worm   peak RSS {floor['peak_mb']:6.0f} MB")
    print(f"  wormflow ingest             {o_worm:8.4f} s/worm   peak RSS {ours['peak_mb']:6.0f} MB")
    print(f"  worm-graph (reference)      {WORMGRAPH_S_PER_WORM:8.4f} s/worm   peak RSS {WORMGRAPH_PEAK_MB:6.0f} MB")
    print(f"  speed-up vs worm-graph      {WORMGRAPH_S_PER_WORM / o_worm:8.1f}x   (goal >= 20x)")
    print(f"  peak memory vs worm-graph   {ours['peak_mb'] / WORMGRAPH_PEAK_MB:8.2f}    (goal <= 0.25)")
    print(f"  ingest / read floor         {o_worm / f_worm:8.1f}x   (goal <= 2x)")
    sha = _median([run("sha256", args.mirror) for _ in range(args.repeats)])
    s_worm = sha["seconds"] / sha["n"]
    print(f"  sha256 of the same files alone (provenance): {s_worm:.4f} s/worm = {s_worm / f_worm:.1f}x the floor "
          "of CPU time that ingest spends on top of reading them")
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "store.zarr")
        parts = run("phases", args.mirror, store)
        print(f"  phases of one ingest ({parts['seconds']:.3f} s in all; ms per worm):")
        for name, seconds in parts["phases"].items():
            print(f"    {name:32s} {1e3 * seconds / parts['n']:6.1f}")
        query = run("query", store)
        print(f"  open_activity(store).calcium.sel(neuron='AVAL').values over {query['n']} worms, fresh process: "
              f"{query['seconds']:.3f} s, {query['open']:.3f} of them opening (after {query['imports']:.2f} s "
              "of importing xarray, dask, zarr and distributed)")
    cli = run("cli", args.mirror)
    print(f"  `wormflow ingest activity`, whole process with imports: {cli['seconds']:.2f} s, "
          f"peak RSS {cli['peak_mb']:.0f} MB ({cli['peak_mb'] / WORMGRAPH_PEAK_MB:.2f} of worm-graph's)")
    base = None
    for n in [int(x) for x in args.synthetic.split(",") if x]:
        r = run("synthetic", str(n))
        base = base or r["peak_mb"]
        print(f"  synthetic {n:5d} worms: {r['seconds'] / n:7.4f} s/worm  peak RSS {r['peak_mb']:6.0f} MB "
              f"({r['peak_mb'] / base:4.2f}x the first)")


if __name__ == "__main__":
    main()
