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
from analysis.ntf.communities import degree_preserving_null, leiden, weighted_sbm

EPS = 1e-12


@dataclass
class NTFResult:
    factors: list            # [A (I x R), B (J x R), C (K x R)], numpy arrays
    errors: list[float] = field(default_factory=list)   # relative error on observed entries, per sweep
    n_iter: int = 0
    converged: bool = False
    background: np.ndarray | None = None     # per slice of the last mode, when fitted

    def reconstruct(self) -> np.ndarray:
        a, b, c = self.factors
        x = np.einsum("ir,jr,kr->ijk", a, b, c)
        return x if self.background is None else x + self.background[None, None, :]


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
        scale = (max(mean, EPS) / max(rank, 1)) ** (1 / 3)
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


def _hals_columns(f, m, gram, rank: int, ops: _Ops, inner: int = 1, frozen: int | None = None):
    """``inner`` HALS passes over the columns of factor ``f`` given its MTTKRP ``m`` and Gram
    ``gram`` (repeated passes solve the factor's non-negative least squares more exactly at
    no extra read of the tensor); column ``frozen`` is held fixed."""
    for _ in range(inner):
        for r in range(rank):
            if r == frozen:
                continue
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
                   seed: int = 0, dtype=np.float64, inner: int = 10, backend: str = "numpy",
                   background: bool = False) -> NTFResult:
    """Non-negative CP decomposition of a 3-way array ``x`` at ``rank`` by HALS.

    ``background``: fit, beside the ``rank`` components, one level per slice of the last
    mode (a worm's baseline, constant over the first two modes) -- a component whose first
    two factors are held at constants. Its levels come back in ``result.background``, the
    components in ``factors`` as usual.

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
    if rank < (0 if background else 1):
        raise ValueError("rank must be at least 1 (0 only with a background)")
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
    fixed = None
    if background:          # one more column: constant over modes 1 and 2, free in mode 3
        fixed = rank
        factors = [np.hstack([f, np.full((len(f), 1), 1.0, dtype=dtype)]) for f in factors]
        factors[2][:, fixed] = 0.5 * mean
        rank = rank + 1
    has_missing = not complete
    # match the initial reconstruction's scale to the data on observed entries
    gram0 = np.ones((rank, rank))
    for f in factors:
        gram0 = gram0 * (f.T @ f)
    ratio = np.sqrt(norm_obs2 / float(observed.mean()) / max(gram0.sum(), EPS))
    factors = [f * np.asarray(ratio ** (1 / 3), dtype=dtype) for f in factors]
    if fixed is not None:   # the background's constant columns stay exactly constant
        factors[0][:, fixed] = 1.0
        factors[1][:, fixed] = 1.0
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
        a = _hals_columns(a, unfolded @ kr, (b.T @ b) * (c.T @ c), rank, ops, inner, fixed)   # pass 1
        u = (unfolded.T @ a).reshape(j_, k_, rank)                                     # pass 2: X x_1 A
        b = _hals_columns(b, np.einsum("jkr,kr->jr", u, c), (a.T @ a) * (c.T @ c), rank, ops, inner, fixed)
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
    if complete and result.errors:
        # the Gram-matrix error above cancels large terms in the working precision (float32:
        # off by up to ~0.5%); the last entry is recomputed exactly from the returned factors
        result.errors[-1] = relative_error(x, a, b, c, norm_obs2)
    if fixed is not None:
        result.background = c[:, fixed] * a[0, fixed] * b[0, fixed]
        a, b, c = (f[:, :fixed] for f in (a, b, c))
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    result.factors = [a / np.maximum(na, EPS), b / np.maximum(nb, EPS), c * na * nb]
    return result


def relative_error(x, a, b, c, norm2: float | None = None, block: int = 512) -> float:
    """||X - [[A, B, C]]|| / ||X|| of a complete 3-way array, in float64, a block of rows at a time."""
    i_, j_, k_ = x.shape
    kr = (b[:, None, :] * c[None, :, :]).reshape(j_ * k_, -1)
    unfolded = x.reshape(i_, j_ * k_)
    total = 0.0
    for start in range(0, i_, block):
        diff = unfolded[start:start + block].astype(np.float64) - a[start:start + block] @ kr.T
        total += float(np.einsum("ij,ij->", diff, diff))
    norm2 = float(np.linalg.norm(x.ravel().astype(np.float64))) ** 2 if norm2 is None else norm2
    return float(np.sqrt(total / max(norm2, EPS)))


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


def _restarts(x, rank, n_restarts, seed, n_iter, tol, background=True):
    fits = [nonneg_cp_hals(x, rank, n_iter=n_iter, tol=tol, seed=seed + r, dtype=np.float32, background=background)
            for r in range(max(n_restarts, 1))]
    best = min(fits, key=lambda f: f.errors[-1])
    others = [f for f in fits if f is not best]
    # stability: how well the other restarts' pair factors match the best one's, component by component
    stability = float(np.mean([match_components(best.factors[0], f.factors[0])[1].mean() for f in others])) \
        if others else float("nan")
    return best, fits, stability


def select_rank(activity, ranks=range(1, 9), *, n_restarts: int = 4, seed: int = 0, n_iter: int = 300,
                tol: float = 1e-6, min_stability: float = 0.9, null=None, null_ratio: float = 3.0,
                background: bool = True, **tensor_options):
    """Reconstruction error and factor stability across ``n_restarts`` random restarts for
    each rank, and, with ``null`` (the same kind of input made of circularly shifted traces,
    see ``circular_shift_null``), the error of the same fits on the null.

    The chosen rank (attribute ``chosen_rank``, with ``rank_rule``):
    - with a null: the ranks are read upward while each added component lowers the error
      on the data at least ``null_ratio`` times as much as on the null (a component that
      explains little more than chance ends the scan); among the ranks read, the largest
      whose pair factors the restarts reproduce (mean correlation >= ``min_stability``).
      The ratio's default, 3: on planted co-activation the planted components explain
      4-8 times their null, the next ones 1-2.8 times (structure real but unplanted: each
      worm's own drive);
    - without: the largest stable rank;
    either way, when none is stable, the most stable one. Returns an xarray Dataset over
    ``rank`` (error: best relative error on observed entries; error_spread: max-min over
    restarts; stability; null_error)."""
    import xarray as xr

    x, _ = _tensor(activity, tensor_options)
    xn = _tensor(null, tensor_options)[0] if null is not None else None
    ranks = sorted(ranks)
    err, spread, stab, null_err = [], [], [], []
    for r in ranks:
        best, fits, stability = _restarts(x, r, n_restarts, seed, n_iter, tol, background)
        finals = [f.errors[-1] for f in fits]
        err.append(best.errors[-1])
        spread.append(max(finals) - min(finals))
        stab.append(1.0 if r == 1 and np.isnan(stability) else stability)
        null_err.append(_restarts(xn, r, n_restarts, seed, n_iter, tol, background)[0].errors[-1]
                        if xn is not None else np.nan)
    readable = list(ranks)
    if xn is not None:
        base = _restarts(x, 0, 1, seed, n_iter, tol, True)[0].errors[-1] if background else 1.0
        base_null = _restarts(xn, 0, 1, seed, n_iter, tol, True)[0].errors[-1] if background else 1.0
        prev, prev_null = base, base_null
        readable = []
        for r, e, en in zip(ranks, err, null_err):
            if prev - e < null_ratio * max(prev_null - en, 0.0) or prev - e <= 0:
                break
            readable.append(r)
            prev, prev_null = e, en
        readable = readable or ranks[:1]
    stable = [r for r, s in zip(ranks, stab) if s >= min_stability and r in readable]
    chosen = max(stable) if stable else ranks[int(np.nanargmax(stab))]
    return xr.Dataset({"error": ("rank", err), "error_spread": ("rank", spread), "stability": ("rank", stab),
                       "null_error": ("rank", null_err)},
                      coords={"rank": ranks},
                      attrs={"chosen_rank": chosen, "min_stability": min_stability, "n_restarts": n_restarts,
                             "rank_rule": f"gain >= {null_ratio} x the circular-shift null's, then stability"
                             if xn is not None else "stability", "background": int(background)})


def circular_shift_null(ds, *, variable: str = "calcium", seed: int = 0):
    """The activity Dataset with every (worm, neuron) trace circularly shifted by its own
    random offset within its recorded span: each trace keeps its own dynamics, the timing
    between neurons is broken. The null beside a dynamic connectome (its tensor is built
    from this like the data's)."""
    from analysis.surrogates import circular_shift

    da = ds[variable].transpose("worm", "time", "neuron")
    shifted = circular_shift(np.asarray(da.values, dtype=float), np.random.default_rng(seed), axis=1)
    out = ds.copy()
    out[variable] = da.copy(data=shifted.astype(da.dtype))
    out.attrs = dict(ds.attrs, null=f"circular shift of {variable}, seed {seed}")
    return out


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
        communities: bool = True, max_blocks: int = 8, background: bool = True, community_null: bool = True,
        **tensor_options):
    """The dynamic functional connectome of an activity-store Dataset (or of an affinity
    DataArray (pair, time, worm)) at ``rank``.

    Builds the differential-affinity tensor (``tensor_options``: variable, neurons,
    min_worms, bin_size, smooth_s, saturation; see analysis.ntf.affinity), fits a
    non-negative CP decomposition with ``n_restarts`` random starts (the lowest error
    kept), and finds each component's communities in its pair loading, read as a
    weighted neuron graph: the weighted SBM (blocks by ICL) and Leiden. With ``background``
    (the default) each worm's chance level of affinity -- what independent neurons reach,
    since the positive part of a product of two independent derivatives is not zero -- is
    fitted beside the components (``background``, per worm), so no component is spent on it.
    Components are ordered by weight; time and worm loadings are scaled to a maximum
    of 1, the scale going to the pair loading. With ``community_null`` each component's
    graph is also rewired into its degree-preserving null (``degree_preserving_null``) and
    its blocks counted there (``n_blocks_null``): communities the null has too are chance.
    Returns an xarray Dataset."""
    import xarray as xr

    x, tensor = _tensor(activity, tensor_options)
    best, fits, stability = _restarts(x, rank, n_restarts, seed, n_iter, tol, background)
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
         **({"background": (("worm",), best.background)} if best.background is not None else {}),
         "error_history": (("iteration",), np.asarray(best.errors))},
        coords={"component": comp, "neuron_a": ("pair", na), "neuron_b": ("pair", nb),
                "time": tensor["time"].values, "worm": tensor["worm"].values, "neuron": neurons})
    if communities:
        sbm_labels, leiden_labels, n_blocks, cores, null_blocks = [], [], [], [], []
        for r in comp:
            m = pair_matrix(a[:, r], na, nb, neurons)
            m[m <= 1e-9 * np.nanmax(m)] = 0.0        # HALS's floor is a numerical zero: no edge
            fit_r = weighted_sbm(m, max_blocks=max_blocks, seed=seed, return_fit=True)
            sbm_labels.append(fit_r.labels)
            n_blocks.append(fit_r.n_blocks)
            if community_null:
                rewired = degree_preserving_null(m, seed=seed + int(r))
                null_blocks.append(weighted_sbm(rewired, max_blocks=max_blocks, seed=seed, return_fit=True).n_blocks)
            leiden_labels.append(leiden(m, seed=seed))
            # the component's core: the block (of two or more neurons) whose pairs load most
            within = [fit_r.means[k, k] if (fit_r.labels == k).sum() > 1 else -np.inf for k in range(fit_r.n_blocks)]
            cores.append(fit_r.labels == int(np.argmax(within)) if fit_r.n_blocks > 1 else np.zeros(len(neurons), bool))
        ds["community"] = (("component", "neuron"), np.asarray(sbm_labels))
        ds["core"] = (("component", "neuron"), np.asarray(cores))
        ds["leiden"] = (("component", "neuron"), np.asarray(leiden_labels))
        ds["n_blocks"] = (("component",), np.asarray(n_blocks))
        if community_null:
            ds["n_blocks_null"] = (("component",), np.asarray(null_blocks))
    ds.attrs.update({"rank": rank, "error": float(best.errors[-1]), "stability": stability,
                     "n_iter": best.n_iter, "converged": int(best.converged), "n_restarts": n_restarts,
                     "tensor_shape": list(x.shape), "observed_fraction": float(np.isfinite(x).mean()),
                     **{f"tensor_{k}": v for k, v in tensor.attrs.items()}})
    return ds
