"""Hidden Markov model inference shared by the state-switching models (HMM-GLM).

Sequences are stacked as (sequence, time, state) arrays; shorter sequences are padded at
the end and ``lengths`` gives their real lengths. Padded bins carry no evidence and add
no transition counts, so padding never changes a likelihood, a posterior or an update.
A bin inside a sequence with nothing observed is given a log-emission of 0.

The forward-backward pass is exact. It works in log space for the emissions (each bin's
log-likelihoods are shifted by their maximum before exponentiation) and keeps the
recursion itself scaled, with the per-bin normalizers summed as logs: the same numbers
as a logsumexp recursion, at a fraction of its cost.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def _prepare_emissions(log_emission, lengths):
    """Emissions with the padded tail set to 0 (no evidence) and the mask of real bins."""
    log_emission = np.asarray(log_emission, dtype=float)
    n_seq, n_t, _ = log_emission.shape
    if lengths is None:
        return log_emission, None
    real = np.arange(n_t)[None, :] < np.asarray(lengths)[:, None]
    return np.where(real[..., None], log_emission, 0.0), real


def forward_backward(log_emission, transition, initial, lengths=None):
    """Posterior state probabilities of every bin.

    log_emission: (n_seq, T, S) log p(y_t | z_t = s), 0 where a bin has no observation;
    transition: (S, S), rows sum to 1; initial: (S,) distribution of the first state;
    lengths: real length of each sequence (the rest is padding), or None.
    Returns (posterior (n_seq, T, S), expected transition counts (S, S), log-likelihood
    of each sequence (n_seq,)).
    """
    log_emission, real = _prepare_emissions(log_emission, lengths)
    n_seq, n_t, n_s = log_emission.shape
    shift = log_emission.max(axis=-1, keepdims=True)
    e = np.exp(log_emission - shift)
    trans = np.asarray(transition, dtype=float)
    alpha = np.empty_like(e)
    scale = np.empty((n_seq, n_t))
    a = np.asarray(initial, dtype=float)[None, :] * e[:, 0]
    scale[:, 0] = a.sum(-1)
    alpha[:, 0] = a / scale[:, 0, None]
    for t in range(1, n_t):
        a = (alpha[:, t - 1] @ trans) * e[:, t]
        scale[:, t] = a.sum(-1)
        alpha[:, t] = a / scale[:, t, None]
    beta = np.empty_like(e)
    beta[:, -1] = 1.0
    for t in range(n_t - 2, -1, -1):
        beta[:, t] = (beta[:, t + 1] * e[:, t + 1]) @ trans.T / scale[:, t + 1, None]
    posterior = alpha * beta
    posterior /= posterior.sum(-1, keepdims=True)
    # expected transitions: alpha_{t-1}(i) A_ij e_t(j) beta_t(j) / scale_t over real steps;
    # in the padded tail e = 1, so its scale is 1 and it adds nothing to the likelihood
    right = e[:, 1:] * beta[:, 1:] / scale[:, 1:, None]
    if real is not None:
        right = right * real[:, 1:, None]
    counts = np.einsum("nti,ntj->ij", alpha[:, :-1], right) * trans
    log_lik = np.log(scale).sum(-1) + shift[..., 0].sum(-1)
    return posterior, counts, log_lik


def sequence_log_likelihood(log_emission, transition, initial, lengths=None):
    """log p(y) of each sequence by the forward recursion alone (n_seq,)."""
    log_emission, _ = _prepare_emissions(log_emission, lengths)
    shift = log_emission.max(axis=-1, keepdims=True)
    e = np.exp(log_emission - shift)
    a = np.asarray(initial, dtype=float)[None, :] * e[:, 0]
    total = np.log(a.sum(-1))
    a /= a.sum(-1, keepdims=True)
    for t in range(1, e.shape[1]):
        a = (a @ transition) * e[:, t]
        s = a.sum(-1)
        total += np.log(s)
        a /= s[:, None]
    return total + shift[..., 0].sum(-1)


def viterbi(log_emission, transition, initial, lengths=None):
    """Most probable state path of each sequence (n_seq, T) int; padded bins get -1."""
    log_emission, real = _prepare_emissions(log_emission, lengths)
    n_seq, n_t, n_s = log_emission.shape
    with np.errstate(divide="ignore"):
        log_a = np.log(transition)
        delta = np.log(initial)[None, :] + log_emission[:, 0]
    last = np.full(n_seq, n_t - 1) if lengths is None else np.asarray(lengths) - 1
    back = np.empty((n_seq, n_t, n_s), dtype=np.int64)
    end_state = np.zeros(n_seq, dtype=np.int64)
    end_state[last == 0] = delta[last == 0].argmax(-1)
    for t in range(1, n_t):
        cand = delta[:, :, None] + log_a[None]
        back[:, t] = cand.argmax(1)
        delta = np.take_along_axis(cand, back[:, t][:, None, :], 1)[:, 0] + log_emission[:, t]
        delta -= delta.max(-1, keepdims=True)
        ends = last == t
        end_state[ends] = delta[ends].argmax(-1)
    # each sequence is traced back from its own last real bin
    path = np.empty((n_seq, n_t), dtype=np.int64)
    rows = np.arange(n_seq)
    state = end_state.copy()
    for t in range(n_t - 1, -1, -1):
        state = np.where(last == t, end_state, state)
        path[:, t] = state
        if t > 0:
            state = back[rows, t, state]
    if real is not None:
        path[~real] = -1
    return path


def update_transition(counts, stickiness: float = 0.0):
    """Closed-form M-step for the transition matrix from expected counts; ``stickiness``
    adds pseudo-counts to self-transitions (a Dirichlet prior) and 1e-8 keeps rows proper."""
    counts = np.asarray(counts, dtype=float) + stickiness * np.eye(len(counts)) + 1e-8
    return counts / counts.sum(1, keepdims=True)


def match_states(true_states, found_states, n_states: int):
    """The permutation ``perm`` (found label -> true label) that maximizes agreement,
    by the Hungarian assignment on the confusion matrix; padded bins (-1) are ignored."""
    t = np.asarray(true_states).ravel()
    f = np.asarray(found_states).ravel()
    keep = (t >= 0) & (f >= 0)
    confusion = np.zeros((n_states, n_states))
    np.add.at(confusion, (f[keep], t[keep]), 1)
    rows, cols = linear_sum_assignment(-confusion)
    perm = np.empty(n_states, dtype=np.int64)
    perm[rows] = cols
    return perm


def state_accuracy(true_states, found_states, perm) -> float:
    """Fraction of real bins whose found state, relabelled by ``perm``, equals the truth."""
    t = np.asarray(true_states).ravel()
    f = np.asarray(found_states).ravel()
    keep = (t >= 0) & (f >= 0)
    return float((perm[f[keep]] == t[keep]).mean())
