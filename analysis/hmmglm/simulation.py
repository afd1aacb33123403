"""Planted HMM-GLM data: sequences drawn from a known state-switching GLM."""

from __future__ import annotations

import numpy as np


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


def calcium_states_sample(n_neurons: int = 60, n_sequences: int = 8, n_time: int = 1600, *,
                          rare_fraction: float = 0.13, rare_dwell: float = 20.0, n_driven: int = 10,
                          level: float = 1.5, persistence: float = 0.9, process_noise: float = 0.3,
                          observation_noise: float = 0.2, drift_timescale: float = 100.0, drift_scale: float = 1.0,
                          n_coupled: int = 20, seed: int | None = 0) -> dict:
    """Calcium-like traces with two planted behavioural states (a common "forward" state and
    a rare "reversal" state), the regime the HMM-GLM faces on whole-brain recordings.

    States: a two-state Markov chain whose rare state lasts ``rare_dwell`` bins on average
    and takes ``rare_fraction`` of the time. Neurons: ``n_driven`` "reversal" neurons rise by
    ``level`` and ``n_driven`` "forward" neurons fall by ``level`` in the rare state; the
    rest do not care about the state. Every neuron relaxes toward its state's level as an
    AR(1) with coefficient ``persistence`` (the indicator's slow decay) and ``process_noise``;
    ``n_coupled`` random pairs of state-blind neurons drive one another; a slow, smooth
    shared drift (white noise smoothed by a Gaussian of ``drift_timescale`` bins, scaled to
    ``drift_scale``, on random loadings: the bleaching and slow modulation of real
    recordings) and ``observation_noise`` are added. Each trace is z-scored within its sequence, as ``store_sequences`` does.

    Returns a dict: calcium (seq, T, N) float, states (seq, T) int (1 = rare),
    reversal_neurons and forward_neurons (indices), drift (seq, T), level (2, N)."""
    rng = np.random.default_rng(seed)
    p_out = 1.0 / rare_dwell
    p_in = p_out * rare_fraction / (1.0 - rare_fraction)
    order = rng.permutation(n_neurons)
    rev, fwd = np.sort(order[:n_driven]), np.sort(order[n_driven:2 * n_driven])
    target = np.zeros((2, n_neurons))
    target[1, rev], target[1, fwd] = level, -level
    blind = order[2 * n_driven:]
    coupling = np.zeros((n_neurons, n_neurons))
    if len(blind) > 1:
        for _ in range(n_coupled):
            post, pre = rng.choice(blind, 2, replace=False)
            coupling[post, pre] = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.1)
    from scipy.ndimage import gaussian_filter1d

    loading = rng.normal(size=n_neurons)
    calcium = np.empty((n_sequences, n_time, n_neurons))
    states = np.empty((n_sequences, n_time), dtype=np.int64)
    drifts = np.empty((n_sequences, n_time))
    for i in range(n_sequences):
        z = int(rng.random() < rare_fraction)
        x = target[z] + rng.normal(scale=process_noise, size=n_neurons)
        drift_path = gaussian_filter1d(rng.normal(size=n_time), drift_timescale, mode="reflect")
        drift_path *= drift_scale / drift_path.std()
        for t in range(n_time):
            if t:
                z = int(rng.random() < p_in) if z == 0 else int(rng.random() >= p_out)
                x = (persistence * x + (1 - persistence) * target[z] + coupling @ x
                     + rng.normal(scale=process_noise, size=n_neurons))
            states[i, t], drifts[i, t] = z, drift_path[t]
            calcium[i, t] = x + drift_path[t] * loading
        calcium[i] += rng.normal(scale=observation_noise, size=(n_time, n_neurons))
        calcium[i] = (calcium[i] - calcium[i].mean(0)) / calcium[i].std(0)
    return dict(calcium=calcium, states=states, reversal_neurons=rev, forward_neurons=fwd, drift=drifts,
                level=target)
