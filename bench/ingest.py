"""Ingest speed, memory and store scale, each against its baseline in the same run.

1. The mirror's Flavell worms (Dag2023): seconds per worm and peak RSS of our ingest
   (read + JLD2 identities + homogenize + one Icechunk commit), next to the bare h5py read
   of the same arrays (the floor) and the sha256 the provenance needs. Every measurement
   runs in a fresh subprocess so its peak RSS is its own, repeated (``--repeats``,
   median): one run on a shared 2-core machine varies by +-20%.
   worm-graph's preprocessing (qsimeon/worm-data-preprocess@953f66a, its Dag2023
   preprocessor with its own config) runs on the same files in the same run, alternating
   with ours (``--pairs``, default 5): per-worm time, whole-process wall time and peak RSS,
   each pair's ratio printed as min-median-max. It runs in its own environment (set up by
   ``python bench/anchors.py setup worm-data-preprocess``); where it is not set up, the
   bench says so and prints no ratio.
2. Parallel ingest: ``--copies`` (default 4) copies of the Flavell files (28 worms; each
   copy with its own sha256) on a local Dask cluster of 1 and of 2 workers, alternating,
   the cluster started before the clock.
3. Store scale: stores of 10, 100, 1,000 (and ``--scale`` more) synthetic worms of 1,500
   frames; the time and peak RSS of appending one more worm (a fresh process each, after
   the build's writes are flushed to disk), which must stay flat however large the store.
4. The cold query of the issue on the 1,000-worm store:
   ``open_activity(store).calcium.sel(neuron="AVAL").values`` in a fresh process, with
   the bytes it read (the process's ``rchar`` from /proc) against the store's size.

    python bench/ingest.py [--mirror DIR] [--scale 10,100,1000] [--repeats 3]

The ``phases`` line splits one ingest into reading (labels included), homogenizing,
appending to the session (compression and chunk writes) and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anchors  # noqa: E402

SYNTHETIC_FRAMES = 1500

CHILD = r"""
import json, resource, sys, time, shutil, tempfile, contextlib
import numpy as np
FRAMES = %d
def tempfile_dir():
    return tempfile.TemporaryDirectory()
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
    # the worms committed, read with what the ingest loaded (open_activity would import
    # xarray, pandas and dask into this process and count them in the command's memory)
    import zarr
    from wormflow.core import repository
    session = repository.readonly_session(repository.open_repository(out), None)
    n = int(zarr.open_group(store=session.store, mode="r", zarr_format=3).attrs["n_worms"])
elif mode in ("ingest", "phases"):
    # the modules an ingest uses, imported before the clock as the worm-graph runner imports
    # its own; the import time is reported beside (and the "cli" mode counts everything)
    import pipeline.ingest as ingest
    import h5py, zarr, icechunk, zarr.codecs
    imports_s = time.perf_counter() - t0
    phases = {}
    if mode == "phases":                  # time each part where it runs (the same calls, wrapped)
        from activity.readers import flavell_h5
        from activity.store import StoreWriter
        from wormflow.core import repository
        def timed(owner, name, key):
            fn = getattr(owner, name)
            def wrapper(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    phases[key] = phases.get(key, 0.0) + time.perf_counter() - t
            setattr(owner, name, wrapper)
        for owner, name, key in [(ingest, "read_recordings", "read (labels included)"),
                                 (flavell_h5, "load_labels", "  of which JLD2 labels"),
                                 (ingest, "homogenize_worm", "homogenize"),
                                 (StoreWriter, "append", "append (compress, write chunks)"),
                                 (repository, "commit", "commit")]:
            timed(owner, name, key)
            phases[key] = 0.0                 # listed in this order
    t0 = time.perf_counter()
    rep = ingest.ingest_activity([arg + "/activity/Dag2023"], out)
    n = len(rep.added)
    assert not rep.failed, rep.failed
    print(json.dumps({"imports_s": imports_s}))
    if phases:
        print(json.dumps({"phases": phases}))
elif mode == "query":                    # a cold open of the store ``arg`` in a fresh process
    # imported first, as they would be at the first use: xarray's zarr backend imports
    # zarr, and dask's first compute imports distributed (to look for a client)
    import xarray, dask.array, zarr, distributed, icechunk
    from activity import open_activity
    def rchar():
        return int(next(l for l in open("/proc/self/io") if l.startswith("rchar")).split()[1])
    t_import = time.perf_counter() - t0
    r0 = rchar()
    t0 = time.perf_counter()
    ds = open_activity(arg)
    t_open = time.perf_counter() - t0
    values = ds.calcium.sel(neuron="AVAL").values
    n = values.shape[0]
    print(json.dumps({"imports": t_import, "open": t_open, "bytes_read": rchar() - r0}))
elif mode == "workers":                  # ``arg``'s Flavell files on a local cluster of ``out`` workers
    from pipeline.cluster import ClusterSpec, open_client
    import pipeline.ingest as ingest
    with tempfile_dir() as tmp, open_client(ClusterSpec(kind="local", workers=int(out))) as client:
        t0 = time.perf_counter()
        rep = ingest.ingest_activity([arg], tmp + "/s.zarr", client=client)
        n = len(rep.added)
        seconds = time.perf_counter() - t0
    print(json.dumps({"n": n, "seconds": seconds, "peak_mb": 0}))
    sys.exit(0)
elif mode in ("build", "append"):        # synthetic worms: ``arg`` of them into ``out`` / one more
    import numpy as np
    from activity.homogenize import HomogenizeParams, homogenize_worm
    from activity.raw import RawRecording
    from activity.store import StoreWriter
    from activity import open_activity
    rng = np.random.default_rng(int(arg))
    from wormflow.core.neurons import neuron_names
    names = [n for n in neuron_names() if n != "AVAL"]
    # like a Flavell worm: ~120 ROIs, 80 of them labelled (AVAL among them), the rest not
    labels = ["AVAL"] + [names[i] for i in rng.choice(len(names), 79, replace=False)] + [""] * 40
    params = HomogenizeParams()
    def worm(i):
        t = 1.2e6 + np.arange(FRAMES) * 0.6
        rec = RawRecording(f"s{i}.h5", f"s{i}", "Synthetic", "synthetic", t,
                           rng.normal(size=(FRAMES, len(labels))).astype(np.float32), labels,
                           signal="synthetic fixture", units="a.u.")
        return homogenize_worm(rec, params)
    start = 0
    try:
        start = open_activity(out).sizes["worm"]
    except Exception:
        pass
    count = int(arg) - start if mode == "build" else 1
    t0 = time.perf_counter()
    done = 0
    while done < count:                  # build: one commit per 500 worms
        batch = min(500, count - done) if mode == "build" else 1
        with StoreWriter(out, params, provenance={"last_ingest": {"inputs": []}}) as w:
            for i in range(start + done, start + done + batch):
                w.append(worm(i), f"{i:064x}", f"Synthetic/s{i}")
        done += batch
    n = count
seconds = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "seconds": seconds, "peak_mb": peak_mb}))
""" % SYNTHETIC_FRAMES


def run(mode: str, arg: str, out: str | None = None) -> dict:
    """One measurement in a fresh process; its store goes to ``out`` (default: a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = out or str(Path(tmp) / "store.zarr")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, mode, arg, out], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
        result = {}
        for line in proc.stdout.strip().splitlines():
            if line.startswith("{"):
                result.update(json.loads(line))
        return {**result, "wall_s": wall}


def copies_of_flavell(mirror: Path, dest: Path, copies: int) -> Path:
    """``copies`` copies of the mirror's Flavell recordings under ``dest`` (a Dag2023 folder
    with the labels file): copy k of a file is its bytes and k more, so that every copy has
    its own sha256 and is a worm of its own (HDF5 ignores bytes past its end of file)."""
    src = mirror / "activity" / "Dag2023"
    dest.mkdir(parents=True)
    (dest / "NeuroPAL_labels_dict.jld2").symlink_to(src / "NeuroPAL_labels_dict.jld2")
    for k in range(copies):
        for f in sorted(src.glob("*/*.h5")):
            target = dest / f"copy{k}" / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes() + b"\0" * k)
    return dest


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_mirror = os.environ.get("WORMFLOW_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--mirror", default=default_mirror)
    ap.add_argument("--scale", default="10,100,1000", help="store sizes for the append measurement (add 10000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=5, help="alternating runs of ours and worm-graph's")
    ap.add_argument("--copies", type=int, default=4, help="copies of the Flavell files for the parallel ingest")
    args = ap.parse_args()

    results = anchors.Results("ingest")
    floor = _median([run("floor", args.mirror) for _ in range(args.repeats)])
    f_worm = floor["seconds"] / floor["n"]
    ours, theirs = [], []
    try:
        anchors.run("worm-data-preprocess")              # set up and runnable? (a warm-up, not counted)
        ours, theirs = anchors.pairs(lambda: {**run("ingest", args.mirror), "cli": run("cli", args.mirror)},
                                     lambda: anchors.run("worm-data-preprocess"), n=args.pairs)
        why_not = ""
    except anchors.Unavailable as exc:
        why_not = str(exc)
        ours = [{**run("ingest", args.mirror), "cli": run("cli", args.mirror)} for _ in range(args.repeats)]
    o_worm = statistics.median(o["seconds"] / o["n"] for o in ours)
    print(f"Flavell worms in the mirror: {ours[0]['n']}")
    print(f"  bare h5py read (floor)      {f_worm:8.4f} s/worm   peak RSS {floor['peak_mb']:6.0f} MB")
    print(f"  wormflow ingest             {o_worm:8.4f} s/worm   = {o_worm / f_worm:.1f}x the floor")
    if why_not:
        print(f"  worm-graph: not run ({why_not}); no ratio")
    else:
        print(f"  against worm-graph's preprocessing on the same {theirs[0]['n_files']} files, {len(ours)} alternating "
              "pairs:")
        wg = "worm-graph preprocessing"
        print(results.ratio("Flavell ingest: time per worm", [o["seconds"] / o["n"] for o in ours],
                            [t["seconds"] / t["n_files"] for t in theirs], against=wg, goal="<= 0.05 (>= 20x)"))
        print(f"    (each side's imports before its clock: ours {statistics.median(o['imports_s'] for o in ours):.2f} s, "
              f"worm-graph's {statistics.median(t['imports_s'] for t in theirs):.2f} s; the whole process below counts "
              "them)")
        print(results.ratio("Flavell ingest: whole process wall time", [o["cli"]["wall_s"] for o in ours],
                            [t["wall_s"] for t in theirs], against=wg))
        print(results.ratio("Flavell ingest: peak RSS", [o["cli"]["peak_mb"] for o in ours],
                            [t["peak_mb"] for t in theirs], against=wg, unit="MB", goal="<= 0.25"))
        results.save()
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
    with tempfile.TemporaryDirectory() as tmp:
        tree = copies_of_flavell(Path(args.mirror), Path(tmp) / "Dag2023", args.copies)
        one, two = [], []
        for _ in range(args.repeats):                  # 1 and 2 workers alternating
            one.append(run("workers", str(tree), "1"))
            two.append(run("workers", str(tree), "2"))
    r = sorted(a["seconds"] / b["seconds"] for a, b in zip(one, two))
    print(f"parallel ingest of {one[0]['n']} Flavell files ({args.copies} copies of the mirror's 7; local cluster "
          f"started before the clock), {len(r)} alternating runs: 1 worker {_median(one)['seconds']:.2f} s, "
          f"2 workers {_median(two)['seconds']:.2f} s; speed-up {r[0]:.2f}-{statistics.median(r):.2f}-{r[-1]:.2f}x "
          "(min-median-max; goal >= 1.6x)")
    sizes = [int(x) for x in args.scale.split(",") if x]
    print(f"store scale: appending one synthetic worm ({SYNTHETIC_FRAMES} frames) to a store of N worms, "
          "fresh process each:")
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "scale.zarr")
        first = None
        for n in sizes:
            run("build", str(n), store)
            # the build's writes reach the disk before the clock: at 10,000 worms they are
            # 22 GB, and an append timed while the kernel writes them back waits behind them
            os.sync()
            r = _median([run("append", str(n + 1000 * k), store) for k in range(args.repeats)])
            first = first or r
            print(f"  N = {n:6d}: {r['seconds']:7.3f} s, peak RSS {r['peak_mb']:6.0f} MB "
                  f"({r['seconds'] / first['seconds']:4.2f}x and {r['peak_mb'] / first['peak_mb']:4.2f}x the first)")
            if n == 1000:
                size = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
                query = run("query", store)
                print(f"  cold open_activity(store).calcium.sel(neuron='AVAL').values over {query['n']} worms: "
                      f"{query['seconds']:.3f} s ({query['open']:.3f} opening, after {query['imports']:.2f} s of "
                      f"imports); read {query['bytes_read'] / 1e6:.1f} MB of the store's {size / 1e6:.0f} MB = "
                      f"{100 * query['bytes_read'] / size:.1f}% (goal: under 1 s and 5%)")


if __name__ == "__main__":
    main()
