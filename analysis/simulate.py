"""Simulated series with known structure, for tests, benchmarks and users' sanity checks."""

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


def hmmglm_sample(n_states: int = 5, n_neurons: int = 20, n_sequences: int = 30, n_time: int = 2000, *,
                  sparsity: float = 0.2, p_exc: float = 0.5, concentration: float = 2.0,
                  self_transition: float = 0.98, window: int = 5, decay: float = 1.0,
                  bias_scale: float = 0.1, seed: int | None = 0) -> dict:
    """Spike counts from a one-hot HMM-GLM, the synthetic protocol of Li et al. (ICLR 2024).

    A global prior over {inh, none, exc} per (post, pre) pair ~ Dirichlet(concentration *
    [sparsity (1 - p_exc), 1 - sparsity, sparsity p_exc]); each state draws its connection
    types from it, strengths log(1 + 3U), W = type * strength (self-coupling included);
    biases 0.1 (U - 1/2) shared by the states; sticky transitions; counts
    Poisson(sigmoid(bias + W h)) with h the exponential history of the counts over
    ``window`` bins. Returns a dict of arrays: spikes (seq, T, N), states (seq, T),
    weights (S, N, N), conn_types, global_prior (N, N, 3), strength, bias,
    transition_matrix, kernel."""
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    alpha = concentration * np.array([sparsity * (1 - p_exc), 1 - sparsity, sparsity * p_exc])
    prior = rng.dirichlet(alpha, size=(n_neurons, n_neurons))
    cum = prior.cumsum(-1)
    u = rng.random((n_states, n_neurons, n_neurons, 1))
    types = (u > cum[None, ..., :2]).sum(-1) - 1
    strength = np.log1p(3 * rng.random((n_states, n_neurons, n_neurons)))
    weights = types * strength
    bias = bias_scale * (rng.random(n_neurons) - 0.5)
    off = (1 - self_transition) / max(n_states - 1, 1)
    trans = np.full((n_states, n_states), off) + np.eye(n_states) * (self_transition - off)
    kernel = np.exp(-decay * np.arange(1, window + 1))
    kernel /= kernel.sum()
    spikes = np.zeros((n_sequences, n_time, n_neurons), dtype=np.int64)
    states = np.zeros((n_sequences, n_time), dtype=np.int64)
    z = rng.integers(n_states, size=n_sequences)
    for t in range(n_time):
        if t > 0:
            z = (rng.random((n_sequences, 1)) > trans[z].cumsum(-1)).sum(-1)
        states[:, t] = z
        h = np.zeros((n_sequences, n_neurons))
        for k in range(1, min(window, t) + 1):
            h += kernel[k - 1] * spikes[:, t - k]
        eta = bias + np.einsum("snm,sm->sn", weights[z], h)
        spikes[:, t] = rng.poisson(expit(eta))
    return dict(spikes=spikes, states=states, weights=weights, conn_types=types.astype(np.int8),
                global_prior=prior, strength=strength, bias=bias, transition_matrix=trans, kernel=kernel)


def dynamic_communities(n_groups: int = 3, group_size: int = 8, n_worms: int = 4, n_time: int = 600, *,
                        dt: float = 0.5, window_fraction: float = 0.3, background: float = 0.3, noise: float = 0.2,
                        missing_fraction: float = 0.1, smooth_s: float = 2.0, seed: int | None = 0) -> dict:
    """Calcium-like traces of worms whose neurons form groups that co-activate in known
    time windows: the planted truth of the dynamic functional connectome analysis.

    Group g is active in one window (``window_fraction`` of the recording, the windows of
    different groups at different times, the same in every worm): its neurons then follow
    one shared slow signal of unit sd; otherwise each neuron follows its own, of sd
    ``background``. Every trace gets white noise of sd ``noise``, and each worm misses a random
    ``missing_fraction`` of the neurons (all NaN). Returns traces (worm, time, neuron),
    groups (neuron,), windows (group, time) bool, dt."""
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

    traces = np.empty((n_worms, n_time, n))
    for w in range(n_worms):
        own = background * slow((n_time, n))
        shared = slow((n_time, n_groups))
        x = own.copy()
        for g in range(n_groups):
            members = groups == g
            x[np.ix_(windows[g], members)] = shared[windows[g], g][:, None]
        x += noise * rng.normal(size=x.shape)
        lost = rng.random(n) < missing_fraction
        x[:, lost] = np.nan
        traces[w] = x
    return dict(traces=traces, groups=groups, windows=windows, dt=dt)
