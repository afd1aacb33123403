"""The HMM-GLM's data and parameters: sequences as design matrices of filtered history,
and the parameter set EM updates (see :mod:`analysis.hmmglm` for the model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

_EPS = 1e-8           # the paper's floor under the sigmoid rate
_VAR_FLOOR = 1e-4     # Gaussian noise variance floor (traces are z-scored)


def history_kernel(window: int = 5, decay: float = 1.0) -> np.ndarray:
    """phi_k = exp(-decay k) / sum_j exp(-decay j) for lags k = 1..window (phi[0] is lag 1)."""
    if window < 1:
        raise ValueError(f"the history window must be at least one bin, got {window}")
    w = np.exp(-decay * np.arange(1, window + 1))
    return w / w.sum()


def convolve_history(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """h[..., t, m] = sum_k kernel[k-1] y[..., t-k, m] with zeros before the first bin."""
    h = np.zeros_like(y, dtype=float)
    for k, w in enumerate(kernel, start=1):
        if k < y.shape[-2]:
            h[..., k:, :] += w * y[..., :-k, :]
    return h


@dataclass
class _Data:
    """Sequences flattened to their real bins: design x (M, N+1, bias last), targets
    y (M, N), observed (M, N) or None, and where each bin came from."""
    x: np.ndarray
    y: np.ndarray
    observed: np.ndarray | None
    seq: np.ndarray
    time: np.ndarray
    lengths: np.ndarray
    n_time: int
    _outer: np.ndarray | None = None
    _log_factorial: np.ndarray | None = None
    pool: object | None = None        # the fit's ThreadPoolExecutor while it runs

    @property
    def log_factorial(self):
        """sum_n log(y_tn!) over observed neurons, per bin: the Poisson constant."""
        if self._log_factorial is None:
            lf = gammaln(self.y + 1)
            self._log_factorial = (lf if self.observed is None else lf * self.observed).sum(-1)
        return self._log_factorial

    def subset(self, seqs) -> "_Data":
        """The same data restricted to sequences ``seqs`` (renumbered from 0)."""
        keep = np.isin(self.seq, seqs)
        renumber = np.full(len(self.lengths), -1)
        renumber[np.asarray(seqs)] = np.arange(len(seqs))
        lengths = self.lengths[np.asarray(seqs)]
        return _Data(self.x[keep], self.y[keep], None if self.observed is None else self.observed[keep],
                     renumber[self.seq[keep]], self.time[keep], lengths, int(lengths.max()))

    @property
    def n_neurons(self):
        return self.y.shape[1]

    def to_grid(self, values: np.ndarray, fill=0.0) -> np.ndarray:
        """(M, ...) per-bin values back to (n_seq, T, ...)."""
        out = np.full((len(self.lengths), self.n_time) + values.shape[1:], fill, dtype=values.dtype)
        out[self.seq, self.time] = values
        return out

    def outer_rows(self, idx):
        """The design rows' outer products (float32) for bins ``idx``; cached when the
        whole table stays under 256 MB, recomputed otherwise."""
        d = self.x.shape[1]
        if self._outer is None and len(self.x) * d * d * 4 <= 256 * 2 ** 20:
            self._outer = _outer(self.x)
        return self._outer[idx] if self._outer is not None else _outer(self.x[idx])


def remove_baseline(x: np.ndarray, window: int) -> np.ndarray:
    """(T, N) traces minus their centred running mean over ``window`` bins (edges
    reflected), NaN-aware: unobserved entries stay NaN and do not enter the mean."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(x, dtype=float)
    seen = ~np.isnan(x)
    total = uniform_filter1d(np.where(seen, x, 0.0), window, axis=0, mode="reflect")
    count = uniform_filter1d(seen.astype(float), window, axis=0, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        base = np.where(count > 0, total / count, 0.0)
    return x - base


def as_sequences(data) -> list[np.ndarray]:
    """A (n_seq, T, N) array, a (T, N) array or a list of (T_i, N) arrays as a list of
    float (T_i, N) arrays; trailing all-NaN bins of a sequence are its padding."""
    if isinstance(data, np.ndarray):
        data = [data] if data.ndim == 2 else list(data)
    seqs = []
    for i, s in enumerate(data):
        s = np.asarray(s, dtype=float)
        if s.ndim != 2:
            raise ValueError(f"sequence {i} must be (time, neurons), got shape {s.shape}")
        seen = np.flatnonzero(~np.isnan(s).all(1))
        if seen.size == 0:
            raise ValueError(f"sequence {i} has no observed bin")
        seqs.append(s[: seen[-1] + 1])
    if len({s.shape[1] for s in seqs}) != 1:
        raise ValueError("all sequences must have the same neurons")
    return seqs


def prepare_sequences(seqs, kernel) -> _Data:
    lengths = np.array([len(s) for s in seqs])
    xs, ys, obs, seq_i, time_i = [], [], [], [], []
    for i, s in enumerate(seqs):
        seen = ~np.isnan(s)
        filled = np.where(seen, s, 0.0)       # an unobserved input contributes nothing
        h = convolve_history(filled, kernel)
        xs.append(np.concatenate([h, np.ones((len(s), 1))], 1))
        ys.append(filled)
        obs.append(seen)
        seq_i.append(np.full(len(s), i))
        time_i.append(np.arange(len(s)))
    observed = np.concatenate(obs)
    return _Data(np.concatenate(xs), np.concatenate(ys), None if observed.all() else observed,
                 np.concatenate(seq_i), np.concatenate(time_i), lengths, int(lengths.max()))


@dataclass
class _Params:
    theta: np.ndarray            # (S, N, N+1): couplings W[s, n, :N], bias W[s, n, N]
    transition: np.ndarray       # (S, S)
    initial: np.ndarray          # (S,)
    noise: np.ndarray | None     # (S, N) Gaussian variance
    mean: np.ndarray | None = None          # Gaussian prior: shared mean coupling (N, N)
    tau2: float = 1.0                       # Gaussian prior: variance around it
    type_prob: np.ndarray | None = None     # one-hot: posterior over types (S, N, N, 3)
    global_prior: np.ndarray | None = None  # one-hot: pi (N, N, 3)
    slab: float = 0.5                       # one-hot: half-normal strength scale
    fixed: np.ndarray | None = None         # hard one-hot refit: type per coupling (S, N, N)
    raw: np.ndarray | None = None           # one-hot: the unshrunk fit that warm-starts the next M-step


def _linear(data: _Data, theta):
    s, n, d = theta.shape
    return (data.x @ theta.reshape(s * n, d).T).reshape(-1, s, n)


def _replace(p: _Params, **changes) -> _Params:
    values = {f: getattr(p, f) for f in p.__dataclass_fields__}
    values.update(changes)
    return _Params(**values)


def _outer(x):
    """The design rows' outer products (m, D*D) in float32, the operand of ``_gram``."""
    x = x.astype(np.float32)
    return (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)


def _map(data: "_Data", fn, items):
    """``fn`` over ``items`` on the fit's thread pool (numpy's element-wise and BLAS work
    releases the GIL, so the states' fits and the emission chunks run side by side), or in
    this thread where the data has no pool. The pool belongs to one fit, never to the process."""
    return list(data.pool.map(fn, items)) if data.pool is not None else list(map(fn, items))
