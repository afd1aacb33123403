"""Planted co-activation: groups of neurons that interact in known windows of known worms."""

from __future__ import annotations

import numpy as np


def dynamic_communities(n_groups: int = 3, group_size: int = 8, n_worms: int = 4, n_time: int = 600, *,
                        dt: float = 0.5, window_fraction: float = 0.3, background: float = 0.3, noise: float = 0.2,
                        missing_fraction: float = 0.1, smooth_s: float = 2.0, worm_fraction: float = 1.0,
                        seed: int | None = 0) -> dict:
    """Calcium-like traces of worms whose neurons form groups that co-activate in known
    time windows: the planted truth of the dynamic functional connectome analysis.

    Group g is active in one window (``window_fraction`` of the recording, the windows of
    different groups at different times) in the worms it is active in (each worm with
    probability ``worm_fraction``, at least one worm per group): its neurons then follow
    one shared slow signal of unit sd, the worm's own; otherwise each neuron follows its
    own, of sd ``background``. Every trace gets white noise of sd ``noise``, and each worm
    misses a random ``missing_fraction`` of the neurons (all NaN). Returns traces (worm,
    time, neuron), groups (neuron,), windows (group, time) bool, worms (group, worm) bool, dt."""
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    groups = np.repeat(np.arange(n_groups), group_size)
    width = int(window_fraction * n_time)
    starts = np.linspace(0, n_time - width, n_groups).astype(int)
    windows = np.zeros((n_groups, n_time), dtype=bool)
    for g, s in enumerate(starts):
        windows[g, s:s + width] = True
    sigma = smooth_s / dt

    def slow(size):
        from scipy.ndimage import gaussian_filter1d

        x = gaussian_filter1d(rng.normal(size=size), sigma, axis=0)
        return x / x.std(0)

    active = rng.random((n_groups, n_worms)) < worm_fraction
    active[np.arange(n_groups), rng.integers(n_worms, size=n_groups)] = True
    traces = np.empty((n_worms, n_time, n))
    for w in range(n_worms):
        own = background * slow((n_time, n))
        shared = slow((n_time, n_groups))
        x = own.copy()
        for g in np.flatnonzero(active[:, w]):
            members = groups == g
            x[np.ix_(windows[g], members)] = shared[windows[g], g][:, None]
        x += noise * rng.normal(size=x.shape)
        lost = rng.random(n) < missing_fraction
        x[:, lost] = np.nan
        traces[w] = x
    return dict(traces=traces, groups=groups, windows=windows, worms=active, dt=dt)
