"""Time series to networks, part two: the gap policy every construction applies
(:func:`segments`), and the cycle and recurrence networks. Visibility graphs, the
metrics and the functions over a store are in :mod:`analysis.tsnet`, which re-exports
these."""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np


# ---------------------------------------------------------------- gaps and segments

@dataclass(frozen=True)
class Segments:
    """The finite stretches of a series after the gap policy: (first index, values) pairs."""

    parts: list[tuple[int, np.ndarray]]
    n_samples: int
    n_interpolated: int
    n_dropped: int

    def graph_attrs(self) -> dict:
        return {"n_samples": self.n_samples, "n_segments": len(self.parts),
                "n_interpolated": self.n_interpolated, "n_dropped": self.n_dropped}


def segments(x, *, max_gap: int = 0, min_length: int = 3) -> Segments:
    """Split ``x`` at NaN runs longer than ``max_gap``; bridge shorter interior runs linearly."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"a time series must be one-dimensional, got shape {x.shape}")
    finite = np.isfinite(x)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return Segments([], x.size, 0, 0)
    x = x[idx[0]: idx[-1] + 1].copy()
    offset = int(idx[0])
    idx = idx - offset
    gaps = np.diff(idx) - 1
    breaks = np.flatnonzero(gaps > max_gap)
    n_interp = 0
    bridge = np.flatnonzero((gaps > 0) & (gaps <= max_gap))
    for b in bridge:
        lo, hi = idx[b], idx[b + 1]
        x[lo + 1: hi] = np.interp(np.arange(lo + 1, hi), [lo, hi], [x[lo], x[hi]])
        n_interp += hi - lo - 1
    starts = np.concatenate([[0], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks] + 1, [idx[-1] + 1]])
    parts, dropped = [], 0
    for a, b in zip(starts, stops):
        if b - a >= min_length:
            parts.append((offset + int(a), x[a:b]))
        else:
            dropped += int(b - a)
    return Segments(parts, int(np.size(finite)), n_interp, dropped)


# ---------------------------------------------------------------- cycle networks

def _dominant_period(values: np.ndarray) -> float:
    """Lag of the autocorrelation's highest point in its first positive lobe after the first
    zero crossing (NaN when there is none): the period of a pseudo-periodic series."""
    v = values - values.mean()
    n = v.size
    spec = np.fft.rfft(v, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[: n // 2]
    if ac.size < 4 or ac[0] <= 0:
        return float("nan")
    down = np.flatnonzero(ac < 0)
    if down.size == 0:
        return float("nan")
    up = np.flatnonzero(ac[down[0]:] > 0)
    if up.size == 0:
        return float("nan")
    lobe_start = down[0] + up[0]
    after = np.flatnonzero(ac[lobe_start:] < 0)
    lobe_stop = lobe_start + after[0] if after.size else ac.size
    return float(lobe_start + np.argmax(ac[lobe_start:lobe_stop]))


def _split_cycles(seg: Segments, split: str, min_distance: int | None):
    from scipy.signal import find_peaks

    cycles = []
    for start, values in seg.parts:
        dist = min_distance
        if dist is None:
            period = _dominant_period(values)
            dist = max(2, math.ceil(0.7 * period)) if np.isfinite(period) else 2
        signal = values if split == "peaks" else -values
        peaks, _ = find_peaks(signal, distance=dist)
        for a, b in zip(peaks[:-1], peaks[1:]):
            cycles.append((start + int(a), start + int(b), values[a: b + 1]))
    return cycles


def _threshold_for_density(score: np.ndarray, density: float) -> float:
    """The similarity above which ``density`` of all pairs lie."""
    iu = np.triu_indices(score.shape[0], 1)
    vals = score[iu]
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return float("inf")
    return float(np.quantile(vals, 1 - density))


def cycle_network(x, *, split: str = "peaks", similarity: str = "correlation", threshold: float | None = None,
                  density: float = 0.1, min_distance: int | None = None, length: int | None = None,
                  embed_dim: int = 3, max_gap: int = 0) -> nx.Graph:
    """Cycle network of a pseudo-periodic series (Zhang & Small 2006).

    The series is cut into cycles at its ``split`` ("peaks" or "troughs"), found at least
    ``min_distance`` samples apart (default: 0.7 of the autocorrelation period, so that one
    extremum per cycle survives a harmonic or noise). Every cycle is
    resampled to ``length`` points (default: the median cycle length) and becomes a node; two
    cycles are linked when their ``similarity`` passes ``threshold``:

    - "correlation": Pearson correlation of the resampled cycles; linked when >= threshold.
    - "distance": mean Euclidean distance between the cycles' delay-embedded trajectories
      (``embed_dim`` coordinates, lag 1); linked when <= threshold.

    Without ``threshold``, the threshold is chosen so that a fraction ``density`` of all cycle
    pairs is linked. Nodes carry ``start`` and ``stop`` sample indices. Cycles never span a gap.
    """
    if split not in ("peaks", "troughs"):
        raise ValueError(f"split must be 'peaks' or 'troughs', got {split!r}")
    if similarity not in ("correlation", "distance"):
        raise ValueError(f"similarity must be 'correlation' or 'distance', got {similarity!r}")
    seg = segments(x, max_gap=max_gap)
    cycles = _split_cycles(seg, split, min_distance)
    G = nx.Graph()
    G.graph.update(seg.graph_attrs(), construction="cycle", split=split, similarity=similarity,
                   n_cycles=len(cycles), max_gap=max_gap)
    for i, (a, b, _) in enumerate(cycles):
        G.add_node(i, start=a, stop=b)
    if len(cycles) < 2:
        G.graph["threshold"] = threshold
        return G
    L = length or max(8, int(np.median([c.size for _, _, c in cycles])))
    grid = np.linspace(0, 1, L)
    R = np.stack([np.interp(grid, np.linspace(0, 1, c.size), c) for _, _, c in cycles])
    if similarity == "correlation":
        Z = R - R.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(Z, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            Z = Z / norm[:, None]
        score = Z @ Z.T
        score[~np.isfinite(score)] = np.nan
    else:
        if L < embed_dim:
            raise ValueError(f"cycles of {L} points cannot be embedded in {embed_dim} dimensions")
        E = np.stack([R[:, j: L - embed_dim + 1 + j] for j in range(embed_dim)], axis=-1)
        d = np.sqrt(((E[:, None] - E[None, :]) ** 2).sum(-1)).mean(-1)
        score = -d
    np.fill_diagonal(score, np.nan)
    if threshold is None:
        cut = _threshold_for_density(score, density)
        G.graph["threshold"] = cut if similarity == "correlation" else -cut
    else:
        cut = threshold if similarity == "correlation" else -threshold
        G.graph["threshold"] = threshold
    with np.errstate(invalid="ignore"):
        i, j = np.nonzero(np.triu(score >= cut, 1))
    G.add_edges_from(zip(i.tolist(), j.tolist()))
    return G


# ---------------------------------------------------------------- recurrence networks

def _autocorr_lag(values: np.ndarray) -> int:
    """First lag where the autocorrelation falls below 1/e (at least 1)."""
    v = values - values.mean()
    n = v.size
    spec = np.fft.rfft(v, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    if ac[0] <= 0:
        return 1
    below = np.flatnonzero(ac / ac[0] < 1 / math.e)
    return max(1, int(below[0])) if below.size else 1


def _embed(seg: Segments, dim: int, lag: int):
    idx, vecs = [], []
    span = (dim - 1) * lag
    for start, values in seg.parts:
        n = values.size - span
        if n <= 0:
            continue
        vecs.append(np.stack([values[j * lag: j * lag + n] for j in range(dim)], axis=1))
        idx.append(np.arange(start, start + n))
    if not vecs:
        return np.empty(0, np.int64), np.empty((0, dim))
    return np.concatenate(idx), np.concatenate(vecs)


def recurrence_network(x, *, dim: int = 3, lag: int | None = None, rate: float = 0.05,
                       epsilon: float | None = None, norm: str = "euclidean", max_gap: int = 0,
                       exact_limit: int = 4000, seed: int = 0) -> nx.Graph:
    """Epsilon-recurrence network of the delay embedding of ``x``.

    Nodes are embedding vectors (x_i, x_{i+lag}, ..., x_{i+(dim-1)lag}), named by i; two are
    linked when closer than epsilon in the ``norm`` ("euclidean" or "max"). ``lag`` defaults
    to the first lag where the autocorrelation falls below 1/e. Without ``epsilon``, it is
    the ``rate`` quantile of all pairwise distances (from a seeded sample of 2 million pairs
    when there are more than ``exact_limit`` vectors), so that the recurrence rate is ``rate``.
    Embedding vectors never span a gap.
    """
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import pdist

    p = {"euclidean": 2, "max": np.inf}.get(norm)
    if p is None:
        raise ValueError(f"norm must be 'euclidean' or 'max', got {norm!r}")
    seg = segments(x, max_gap=max_gap)
    if lag is None:
        lag = _autocorr_lag(max((v for _, v in seg.parts), key=len)) if seg.parts else 1
    idx, V = _embed(seg, dim, lag)
    G = nx.Graph()
    G.add_nodes_from(idx.tolist())
    G.graph.update(seg.graph_attrs(), construction="recurrence", dim=dim, lag=lag, norm=norm, max_gap=max_gap)
    n = len(idx)
    if n < 2:
        G.graph.update(epsilon=epsilon, recurrence_rate=float("nan"))
        return G
    if epsilon is None:
        if n <= exact_limit:
            d = pdist(V, "euclidean" if p == 2 else "chebyshev")
        else:
            rng = np.random.default_rng(seed)
            a, b = rng.integers(0, n, (2, 2_000_000))
            keep = a != b
            diff = np.abs(V[a[keep]] - V[b[keep]])
            d = np.sqrt((diff ** 2).sum(1)) if p == 2 else diff.max(1)
        epsilon = float(np.quantile(d, rate))
    pairs = cKDTree(V).query_pairs(epsilon, p=p, output_type="ndarray")
    G.add_edges_from(zip(idx[pairs[:, 0]].tolist(), idx[pairs[:, 1]].tolist()))
    G.graph.update(epsilon=epsilon, recurrence_rate=2 * len(pairs) / (n * (n - 1)))
    return G
