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
