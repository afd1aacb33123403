"""Benchmark: the NTF engine (non-negative CP by HALS) against tensorly, and the memory floor.

On a synthetic non-negative (11000 pairs x 400 time points x 7 worms) float32 tensor at
rank 10, the issue's reference size, ours and tensorly's in-memory
`non_negative_parafac_hals` (the named baseline, `pip install tensorly`) alternate
(``--pairs``, default 5), and it prints, with each pair's ratio as min-median-max:
- seconds per sweep (setup excluded: the time of 11 sweeps minus that of 1, over 10);
- the relative reconstruction error of both after the same 11 sweeps from a random
  start, each recomputed here from the factors returned, by the same formula;
- the floor: our sweep reads the tensor twice, so twice the time of one full read
  (`x.sum()`), measured in the same run.
Then the same comparison on a small tensor (300 x 50 x 5, rank 4), where the early sweeps
matter, with our default inner HALS passes (10) and with 5.

Then, on the mirror's Flavell worms (their labelled calcium, 5 s bins), the differential
affinity tensor of `analysis.affinity.affinity_tensor`:
- build time and peak traced memory of the lazy, one-worm-per-task build, against the
  tensor's own size;
- seconds per sweep of `nonneg_cp_hals` with the missing (pair, worm) entries masked,
  against tensorly's `non_negative_parafac_hals` on the same tensor with the missing
  entries filled by the observed mean (it has no mask), and the three-read floor (two
  product reads plus the imputation pass).

Last, the real worms beside their nulls: error per rank on the data and on the tensor of
circularly shifted traces, the chosen rank, and each component's SBM blocks beside those
of its degree-preserving null.

Run: .venv/bin/python bench/ntf.py   (WORMFLOW_MIRROR picks the mirror; `make demo` builds out/activity.zarr)
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import anchors  # noqa: E402

import numpy as np  # noqa: E402

from analysis.ntf import nonneg_cp_hals  # noqa: E402

SHAPE, RANK = (11000, 400, 7), 10
FLAVELL_RANK = 3


def per_sweep(fn) -> float:
    t0 = time.perf_counter()
    fn(1)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn(11)
    return (time.perf_counter() - t0 - one) / 10, out


def read_seconds(arr, repeats: int = 5) -> float:
    """One full read of ``arr`` (a sum), the memory-bandwidth floor's unit."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        arr.sum()
    return (time.perf_counter() - t0) / repeats


def _error(x, factors) -> float:
    from analysis.ntf.engine import relative_error

    a, b, c = (np.asarray(f, dtype=np.float64) for f in factors)
    return relative_error(x, a, b, c)


def compare(x, rank: int, pairs: int, label: str, results, inner_options=(10,)) -> None:
    """Ours and tensorly's HALS alternating on ``x``: s/sweep and error after 11 sweeps."""
    read = read_seconds(x)
    have_tensorly = importlib.util.find_spec("tensorly") is not None
    print(f"{label}: tensor {x.shape} float32 ({x.nbytes / 1e6:.1f} MB), rank {rank}")
    print(f"  floor (2 reads of the tensor)    {2 * read:8.4f} s/sweep")
    if not have_tensorly:
        print("  tensorly: not installed (pip install tensorly) - no baseline ratio")
    if have_tensorly:
        import tensorly as tl
        from tensorly.decomposition import non_negative_parafac_hals

        def theirs(n):
            cp = non_negative_parafac_hals(tl.tensor(x), rank=rank, n_iter_max=n, tol=0, init="random", random_state=0)
            return cp.factors
    for inner in inner_options:
        ours_t, theirs_t, ours_e, theirs_e = [], [], [], []
        for _ in range(pairs if have_tensorly else 1):
            t, res = per_sweep(lambda n: nonneg_cp_hals(x, rank, n_iter=n, tol=0, dtype=np.float32, inner=inner))
            ours_t.append(t)
            ours_e.append(_error(x, res.factors))
            if have_tensorly:
                t, factors = per_sweep(theirs)
                theirs_t.append(t)
                theirs_e.append(_error(x, factors))
        tag = f"wormflow (inner {inner})"
        print(f"  {tag:32s} {np.median(ours_t):8.4f} s/sweep = {np.median(ours_t) / (2 * read):5.1f}x the floor, "
              f"error after 11 sweeps {np.median(ours_e):.4f}")
        if have_tensorly:
            print(f"  {'tensorly':32s} {np.median(theirs_t):8.4f} s/sweep, error after 11 sweeps {np.median(theirs_e):.4f}")
            print(results.ratio(f"NTF {label}: time per sweep (inner {inner})", ours_t, theirs_t,
                                against="tensorly non_negative_parafac_hals", goal="<= 0.2" if label != "small" else ""))
            print(results.ratio(f"NTF {label}: error after 11 sweeps (inner {inner})", ours_e, theirs_e,
                                against="tensorly non_negative_parafac_hals", unit="", goal="<= 1"))


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5, help="alternating runs of ours and tensorly's")
    args = ap.parse_args()
    results = anchors.Results("ntf")
    rng = np.random.default_rng(0)
    for shape, rank, label, inner in ((SHAPE, RANK, "reference size", (10,)), ((300, 50, 5), 4, "small", (10, 5))):
        truth = [rng.gamma(1.0, 1.0, (n, rank)).astype(np.float32) for n in shape]
        x = np.einsum("ir,jr,kr->ijk", *truth).astype(np.float32)
        x += 0.05 * x.std() * np.abs(rng.normal(size=x.shape)).astype(np.float32)
        compare(x, rank, args.pairs, label, results, inner)
    results.save()


def flavell() -> None:
    import os
    import tracemalloc

    from activity.store import open_activity
    from analysis.ntf import affinity_tensor

    store = Path(os.environ.get("WORMFLOW_STORE", HERE.parent / "out" / "activity.zarr"))
    if not store.exists():
        print(f"\nFlavell tensor: no activity store at {store} (run `make demo`, or set WORMFLOW_STORE)")
        return
    ds = open_activity(store)
    ds = ds.isel(worm=[i for i, d in enumerate(ds.dataset.values) if str(d) == "Dag2023"])
    tracemalloc.start()
    t0 = time.perf_counter()
    lazy = affinity_tensor(ds, min_worms=2, bin_size=10)
    x = lazy.values
    build = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    observed = np.isfinite(x)
    slab = x[..., 0].nbytes
    print(f"\nFlavell affinity tensor {x.shape} float32 ({x.nbytes / 1e6:.1f} MB, {observed.mean():.0%} observed), "
          f"rank {FLAVELL_RANK}")
    print(f"  build (lazy, one worm per task)  {build:8.2f} s, peak traced memory {peak / 1e6:.1f} MB "
          f"= tensor + {(peak - x.nbytes) / slab:.1f} worm slabs")
    filled = np.where(observed, x, np.nanmean(x)).astype(np.float32)
    read = read_seconds(filled)
    ours, res = per_sweep(lambda n: nonneg_cp_hals(x, FLAVELL_RANK, n_iter=n, tol=0, dtype=np.float32))
    print(f"  floor (3 reads of the tensor)    {3 * read:8.4f} s/sweep")
    print(f"  wormflow nonneg_cp_hals (masked) {ours:8.4f} s/sweep   = {ours / (3 * read):5.1f}x the floor, "
          f"observed-entry error {res.errors[-1]:.4f}")
    if importlib.util.find_spec("tensorly") is None:
        return
    import tensorly as tl
    from tensorly.decomposition import non_negative_parafac_hals

    tly, cp = per_sweep(lambda n: non_negative_parafac_hals(tl.tensor(filled), rank=FLAVELL_RANK, n_iter_max=n,
                                                            tol=0, init="random", random_state=0))
    rec = tl.cp_to_tensor(cp)
    err = float(np.sqrt(((x - rec)[observed] ** 2).sum() / (x[observed] ** 2).sum()))
    print(f"  tensorly (mean-filled)           {tly:8.4f} s/sweep, observed-entry error {err:.4f}")
    print(f"  speed-up vs tensorly             {tly / ours:8.1f}x")


def flavell_against_nulls(store: Path | None = None) -> None:
    """The real worms beside their nulls: NTF error per rank on the data and on the tensor
    of circularly shifted traces (same pipeline), and each component's SBM blocks beside
    those of its degree-preserving null."""
    import os

    from activity.store import open_activity
    from analysis import ntf

    store = store or Path(os.environ.get("WORMFLOW_STORE", HERE.parent / "out" / "activity.zarr"))
    if not store.exists():
        return
    ds = open_activity(store)
    ds = ds.isel(worm=[i for i, d in enumerate(ds.dataset.values) if str(d) == "Dag2023"])
    opts = dict(min_worms=2, bin_size=10)
    x = ntf.affinity_tensor(ds, **opts).compute()
    null = ntf.affinity_tensor(ntf.circular_shift_null(ds, seed=0), **opts).compute()
    sel = ntf.select_rank(x, range(1, 7), n_restarts=3, null=null)
    print("\nFlavell worms against the circular-shift null (3 restarts per rank):")
    print(f"  {'rank':>4} {'error':>8} {'null':>8} {'gain':>8} {'null gain':>10} {'stability':>10}")
    prev = prev_null = None
    for r, e, n, st in zip(sel["rank"].values, sel.error.values, sel.null_error.values, sel.stability.values):
        gain = "" if prev is None else f"{prev - e:8.4f}"
        ngain = "" if prev_null is None else f"{prev_null - n:10.4f}"
        print(f"  {r:>4} {e:8.4f} {n:8.4f} {gain:>8} {ngain:>10} {st:10.2f}")
        prev, prev_null = e, n
    rank = int(sel.attrs["chosen_rank"])
    res = ntf.fit(x, rank, n_restarts=3)
    print(f"  chosen rank {rank} ({sel.attrs['rank_rule']}); error {res.attrs['error']:.4f}, "
          f"null {sel.null_error.sel(rank=rank).item():.4f}")
    print("  SBM blocks per component: " + ", ".join(str(int(v)) for v in res.n_blocks.values)
          + "; on its degree-preserving null: " + ", ".join(str(int(v)) for v in res.n_blocks_null.values))


if __name__ == "__main__":
    main()
    flavell()
    flavell_against_nulls()
