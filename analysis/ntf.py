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
    (A does not change between them). The error comes from
    the Gram matrices and the last MTTKRP, without forming the reconstruction; missing
    entries are re-imputed from the factors at their own positions only.
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
    missing = np.nonzero(~observed) if not complete else None
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
    for it in range(n_iter):
        if has_missing:
            xt[missing] = (a[missing[0]] * b[missing[1]] * c[missing[2]]).sum(1)
        kr = (b[:, None, :] * c[None, :, :]).reshape(j_ * k_, rank)       # Khatri-Rao of B and C
        unfolded = xt.reshape(i_, j_ * k_)
        a = _hals_columns(a, unfolded @ kr, (b.T @ b) * (c.T @ c), rank, ops, inner)   # pass 1
        u = (unfolded.T @ a).reshape(j_, k_, rank)                                     # pass 2: X x_1 A
        b = _hals_columns(b, np.einsum("jkr,kr->jr", u, c), (a.T @ a) * (c.T @ c), rank, ops, inner)
        m_c = np.einsum("jkr,jr->kr", u, b)
        c = _hals_columns(c, m_c, (a.T @ a) * (b.T @ b), rank, ops, inner)
        # ||X - Xhat||^2 = ||X||^2 - 2 <X, Xhat> + ||Xhat||^2, on the imputed tensor ...
        cross = float((m_c.astype(np.float64) * c).sum())
        recon2 = float(((a.T @ a) * (b.T @ b) * (c.T @ c)).astype(np.float64).sum())
        full2 = float(np.linalg.norm(xt.ravel())) ** 2 if has_missing else norm_obs2
        err2 = full2 - 2 * cross + recon2
        if has_missing:   # ... minus the imputed entries' part, so it is the observed-entry error
            gap = xt[missing].astype(np.float64) - (a[missing[0]] * b[missing[1]] * c[missing[2]]).sum(1)
            err2 -= float((gap ** 2).sum())
        err = np.sqrt(max(err2, 0.0) / max(norm_obs2, EPS))
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
