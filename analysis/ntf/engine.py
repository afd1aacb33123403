"""Non-negative tensor factorization (CP / PARAFAC) by HALS, with missing entries.

This is the factorization engine of the dynamic functional connectome analysis (issue 9):
a three-way tensor X (e.g. neuron pair x time x worm) is approximated by R non-negative
components, X[i, j, k] ~ sum_r A[i, r] B[j, r] C[k, r].

Updates are hierarchical alternating least squares (Cichocki & Phan 2009): one column of
one factor at a time, in closed form, clipped at a small positive floor. Each mode needs
one MTTKRP (the tensor times the Khatri-Rao product of the other two factors), computed as
a matrix product over the last axis followed by a contraction, so the tensor is read in
large contiguous blocks and no Khatri-Rao matrix is ever formed.

Missing entries (``mask`` False) are handled by expectation-maximization: before each
sweep they are replaced by the current reconstruction, so they never act as zeros.

Arrays go through a small operations shim so that a torch backend (GPU) can be added
without changing the algorithm; only numpy is available now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.ntf.affinity import affinity_tensor
from analysis.ntf.communities import leiden, weighted_sbm

EPS = 1e-12


@dataclass
class NTFResult:
    factors: list            # [A (I x R), B (J x R), C (K x R)], numpy arrays
    errors: list[float] = field(default_factory=list)   # relative error on observed entries, per sweep
    n_iter: int = 0
    converged: bool = False

    def reconstruct(self) -> np.ndarray:
        a, b, c = self.factors
        return np.einsum("ir,jr,kr->ijk", a, b, c)


class _Ops:
    """The array operations HALS needs, kept in one place so that another array library
    (torch, for GPUs) can stand in for numpy later without touching the algorithm."""

    def __init__(self, backend: str):
        if backend != "numpy":
            raise ValueError(f"backend must be 'numpy' (a torch backend is not available yet), got {backend!r}")

    @staticmethod
    def asarray(x):
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def clip(x, lo):
        return np.maximum(x, lo)


def _init(shape, rank: int, init: str, seed: int, x: np.ndarray, observed, mean: float, ops: _Ops):
    rng = np.random.default_rng(seed)
    if init == "random":
        scale = (max(mean, EPS) / rank) ** (1 / 3)
        return [ops.asarray(rng.uniform(0.1, 1.0, (n, rank)) * scale) for n in shape]
    if init == "svd":         # non-negative parts of the leading singular vectors of each unfolding
        out = []
        filled = x if observed is None else np.where(observed, x, 0.0)
        for mode, n in enumerate(shape):
            unfolded = np.moveaxis(filled, mode, 0).reshape(n, -1)
            u, s, _ = np.linalg.svd(unfolded, full_matrices=False)
            f = np.abs(u[:, :rank]) * np.sqrt(s[:rank])
            if f.shape[1] < rank:
                f = np.hstack([f, rng.uniform(0.1, 1.0, (n, rank - f.shape[1]))])
            out.append(ops.asarray(np.maximum(f, 1e-3)))
        return out
    raise ValueError(f"init must be 'random' or 'svd', got {init!r}")


def _hals_columns(f, m, gram, rank: int, ops: _Ops, inner: int = 1):
    """``inner`` HALS passes over the columns of factor ``f`` given its MTTKRP ``m`` and Gram
    ``gram`` (repeated passes solve the factor's non-negative least squares more exactly at
    no extra read of the tensor)."""
    for _ in range(inner):
        for r in range(rank):
            step = (m[:, r] - f @ gram[:, r]) / max(float(gram[r, r]), EPS)
            f[:, r] = ops.clip(f[:, r] + step, EPS)
    return f


def _impute(xt, observed, a, kr, block: int = 2048) -> float:
    """In row blocks of the mode-1 unfolding: returns the squared error of the
    reconstruction a kr^T on observed entries, and writes the reconstruction into the
    missing entries of ``xt`` (in place)."""
    i_ = xt.shape[0]
    flat = xt.reshape(i_, -1)
    seen = observed.reshape(i_, -1)
    err2 = 0.0
    for lo in range(0, i_, block):
        recon = a[lo:lo + block] @ kr.T
        part, ok = flat[lo:lo + block], seen[lo:lo + block]
        err2 += float(np.square(np.where(ok, part - recon, 0.0), dtype=np.float64).sum())
        np.copyto(part, recon, where=~ok)
    return err2


def nonneg_cp_hals(x, rank: int, *, mask=None, n_iter: int = 200, tol: float = 1e-7, init: str = "random",
                   seed: int = 0, dtype=np.float64, inner: int = 10, backend: str = "numpy") -> NTFResult:
    """Non-negative CP decomposition of a 3-way array ``x`` at ``rank`` by HALS.

    ``mask`` (same shape, True = observed) or NaNs in ``x`` mark missing entries. Stops
    after ``n_iter`` sweeps or when the relative error on observed entries changes by less
    than ``tol``; ``inner`` HALS passes refine each factor per sweep. Factors are returned as numpy arrays, columns of A and B scaled to unit
    norm with the scale moved into C.

    Each sweep reads the tensor twice, both times as one matrix product: the mode-1
    unfolding times the Khatri-Rao product of B and C gives A's MTTKRP, and its transpose
    times the new A gives a (J, K, R) array from which both B's and C's MTTKRPs follow
    (A does not change between them). On a complete tensor the error comes from the Gram
    matrices and the last MTTKRP, without forming the reconstruction. With missing entries
    one more blocked pass per sweep forms the reconstruction, scores it on the observed
    entries and writes it into the missing ones (EM imputation).
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"nonneg_cp_hals needs a 3-way array, got shape {x.shape}")
    if rank < 1:
        raise ValueError("rank must be at least 1")
    observed = np.isfinite(x) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(x))
    complete = bool(observed.all())
    if not complete and not observed.any():
        raise ValueError("every entry is missing")
    values = x if complete else x[observed]
    if values.min() < 0:
        raise ValueError("the tensor has negative entries; NTF needs non-negative data")
    ops = _Ops(backend)
    mean = float(values.mean(dtype=np.float64))
    norm_obs2 = float(np.linalg.norm(values.ravel())) ** 2
    factors = [f.astype(dtype) for f in _init(x.shape, rank, init, seed, x, None if complete else observed, mean, ops)]
    has_missing = not complete
    # match the initial reconstruction's scale to the data on observed entries
    gram0 = np.ones((rank, rank))
    for f in factors:
        gram0 = gram0 * (f.T @ f)
    ratio = np.sqrt(norm_obs2 / float(observed.mean()) / max(gram0.sum(), EPS))
    factors = [f * np.asarray(ratio ** (1 / 3), dtype=dtype) for f in factors]
    a, b, c = factors
    i_, j_, k_ = x.shape
    # missing entries start at the observed mean; each sweep then re-imputes them
    xt = x.astype(dtype, copy=False) if complete else np.where(observed, x, mean).astype(dtype, copy=False)
    result = NTFResult(factors=[])
    for it in range(n_iter + (1 if has_missing else 0)):
        kr = (b[:, None, :] * c[None, :, :]).reshape(j_ * k_, rank)       # Khatri-Rao of B and C
        if has_missing:
            # one blocked pass: the error of the current factors on observed entries, and
            # the missing entries replaced by the current reconstruction
            err = np.sqrt(_impute(xt, observed, a, kr) / max(norm_obs2, EPS))
            if it > 0:
                result.errors.append(err)
                if it > 1 and abs(result.errors[-2] - err) < tol:
                    result.converged = True
                    break
            if it == n_iter:
                break
            result.n_iter = it + 1
        unfolded = xt.reshape(i_, j_ * k_)
        a = _hals_columns(a, unfolded @ kr, (b.T @ b) * (c.T @ c), rank, ops, inner)   # pass 1
        u = (unfolded.T @ a).reshape(j_, k_, rank)                                     # pass 2: X x_1 A
        b = _hals_columns(b, np.einsum("jkr,kr->jr", u, c), (a.T @ a) * (c.T @ c), rank, ops, inner)
        m_c = np.einsum("jkr,jr->kr", u, b)
        c = _hals_columns(c, m_c, (a.T @ a) * (b.T @ b), rank, ops, inner)
        if has_missing:
            continue
        # ||X - Xhat||^2 = ||X||^2 - 2 <X, Xhat> + ||Xhat||^2 from Gram matrices alone
        cross = float((m_c.astype(np.float64) * c).sum())
        recon2 = float(((a.T @ a) * (b.T @ b) * (c.T @ c)).astype(np.float64).sum())
        err = np.sqrt(max(norm_obs2 - 2 * cross + recon2, 0.0) / max(norm_obs2, EPS))
        result.errors.append(err)
        result.n_iter = it + 1
        if it > 0 and abs(result.errors[-2] - err) < tol:
            result.converged = True
            break
    a, b, c = (np.asarray(f, dtype=np.float64) for f in (a, b, c))
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    result.factors = [a / np.maximum(na, EPS), b / np.maximum(nb, EPS), c * na * nb]
    return result


def match_components(true, found) -> tuple[np.ndarray, np.ndarray]:
    """(permutation, correlations): the best one-to-one pairing of ``found`` columns to ``true``
    columns by correlation (Hungarian assignment), and each pair's correlation."""
    from scipy.optimize import linear_sum_assignment

    t = (true - true.mean(0)) / np.maximum(true.std(0), EPS)
    f = (found - found.mean(0)) / np.maximum(found.std(0), EPS)
    corr = t.T @ f / true.shape[0]
    rows, cols = linear_sum_assignment(-corr)
    return cols, corr[rows, cols]


# ---------------------------------------------------------------- the dynamic functional connectome


def _tensor(activity, tensor_options):
    """(numpy tensor, its DataArray) from an activity-store Dataset (built lazily, then
    filled one worm slab at a time) or an affinity DataArray (pair, time, worm)."""
    import dask.array as dsa

    tensor = activity if getattr(activity, "dims", None) == ("pair", "time", "worm") else \
        affinity_tensor(activity, **tensor_options)
    data = tensor.data
    out = np.empty(tensor.shape, dtype=tensor.dtype)
    if isinstance(data, dsa.Array):
        dsa.store(data, out, lock=False)
    else:
        out[...] = data
    return out, tensor


def _restarts(x, rank, n_restarts, seed, n_iter, tol):
    fits = [nonneg_cp_hals(x, rank, n_iter=n_iter, tol=tol, seed=seed + r, dtype=np.float32)
            for r in range(max(n_restarts, 1))]
    best = min(fits, key=lambda f: f.errors[-1])
    others = [f for f in fits if f is not best]
    # stability: how well the other restarts' pair factors match the best one's, component by component
    stability = float(np.mean([match_components(best.factors[0], f.factors[0])[1].mean() for f in others])) \
        if others else float("nan")
    return best, fits, stability


def select_rank(activity, ranks=range(1, 9), *, n_restarts: int = 4, seed: int = 0, n_iter: int = 300,
                tol: float = 1e-6, min_stability: float = 0.9, **tensor_options):
    """Reconstruction error and factor stability across ``n_restarts`` random restarts for
    each rank. The chosen rank (attribute ``chosen_rank``) is the largest whose pair factors
    are reproduced with mean correlation >= ``min_stability``, or, when none is, the most
    stable one. Returns an xarray Dataset
    over ``rank`` (error: best relative error on observed entries; error_spread: max-min
    over restarts; stability)."""
    import xarray as xr

    x, _ = _tensor(activity, tensor_options)
    ranks = list(ranks)
    err, spread, stab = [], [], []
    for r in ranks:
        best, fits, stability = _restarts(x, r, n_restarts, seed, n_iter, tol)
        finals = [f.errors[-1] for f in fits]
        err.append(best.errors[-1])
        spread.append(max(finals) - min(finals))
        stab.append(1.0 if r == 1 and np.isnan(stability) else stability)
    stable = [r for r, s in zip(ranks, stab) if s >= min_stability]
    chosen = max(stable) if stable else ranks[int(np.nanargmax(stab))]
    return xr.Dataset({"error": ("rank", err), "error_spread": ("rank", spread), "stability": ("rank", stab)},
                      coords={"rank": ranks},
                      attrs={"chosen_rank": chosen, "min_stability": min_stability,
                             "n_restarts": n_restarts})


def pair_matrix(loading, neuron_a, neuron_b, neurons):
    """A pair loading (pairs,) as a symmetric neuron x neuron matrix: 0 on the diagonal,
    NaN for pairs not in the tensor (never observed together in enough worms)."""
    index = {n: k for k, n in enumerate(neurons)}
    m = np.full((len(neurons), len(neurons)), np.nan)
    np.fill_diagonal(m, 0.0)
    ia = np.array([index[n] for n in neuron_a])
    ib = np.array([index[n] for n in neuron_b])
    m[ia, ib] = loading
    m[ib, ia] = loading
    return m


def fit(activity, rank: int, *, n_restarts: int = 4, seed: int = 0, n_iter: int = 500, tol: float = 1e-6,
        communities: bool = True, max_blocks: int = 8, **tensor_options):
    """The dynamic functional connectome of an activity-store Dataset (or of an affinity
    DataArray (pair, time, worm)) at ``rank``.

    Builds the differential-affinity tensor (``tensor_options``: variable, neurons,
    min_worms, bin_size, smooth_s, saturation; see analysis.ntf.affinity), fits a
    non-negative CP decomposition with ``n_restarts`` random starts (the lowest error
    kept), and finds each component's communities in its pair loading, read as a
    weighted neuron graph: the Gaussian weighted SBM (blocks by ICL) and Leiden.
    Components are ordered by weight; time and worm loadings are scaled to a maximum
    of 1, the scale going to the pair loading. Returns an xarray Dataset."""
    import xarray as xr

    x, tensor = _tensor(activity, tensor_options)
    best, fits, stability = _restarts(x, rank, n_restarts, seed, n_iter, tol)
    a, b, c = best.factors
    sb, sc = np.maximum(b.max(0), EPS), np.maximum(c.max(0), EPS)
    a, b, c = a * sb * sc, b / sb, c / sc
    order = np.argsort(-np.linalg.norm(a, axis=0))
    a, b, c = a[:, order], b[:, order], c[:, order]
    na, nb = tensor["neuron_a"].values, tensor["neuron_b"].values
    neurons = sorted(set(na) | set(nb), key=list(dict.fromkeys(list(na) + list(nb))).index)
    comp = np.arange(rank)
    ds = xr.Dataset(
        {"pair_loading": (("pair", "component"), a), "time_loading": (("time", "component"), b),
         "worm_loading": (("worm", "component"), c),
         "restart_error": (("restart",), [f.errors[-1] for f in fits]),
         "error_history": (("iteration",), np.asarray(best.errors))},
        coords={"component": comp, "neuron_a": ("pair", na), "neuron_b": ("pair", nb),
                "time": tensor["time"].values, "worm": tensor["worm"].values, "neuron": neurons})
    if communities:
        sbm_labels, leiden_labels, n_blocks, cores = [], [], [], []
        for r in comp:
            m = pair_matrix(a[:, r], na, nb, neurons)
            fit_r = weighted_sbm(m, max_blocks=max_blocks, seed=seed, return_fit=True)
            sbm_labels.append(fit_r.labels)
            n_blocks.append(fit_r.n_blocks)
            leiden_labels.append(leiden(m, seed=seed))
            # the component's core: the block (of two or more neurons) whose pairs load most
            within = [fit_r.means[k, k] if (fit_r.labels == k).sum() > 1 else -np.inf for k in range(fit_r.n_blocks)]
            cores.append(fit_r.labels == int(np.argmax(within)) if fit_r.n_blocks > 1 else np.zeros(len(neurons), bool))
        ds["community"] = (("component", "neuron"), np.asarray(sbm_labels))
        ds["core"] = (("component", "neuron"), np.asarray(cores))
        ds["leiden"] = (("component", "neuron"), np.asarray(leiden_labels))
        ds["n_blocks"] = (("component",), np.asarray(n_blocks))
    ds.attrs.update({"rank": rank, "error": float(best.errors[-1]), "stability": stability,
                     "n_iter": best.n_iter, "converged": int(best.converged), "n_restarts": n_restarts,
                     "tensor_shape": list(x.shape), "observed_fraction": float(np.isfinite(x).mean()),
                     **{f"tensor_{k}": v for k, v in tensor.attrs.items()}})
    return ds
