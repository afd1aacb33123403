"""Benchmark: time series to networks.

1. Per series of 1k / 10k / 100k points (iid noise), ours and the baselines alternating
   (``--pairs``, default 5; 1 at 100k), each pair's ratio as min-median-max: wormflow's
   store path (`trace_metrics`: the graph and every metric) against the floor, bare ts2vg
   computing degrees only, and against pyunicorn's VisibilityGraph computing the same
   metrics where pyunicorn is installed (skipped beyond 10k points: it holds an n x n
   matrix). Each graph's edge set is compared: ours, ts2vg's and pyunicorn's must be equal.
2. Whole-store throughput (traces per second) of `analyze tsnet` on every ROI of the mirror,
   on 1 and 2 Dask workers.
3. Against nulls: the HVG rate of the chaotic logistic map and of iid noise (fitted on the
   tail by the KS rule, and over k >= 3 as before), and on the mirror's traces the rate beside
   that of each trace's phase-randomized surrogate.

Run: WORMFLOW_MIRROR=../shared/data .venv/bin/python bench/tsnet.py
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from analysis import tsnet  # noqa: E402


def ts2vg_floor(x, kind):
    from ts2vg import HorizontalVG, NaturalVG

    (NaturalVG if kind == "natural" else HorizontalVG)().build(x, only_degrees=True)


def ours_store_path(x, kind):
    tsnet.trace_metrics(x, kind)


def pyunicorn_same(x, kind):
    from pyunicorn.timeseries import VisibilityGraph

    g = VisibilityGraph(x, horizontal=kind == "horizontal", silence_level=3)
    g.degree(), g.global_clustering(), g.transitivity(), g.average_path_length(), g.diameter(), g.assortativity()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def edges_ours(x, kind) -> set:
    return {tuple(sorted(e)) for e in tsnet.visibility_graph(x, kind).edges()}


def edges_ts2vg(x, kind) -> set:
    from ts2vg import HorizontalVG, NaturalVG

    g = (NaturalVG if kind == "natural" else HorizontalVG)()
    g.build(x)
    return {tuple(sorted(e[:2])) for e in g.edges}


def edges_pyunicorn(x, kind) -> set:
    from pyunicorn.timeseries import VisibilityGraph

    a = VisibilityGraph(x, horizontal=kind == "horizontal", silence_level=3).adjacency
    i, j = np.nonzero(np.triu(a, 1))
    return set(zip(i.tolist(), j.tolist()))


def per_series(pairs: int = 5):
    import anchors

    results = anchors.Results("tsnet")
    have_pyunicorn = importlib.util.find_spec("pyunicorn") is not None
    if not have_pyunicorn:
        print("pyunicorn: not installed (pip install pyunicorn) - no ratio against it")
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 100_000):
        x = rng.normal(size=n)
        n_pairs = 1 if n >= 100_000 else pairs
        for kind in ("horizontal", "natural"):
            same = edges_ours(x, kind) == edges_ts2vg(x, kind)
            line = f"{kind} VG, n = {n}: edges equal to ts2vg's: {same}"
            use_pu = have_pyunicorn and n <= 10_000
            if use_pu:
                line += f", to pyunicorn's: {edges_ours(x, kind) == edges_pyunicorn(x, kind)}"
            print(line)
            ours, floor, pu = [], [], []
            for _ in range(n_pairs):
                ours.append(timed(lambda: ours_store_path(x, kind)))
                floor.append(timed(lambda: ts2vg_floor(x, kind)))
                if use_pu:
                    pu.append(timed(lambda: pyunicorn_same(x, kind)))
            print(results.ratio(f"{kind} VG n={n}: graph + metrics", ours, floor, against="ts2vg degrees only (floor)"))
            if use_pu:
                print(results.ratio(f"{kind} VG n={n}: graph + metrics", ours, pu,
                                    against="pyunicorn VisibilityGraph, same metrics", goal="< 1"))
    results.save()


def store_throughput():
    from pipeline.tsnet import tsnet_on_store
    from pipeline.ingest import ingest_activity

    mirror = Path(os.environ.get("WORMFLOW_MIRROR", ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "a.zarr"
        ingest_activity([mirror / "activity" / "Dag2023", mirror / "activity" / "Scholz2018"], store)
        print("\nwhole store (every ROI of the mirror, horizontal + natural VGs):")
        rates = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            res = tsnet_on_store(store, Path(tmp) / f"out{workers}", variable="roi_calcium",
                                 workers=workers, progress=False)
            dt = time.perf_counter() - t0
            traces = int(np.isfinite(res["horizontal"].sel(metric="n_nodes")).sum())
            rates[workers] = traces / dt
            print(f"  {workers} worker(s): {traces} traces in {dt:.1f} s = {rates[workers]:.1f} traces/s"
                  " (cluster start and output write included)")
        print(f"  speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x on {os.cpu_count()} CPUs")
        h = res["horizontal"]
        own, sur = h.sel(metric="hvg_lambda").values.ravel(), h.sel(metric="hvg_lambda_null").values.ravel()
        both = np.isfinite(own) & np.isfinite(sur)
        print(f"  HVG lambda of {both.sum()} ROI traces: median {np.median(own[both]):.3f}; phase-randomized "
              f"surrogates {np.median(sur[both]):.3f}; trace below its surrogate in {(own[both] < sur[both]).mean():.0%}")


def chaos_against_noise(n=3000, repeats=5):
    rng = np.random.default_rng(0)
    print(f"\nHVG rate, {repeats} series of {n} points each (iid value ln 3/2 = 0.405):")
    for name, make in (("logistic map r=4", lambda: _logistic(n, rng.uniform(0.05, 0.95))),
                       ("iid uniform noise", lambda: rng.random(n))):
        tail, fixed, kmin = [], [], []
        for _ in range(repeats):
            x = make()
            k = np.array([d for _, d in tsnet.visibility_graph(x, "horizontal").degree()])
            lam, k_min = tsnet.fit_tail(k, "geometric", k_floor=3)
            tail.append(lam)
            kmin.append(k_min)
            fixed.append(tsnet.hvg_exponent(x, k_min=3))
        print(f"  {name:<18} tail fit {np.mean(tail):.3f} +- {np.std(tail):.3f} (k_min {min(kmin)}-{max(kmin)});"
              f" k >= 3: {np.mean(fixed):.3f}")


def _logistic(n, x0):
    x = np.empty(n)
    x[0] = x0
    for i in range(1, n):
        x[i] = 4 * x[i - 1] * (1 - x[i - 1])
    return x


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5)
    per_series(ap.parse_args().pairs)
    chaos_against_noise()
    store_throughput()
