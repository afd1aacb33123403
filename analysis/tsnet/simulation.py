"""Series with known structure for the visibility-graph methods: fractional Gaussian noise
and motion (known Hurst exponent), pseudo-periodic signals."""

from __future__ import annotations

import numpy as np


def fgn(n: int, hurst: float, *, seed: int | None = 0) -> np.ndarray:
    """Fractional Gaussian noise of length ``n`` (unit variance) by circulant embedding
    (Davies & Harte 1987): exact for 0 < hurst < 1."""
    if not 0 < hurst < 1:
        raise ValueError(f"the Hurst exponent must lie in (0, 1), got {hurst}")
    rng = np.random.default_rng(seed)
    k = np.arange(n + 1, dtype=float)
    two_h = 2 * hurst
    gamma = 0.5 * (np.abs(k + 1) ** two_h - 2 * k ** two_h + np.abs(k - 1) ** two_h)
    row = np.concatenate([gamma, gamma[-2:0:-1]])
    eig = np.fft.fft(row).real
    if eig.min() < -1e-9 * eig.max():
        raise ValueError(f"circulant embedding failed for H={hurst}, n={n}")
    eig = np.clip(eig, 0, None)
    m = row.size
    z = rng.normal(size=m) + 1j * rng.normal(size=m)
    w = np.fft.fft(np.sqrt(eig / m) * z)
    return w.real[:n]


def fbm(n: int, hurst: float, *, seed: int | None = 0) -> np.ndarray:
    """Fractional Brownian motion: the cumulative sum of fractional Gaussian noise."""
    return np.cumsum(fgn(n, hurst, seed=seed))


def pseudo_periodic(n: int, period: float = 25.0, *, drift: float = 0.01, noise: float = 0.1,
                    seed: int | None = 0) -> np.ndarray:
    """A noisy sine whose waveform drifts slowly: sin(phase) + a(t) sin(2 phase) + noise, with
    a(t) a random walk of step ``drift``. Cycles close in time look alike."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / period
    a = np.cumsum(rng.normal(0, drift, n))
    return np.sin(phase) + a * np.sin(2 * phase) + noise * rng.normal(size=n)
