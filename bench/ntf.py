"""Benchmark: the NTF engine (non-negative CP by HALS) against tensorly, and the memory floor.

On a synthetic non-negative (11000 pairs x 400 time points x 7 worms) float32 tensor at
rank 10, the issue's reference size, it prints:
- seconds per sweep of `analysis.ntf.nonneg_cp_hals` (setup excluded: the time of 11
  sweeps minus that of 1, over 10);
- the same for tensorly's in-memory `non_negative_parafac_hals` (the named baseline), if
  tensorly is installed (`pip install tensorly`), and the ratio;
- the floor: our sweep reads the tensor twice, so twice the time of one full read
  (`x.sum()`), measured here;
- the relative reconstruction error of both after the same 10 sweeps from the same kind
  of random start.

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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

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


def main() -> None:
    rng = np.random.default_rng(0)
    truth = [rng.gamma(1.0, 1.0, (n, RANK)).astype(np.float32) for n in SHAPE]
    x = np.einsum("ir,jr,kr->ijk", *truth).astype(np.float32)
    x += 0.05 * x.std() * np.abs(rng.normal(size=x.shape)).astype(np.float32)
    norm = float(np.linalg.norm(x.ravel()))
    read = read_seconds(x)
    ours, res = per_sweep(lambda n: nonneg_cp_hals(x, RANK, n_iter=n, tol=0, dtype=np.float32))
    print(f"tensor {SHAPE} float32 ({x.nbytes / 1e6:.0f} MB), rank {RANK}")
    print(f"  floor (2 reads of the tensor)    {2 * read:8.4f} s/sweep")
    print(f"  wormflow nonneg_cp_hals          {ours:8.4f} s/sweep   = {ours / (2 * read):5.1f}x the floor, "
          f"error after 11 sweeps {res.errors[-1]:.4f}")
    if importlib.util.find_spec("tensorly") is None:
        print("  tensorly: not installed (pip install tensorly) - no baseline ratio")
        return
    import tensorly as tl
    from tensorly.decomposition import non_negative_parafac_hals

    def theirs(n):
        return non_negative_parafac_hals(tl.tensor(x), rank=RANK, n_iter_max=n, tol=0, init="random",
                                         random_state=0)
    tly, cp = per_sweep(theirs)
    err = float(np.linalg.norm((x - tl.cp_to_tensor(cp)).ravel())) / norm
    print(f"  tensorly non_negative_parafac_hals {tly:6.4f} s/sweep, error after 11 sweeps {err:.4f}")
    print(f"  speed-up vs tensorly             {tly / ours:8.1f}x   (goal >= 5x)")


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
