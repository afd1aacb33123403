"""Benchmark: time series to networks.

1. Per series of 1k / 10k / 100k points (iid noise): wormflow's visibility graph + metrics
   (networkx graph and graph_metrics; and the store path, trace_metrics) against the floor,
   bare ts2vg computing degrees only, and against pyunicorn's VisibilityGraph with the same
   metrics where pyunicorn is installed (skipped beyond 10k points: it holds an n x n matrix).
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
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import numpy as np  # noqa: E402

from analysis import tsnet  # noqa: E402


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ts2vg_floor(x, kind):
    from ts2vg import HorizontalVG, NaturalVG

    (NaturalVG if kind == "natural" else HorizontalVG)().build(x, only_degrees=True)


def ours_networkx(x, kind):
    tsnet.graph_metrics(tsnet.visibility_graph(x, kind))


def ours_store_path(x, kind):
    tsnet.trace_metrics(x, kind)


def pyunicorn_same(x, kind):
    from pyunicorn.timeseries import VisibilityGraph

    g = VisibilityGraph(x, horizontal=kind == "horizontal", silence_level=3)
    g.degree(), g.global_clustering(), g.transitivity(), g.average_path_length(), g.diameter(), g.assortativity()


def per_series():
    have_pyunicorn = importlib.util.find_spec("pyunicorn") is not None
    print("per series (iid noise), best of 3 (1 for 100k):")
    print(f"{'kind':<11}{'n':>8}{'ours nx s':>11}{'ours store s':>14}{'ts2vg deg s':>13}"
          f"{'nx/floor':>10}{'store/floor':>12}{'pyunicorn s':>17}{'pyunicorn/ours':>16}")
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 100_000):
        x = rng.normal(size=n)
        repeat = 1 if n >= 100_000 else 3
        for kind in ("horizontal", "natural"):
            floor = best_of(lambda: ts2vg_floor(x, kind), repeat)
            nx_t = best_of(lambda: ours_networkx(x, kind), repeat)
            store_t = best_of(lambda: ours_store_path(x, kind), repeat)
            if have_pyunicorn and n <= 10_000:
                pu = best_of(lambda: pyunicorn_same(x, kind), 1)
                pu_s, ratio = f"{pu:.3f}", f"{pu / store_t:.1f}x"
            else:
                pu_s, ratio = ("n x n, skipped", "") if have_pyunicorn else ("not installed", "")
            print(f"{kind:<11}{n:>8}{nx_t:>11.3f}{store_t:>14.3f}{floor:>13.4f}{nx_t / floor:>10.0f}"
                  f"{store_t / floor:>12.0f}{pu_s:>17}{ratio:>16}")


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
    per_series()
    chaos_against_noise()
    store_throughput()
