"""Surrogate data: the null models a real-data result is read against.

- ``phase_randomized``: the same power spectrum (so the same linear autocorrelation) with
  random Fourier phases (Theiler et al. 1992). What a visibility-graph exponent shows
  beyond it is nonlinear structure, not smoothness.
- ``circular_shift``: every trace rolled by its own random offset within the span it was
  recorded. Each trace keeps its whole temporal structure; only the timing between traces
  is broken, so co-activation found in the shifted data is chance.

Both keep NaN where the data had NaN: each finite run is randomized on its own
(``phase_randomized``), and the missing samples move with their trace (``circular_shift``).
"""

from __future__ import annotations

import numpy as np


def _finite_runs(x):
    finite = np.isfinite(x)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def phase_randomized(x, rng) -> np.ndarray:
    """A phase-randomized surrogate of the 1-D series ``x``: each finite run keeps its mean
    and amplitude spectrum, the phases (other than the mean's and the Nyquist term's) drawn
    uniformly; NaNs stay where they are."""
    x = np.asarray(x, dtype=float)
    out = np.full_like(x, np.nan)
    for lo, hi in _finite_runs(x):
        run = x[lo:hi]
        n = len(run)
        if n < 4:
            out[lo:hi] = run
            continue
        spec = np.fft.rfft(run - run.mean())
        phases = rng.uniform(0, 2 * np.pi, len(spec))
        phases[0] = 0.0
        if n % 2 == 0:
            phases[-1] = 0.0
        out[lo:hi] = np.fft.irfft(np.abs(spec) * np.exp(1j * phases), n=n) + run.mean()
    return out


def circular_shift(traces, rng, *, axis: int = 0) -> np.ndarray:
    """``traces`` with every 1-D trace along ``axis`` rolled by its own random offset
    within its recorded span (first to last finite sample; NaN inside moves with it)."""
    x = np.moveaxis(np.array(traces, dtype=float, copy=True), axis, -1)
    flat = x.reshape(-1, x.shape[-1])
    for row in flat:
        seen = np.flatnonzero(np.isfinite(row))
        if seen.size < 2:
            continue
        lo, hi = seen[0], seen[-1] + 1
        row[lo:hi] = np.roll(row[lo:hi], int(rng.integers(1, hi - lo)))
    return np.moveaxis(flat.reshape(x.shape), -1, axis)
