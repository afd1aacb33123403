"""State-switching GLMs: an HMM whose every state has its own neuron-to-neuron coupling.

Model (after Li, Kim, Rodgers, Choi & Wu, ICLR 2024): a hidden state z_t follows a Markov
chain; given z_t = s, neuron n's activity at t depends on the recent activity of every
neuron m through W[s, n, m] (post, pre) and a bias b[s, n]:

    eta[t, n] = b[s, n] + sum_m W[s, n, m] * h[t, m],   h[t, m] = sum_k phi_k y[t - k, m]

with a fixed history kernel phi (normalized exponential over ``window`` bins; a single
lag for calcium). Emissions: Poisson counts with rate sigmoid(eta) (the paper's link, so
at most one expected event per bin), or Gaussian calcium with mean eta and a learned
noise variance per neuron, shared by the states unless asked otherwise (an
autoregressive GLM).

Priors tying the states together:

- ``"none"``: independent couplings per state (a tiny ridge keeps the fit defined);
- ``"gaussian"``: W[s] ~ N(mu, tau^2) around a shared mean coupling; mu and tau learned;
- ``"onehot"``: each W[s, n, m] has a type in {inhibitory, none, excitatory} drawn from
  a global prior pi[n, m] shared by all states, with a non-negative strength:
  W = (a_exc - a_inh) * strength. pi is learned, with a Dirichlet hyperprior whose mean
  is the learned overall frequency of each type (empirical Bayes) and whose
  concentration is ``type_concentration``.

Fitting is EM: exact forward-backward (analysis.hmmglm.hmm) for the states, the transition matrix
in closed form, and the GLM parameters by penalized Fisher scoring (second order, with
step halving) on all states and neurons at once. For the one-hot prior the paper samples
types with a Gumbel-softmax relaxation and trains by gradient descent; here the
expectation that relaxation estimates is computed exactly instead: each M-step takes the
Laplace (Gaussian) approximation of every coupling's likelihood, scores the three types
against it (a half-normal strength slab for the two signed types), updates pi from the
type posteriors, and passes the posterior-mean couplings to the next E-step. As in the
paper, evaluation is hard one-hot: the final model takes each coupling's most probable
type, then refits the strengths with "none" couplings fixed at zero and signs enforced.

This module holds the E-step, initialization, EM and the public ``fit``; the design
matrices and parameter set are in :mod:`analysis.hmmglm.model`, the M-step in
:mod:`analysis.hmmglm.mstep`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

from analysis.hmmglm import hmm
from analysis.hmmglm.model import (_EPS, _Data, _Params, _map, prepare_sequences, _replace, as_sequences,
                                   convolve_history, history_kernel, remove_baseline)
from analysis.hmmglm.mstep import _enforce_signs, m_step

__all__ = ["fit", "HMMGLMResult", "result_dataset", "history_kernel", "convolve_history", "as_sequences",
           "PRIORS", "EMISSIONS", "TYPE_NAMES"]

PRIORS = ("none", "gaussian", "onehot")
EMISSIONS = ("poisson", "gaussian")
TYPE_NAMES = ("inhibitory", "none", "excitatory")
INITS = ("pca-hmm", "kmeans", "random")


def _log_emission(data: _Data, p: _Params, emission: str, dtype=np.float32):
    """log p(y_t | z_t = s) for every real bin (M, S), in row chunks on the thread pool.
    The E-step works in float32 (posteriors do not need more, and it halves the cost);
    reported likelihoods use float64."""
    s_n, n_n, d = p.theta.shape
    theta = p.theta.reshape(s_n * n_n, d).T.astype(dtype)
    noise = None if p.noise is None else p.noise.astype(dtype)

    def chunk(rows):
        eta = (data.x[rows].astype(dtype) @ theta).reshape(-1, s_n, n_n)
        y = data.y[rows].astype(dtype)[:, None, :]
        if emission == "poisson":
            lam = expit(eta)
            lam *= 1 - _EPS
            lam += _EPS
            ll = y * np.log(lam) - lam
        else:
            ll = -0.5 * ((y - eta) ** 2 / noise + np.log(2 * np.pi * noise))
        if data.observed is not None:
            ll *= data.observed[rows][:, None, :]
        return ll.sum(-1, dtype=np.float64)

    bounds = np.linspace(0, len(data.y), 9).astype(int)
    parts = _map(data, chunk, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])
    out = np.concatenate(list(parts))
    return out - data.log_factorial[:, None] if emission == "poisson" else out


def e_step(data, p: _Params, emission, uniform_initial=False):
    n_s = p.theta.shape[0]
    log_em = data.to_grid(_log_emission(data, p, emission))
    initial = np.full(n_s, 1.0 / n_s) if uniform_initial else p.initial
    posterior, counts, log_lik = hmm.forward_backward(log_em, p.transition, initial, data.lengths)
    return posterior, counts, float(log_lik.sum())


def _initial_params(data, n_states, emission, prior, rng, options) -> _Params:
    """First responsibilities from a segmentation of the sequences, then one M-step.

    ``init="pca-hmm"``: the states of a Gaussian HMM on the leading principal components;
    ``"kmeans"``: windows of a quarter dwell are clustered by their mean activity
    (k-means++, standardized features), so that each state starts on stretches that look
    alike; ``"random"``: a random sticky segmentation. The dwell defaults to a twentieth
    of the median sequence, at least 10 bins."""
    dwell = options["mean_dwell"]
    if options["init"] == "pca-hmm":
        labels = _pca_hmm_segments(data, n_states, dwell, rng)
    elif options["init"] == "kmeans":
        labels = _kmeans_segments(data, n_states, max(5, dwell // 4), rng)
    else:
        labels = np.empty(len(data.y), dtype=int)
        for i, n_t in enumerate(data.lengths):
            t, lab = 0, np.empty(n_t, dtype=int)
            while t < n_t:
                k = int(rng.geometric(1.0 / dwell))
                lab[t:t + k] = rng.integers(n_states)
                t += k
            labels[data.seq == i] = lab[data.time[data.seq == i]]
    resp = np.zeros((len(data.y), n_states))
    resp[np.arange(len(data.y)), labels] = 1.0
    n_n = data.n_neurons
    stay = 1.0 - 1.0 / dwell
    p = _Params(theta=np.zeros((n_states, n_n, n_n + 1)),
                transition=np.full((n_states, n_states), (1 - stay) / max(n_states - 1, 1)) + np.eye(n_states) * (stay - (1 - stay) / max(n_states - 1, 1)),
                initial=np.full(n_states, 1.0 / n_states),
                noise=np.ones((n_states, n_n)) if emission == "gaussian" else None,
                mean=np.zeros((n_n, n_n)), tau2=1.0,
                global_prior=_initial_global_prior(n_n, options), slab=0.5)
    if emission == "gaussian":
        p = m_step(data, resp, p, "none", emission, options, 1)   # couplings first, then the noise
    return m_step(data, resp, p, prior, emission, options, options["newton_steps"] + 2)


def _pca_hmm_segments(data, n_states, dwell, rng, components: int = 5):
    """A state label per bin from a Gaussian HMM on the leading principal components of
    the activity (:func:`analysis.hmmglm.baselines.fit_gaussian_hmm`): it sees the levels
    the states hold, which an autoregressive GLM sees only through its innovations."""
    from analysis.hmmglm.baselines import fit_gaussian_hmm

    seqs = [data.y[data.seq == i] for i in range(len(data.lengths))]
    model = fit_gaussian_hmm(seqs, n_states, min(components, data.n_neurons), mean_dwell=dwell,
                             seed=int(rng.integers(2 ** 31)))
    labels = np.empty(len(data.y), dtype=int)
    for i, lab in enumerate(model.decode(seqs)):
        labels[data.seq == i] = lab
    return labels


def _kmeans_segments(data, n_states, width, rng):
    """A state label per bin: k-means of the windows' mean activity, each bin labelled
    by its window's cluster."""
    from scipy.cluster.vq import kmeans2

    window = data.seq * (data.n_time // width + 1) + data.time // width
    _, wid = np.unique(window, return_inverse=True)
    feats = np.zeros((wid.max() + 1, data.n_neurons))
    np.add.at(feats, wid, data.y)
    feats /= np.bincount(wid)[:, None]
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    _, lab = kmeans2(feats, n_states, seed=rng, minit="++")
    return lab[wid]


def _initial_global_prior(n, options):
    pi = options.get("global_prior_init")
    if pi is None:
        pi = np.broadcast_to(np.array([0.1, 0.8, 0.1]), (n, n, 3)).copy()
    return np.asarray(pi, dtype=float)


def _em(data, p, n_states, prior, emission, options, n_iter, tol, history):
    converged = False
    posterior = None
    n_bins = len(data.y)
    for _ in range(n_iter):
        posterior, counts, ll = e_step(data, p, emission)
        history.append(ll / n_bins)
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            converged = True
            break
        resp = posterior[data.seq, data.time]
        p = m_step(data, resp, p, prior, emission, options, options["newton_steps"])
        p.transition = hmm.update_transition(counts, options["stickiness"])
        p.initial = np.clip(posterior[:, 0].mean(0), 1e-6, None)
        p.initial /= p.initial.sum()
    return p, posterior, converged


@dataclass
class HMMGLMResult:
    """A fitted HMM-GLM. Weights are W[state, post, pre]; connection types are -1/0/1."""
    weights: np.ndarray
    bias: np.ndarray
    noise: np.ndarray | None
    transition_matrix: np.ndarray
    initial: np.ndarray
    connection_types: np.ndarray
    global_prior: np.ndarray | None
    type_probability: np.ndarray | None
    posterior: np.ndarray            # (n_seq, T, S), NaN in padding
    states: np.ndarray               # (n_seq, T), -1 in padding
    kernel: np.ndarray
    emission: str
    prior: str
    history: list = field(default_factory=list)     # training log-likelihood per bin, per EM iteration
    restarts: list = field(default_factory=list)    # held-out log-likelihood per bin of each restart after its warm-up
    best_restart: int = 0                            # the restart that was continued
    n_iter: int = 0
    converged: bool = False
    detrend: int | None = None       # the baseline window (bins) removed before fitting and decoding
    neurons: list | None = None      # neuron names, when fitted on a store
    sequences: list | None = None    # worm ids, when fitted on a store

    def _params(self):
        theta = np.concatenate([self.weights, self.bias[..., None]], -1)
        return _Params(theta=theta, transition=self.transition_matrix, initial=self.initial, noise=self.noise)

    def _data(self, data):
        seqs = as_sequences(data)
        if seqs[0].shape[1] != self.weights.shape[1]:
            raise ValueError(f"the model has {self.weights.shape[1]} neurons, the data {seqs[0].shape[1]}")
        if self.detrend:
            seqs = [remove_baseline(x, self.detrend) for x in seqs]
        return prepare_sequences(seqs, self.kernel)

    def log_likelihood(self, data, uniform_initial: bool = True) -> float:
        """Log-likelihood of held-out ``data`` per time bin (forward algorithm, summed over
        sequences, divided by the number of bins); the initial state is uniform unless
        ``uniform_initial`` is False."""
        d = self._data(data)
        p = self._params()
        n_s = len(p.initial)
        log_em = d.to_grid(_log_emission(d, p, self.emission, np.float64))
        initial = np.full(n_s, 1.0 / n_s) if uniform_initial else p.initial
        return float(hmm.sequence_log_likelihood(log_em, p.transition, initial, d.lengths).sum() / len(d.y))

    def decode(self, data, uniform_initial: bool = True):
        """(posterior (n_seq, T, S), most probable state per bin (n_seq, T)) for ``data``;
        the state per bin is the posterior's argmax (``viterbi`` gives the best path)."""
        d = self._data(data)
        p = self._params()
        posterior, _, _ = e_step(d, p, self.emission, uniform_initial)
        states = posterior.argmax(-1)
        real = np.arange(d.n_time)[None, :] < d.lengths[:, None]
        return np.where(real[..., None], posterior, np.nan), np.where(real, states, -1)

    def viterbi(self, data, uniform_initial: bool = True):
        d = self._data(data)
        p = self._params()
        n_s = len(p.initial)
        log_em = d.to_grid(_log_emission(d, p, self.emission))
        initial = np.full(n_s, 1.0 / n_s) if uniform_initial else p.initial
        return hmm.viterbi(log_em, p.transition, initial, d.lengths)


def fit_threads() -> int:
    """Threads one fit uses: the cores this process may run on, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def fit(data, n_states: int, prior: str = "onehot", emission: str = "poisson", *,
        window: int | None = None, decay: float = 1.0, n_restarts: int = 4, warmup_iter: int = 5,
        warmup_fraction: float = 0.34, init: str | None = None,
        max_iter: int = 100, tol: float = 1e-5, newton_steps: int = 1, ridge: float = 1e-3,
        type_concentration: float = 2.0, global_prior_init=None, prior_mean=None, stickiness: float = 0.0,
        mean_dwell: int | None = None, threshold: float = 0.1, detrend: int | None = None,
        free_diagonal: bool | None = None, slab_floor: float | None = None, shared_noise: bool | None = None, seed: int = 0,
        store_options: dict | None = None) -> HMMGLMResult:
    """Fit an HMM-GLM to ``data``: an array (sequences, time, neurons), a list of
    (time, neurons) arrays (NaN where unobserved), or an activity-store Dataset, whose
    worms become sequences by ``analysis.sequences.store_sequences(ds, **store_options)``.

    window: history bins (default 5 for Poisson, 1 for Gaussian); decay: the kernel's rate;
    n_restarts starts, each from its own first segmentation, run ``warmup_iter`` EM
    iterations on the fit part of a held-out split of the sequences (a random
    ``warmup_fraction`` of it when it has many sequences); the best by held-out
    log-likelihood continues on all sequences to convergence (change in log-likelihood per
    bin < tol; ``converged`` says whether it got there within ``max_iter``); newton_steps:
    Fisher-scoring steps per M-step; ridge: L2 on couplings for the plain and one-hot fits;
    type_concentration, global_prior_init: the one-hot prior's hyperprior strength and
    starting pi (N, N, 3), e.g. from the connectome; prior_mean: (N, N, 3) mean of the
    hyperprior, which then pulls pi toward it at every M-step (default: the learned
    overall type frequencies); stickiness: pseudo-counts on self-transitions;
    threshold: |W| above which plain and Gaussian-prior couplings count as connections.

    Calcium (Gaussian emission) differs from spikes in three ways the defaults follow:
    init "pca-hmm" (a Gaussian HMM on the leading principal components: states are levels
    held for a while, which a lag-1 GLM sees only through its small innovations; "kmeans"
    and "random" are the spike defaults), ``free_diagonal`` True (a neuron's coupling to its
    own past is its indicator's decay, present in every state: it is fitted, never typed
    "none" and kept out of the synapses' prior), ``slab_floor`` 0.1 (the one-hot slab's
    scale in z-scored units is learned but never below it) and ``shared_noise`` True (each
    neuron's noise variance is one for all states: how noisy a recording is differs
    between worms, and states told apart by it do not carry over to a worm the model did
    not see, so the states must differ by their dynamics). ``detrend`` (bins): a centred
    running mean of that width is subtracted from every trace before the fit and before
    any later decoding, so that slow drifts (bleaching, slow modulation) are not taken for
    states; None (default) fits the traces as given."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if emission not in EMISSIONS:
        raise ValueError(f"emission must be one of {', '.join(EMISSIONS)}, got {emission!r}")
    gaussian = emission == "gaussian"
    init = init or ("pca-hmm" if gaussian else "kmeans")
    free_diagonal = gaussian if free_diagonal is None else bool(free_diagonal)
    slab_floor = (0.1 if gaussian else 0.0) if slab_floor is None else float(slab_floor)
    shared_noise = gaussian if shared_noise is None else bool(shared_noise)
    if detrend is not None and detrend < 3:
        raise ValueError(f"detrend must be a window of at least 3 bins, got {detrend}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if n_states < 1:
        raise ValueError(f"n_states must be at least 1, got {n_states}")
    worms = neurons = None
    if hasattr(data, "data_vars"):
        from analysis.sequences import store_sequences
        seqs, worms, neurons = store_sequences(data, **(store_options or {}))
    else:
        seqs = as_sequences(data)
    if detrend:
        seqs = [remove_baseline(x, detrend) for x in seqs]
    if emission == "poisson":
        for i, s in enumerate(seqs):
            v = s[~np.isnan(s)]
            if (v < 0).any() or (v != np.round(v)).any():
                raise ValueError(f"sequence {i}: Poisson emission needs non-negative integer counts")
    kernel = history_kernel(window or (5 if emission == "poisson" else 1), decay)
    d = prepare_sequences(seqs, kernel)
    options = dict(ridge=ridge, type_concentration=type_concentration, newton_steps=newton_steps,
                   stickiness=stickiness, mean_dwell=mean_dwell or max(10, int(np.median(d.lengths)) // 20),
                   global_prior_init=global_prior_init, prior_mean=prior_mean, init=init,
                   free_diagonal=free_diagonal, slab_floor=slab_floor, shared_noise=shared_noise)
    rng = np.random.default_rng(seed)
    # the states and emission chunks run on a thread pool; one BLAS thread per task keeps
    # the pool and OpenBLAS from fighting over the same cores
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=fit_threads()) as pool:
        d.pool = pool
        try:
            p, posterior, history, starts, converged, best = _fit_em(
                d, seqs, kernel, n_states, prior, emission, options, rng, n_restarts, warmup_iter,
                warmup_fraction, max_iter, tol, newton_steps)
        finally:
            d.pool = None
    w = p.theta[..., :-1]
    if prior == "onehot":
        types = p.fixed
    else:
        types = (np.sign(w) * (np.abs(w) > threshold)).astype(np.int8)
    real = np.arange(d.n_time)[None, :] < d.lengths[:, None]
    return HMMGLMResult(
        weights=w, bias=p.theta[..., -1], noise=p.noise, transition_matrix=p.transition, initial=p.initial,
        connection_types=np.asarray(types, dtype=np.int8), global_prior=p.global_prior if prior == "onehot" else None,
        type_probability=p.type_prob if prior == "onehot" else None, posterior=np.where(real[..., None], posterior, np.nan),
        states=np.where(real, posterior.argmax(-1), -1), kernel=kernel, emission=emission, prior=prior,
        history=history, restarts=[s[0] for s in starts], best_restart=best, n_iter=len(history), converged=converged,
        detrend=detrend,
        neurons=neurons, sequences=worms)


def _holdout(seqs, kernel, rng, fraction: float = 0.25):
    """(fit data, validation data) for choosing among restarts: a random ``fraction`` of
    the sequences is held out (at least one, and one sequence is always kept to fit);
    with fewer than three sequences, the last ``fraction`` of every sequence is."""
    if len(seqs) >= 3:
        n_val = max(1, int(round(fraction * len(seqs))))
        val = set(rng.choice(len(seqs), n_val, replace=False).tolist())
        fit_part = [s for i, s in enumerate(seqs) if i not in val]
        val_part = [s for i, s in enumerate(seqs) if i in val]
    else:
        cut = [int(round((1 - fraction) * len(s))) for s in seqs]
        fit_part = [s[:c] for s, c in zip(seqs, cut)]
        val_part = [s[c:] for s, c in zip(seqs, cut)]
    return prepare_sequences(fit_part, kernel), prepare_sequences(as_sequences(val_part), kernel)


def _fit_em(d, seqs, kernel, n_states, prior, emission, options, rng, n_restarts, warmup_iter, warmup_fraction,
            max_iter, tol, newton_steps):
    """Restarts chosen by held-out likelihood, EM to convergence on all sequences and, for
    the one-hot prior, the hard refit.

    Each restart starts from its own segmentation of the fit part (all of it, or a random
    ``warmup_fraction`` of its sequences when it has many), runs ``warmup_iter`` EM
    iterations, and is scored by its log-likelihood per bin on the held-out part (see
    :func:`_holdout`): a start that only fits its own bins better (a state that
    over-fits a few stretches, or one that has died) does not win."""
    fit_d, val_d = _holdout(seqs, kernel, rng) if n_restarts > 1 else (d, d)
    n_seq = len(fit_d.lengths)
    # a warm-up on a handful of sequences lets a rare state over-fit them or die: subsets
    # only when the fit part is large
    n_sub = n_seq if n_seq < 24 else max(12, int(np.ceil(warmup_fraction * n_seq)))
    fit_d.pool = val_d.pool = d.pool
    starts = []
    for _ in range(max(n_restarts, 1)):
        sub = fit_d if n_sub == n_seq else fit_d.subset(np.sort(rng.choice(n_seq, n_sub, replace=False)))
        sub.pool = d.pool
        p_r = _initial_params(sub, n_states, emission, prior, rng, options)
        p_r, post_r, _ = _em(sub, p_r, n_states, prior, emission, options, warmup_iter, tol, [])
        alive = True
        if post_r is not None:
            occupancy = np.bincount(post_r[sub.seq, sub.time].argmax(-1), minlength=n_states) / len(sub.y)
            alive = bool(occupancy.min() > 0.005)
        starts.append((_validation_ll(val_d, p_r, emission), p_r, alive))
    fit_d.pool = val_d.pool = None
    # a start in which a state holds (almost) no bin is a fit with fewer states: it wins
    # only if every start lost a state
    alive = [i for i in range(len(starts)) if starts[i][2]] or list(range(len(starts)))
    best = max(alive, key=lambda i: starts[i][0])
    p = starts[best][1]
    history: list = []
    p, posterior, converged = _em(d, p, n_states, prior, emission, options, max_iter, tol, history)
    if prior == "onehot":
        types = np.argmax(p.type_prob, -1) - 1
        hard = _replace(p, theta=_enforce_signs(p.raw, types), fixed=types, raw=None)
        resp = posterior[d.seq, d.time]
        p = m_step(d, resp, hard, prior, emission, options, newton_steps + 4)
        p, posterior, _ = _em(d, p, n_states, prior, emission, options, 3, tol, history)
    posterior, _, _ = e_step(d, p, emission)
    return p, posterior, history, starts, converged, best


def _validation_ll(val_d, p, emission) -> float:
    """Log-likelihood per bin of held-out sequences (uniform initial state); for the
    one-hot prior at its hard types, as the final model will be evaluated."""
    if p.type_prob is not None and p.raw is not None:
        p = _replace(p, theta=_enforce_signs(p.raw, np.argmax(p.type_prob, -1) - 1))
    return e_step(val_d, p, emission, uniform_initial=True)[2] / len(val_d.y)


def result_dataset(result: HMMGLMResult, params: dict | None = None, dt: float | None = None):
    """The fit as an ``xarray.Dataset``: weights, connection types and their probabilities
    (state, post, pre[, type]), the global prior (post, pre, type), transitions, and the
    posterior and state path per sequence and time.

    A fit of an activity store's worms (``result.sequences`` are worm ids) given the store's
    grid step ``dt`` is laid out on the store's coordinates: dims ``worm`` and ``time`` in
    seconds (the store's grid, from 0), so ``xr.align`` with the store pairs the same
    moments. Otherwise dims ``sequence`` and ``time`` in bins."""
    import xarray as xr

    s_n, n_n, _ = result.weights.shape
    names = result.neurons or [f"n{i}" for i in range(n_n)]
    seqs = result.sequences or [f"seq{i}" for i in range(result.posterior.shape[0])]
    on_store = bool(result.sequences) and dt is not None
    seq_dim = "worm" if on_store else "sequence"
    n_time = result.posterior.shape[1]
    time = np.arange(n_time) * float(dt) if on_store else np.arange(n_time)
    coords = {"state": np.arange(s_n), "post": names, "pre": names, "type": list(TYPE_NAMES),
              seq_dim: seqs, "time": ("time", time, {"units": "s"} if on_store else {"units": "bins"}),
              "to_state": np.arange(s_n)}
    data = {
        "weights": (("state", "post", "pre"), result.weights),
        "bias": (("state", "post"), result.bias),
        "connection_types": (("state", "post", "pre"), result.connection_types),
        "transition_matrix": (("state", "to_state"), result.transition_matrix),
        "initial": (("state",), result.initial),
        "posterior": ((seq_dim, "time", "state"), result.posterior.astype(np.float32)),
        "states": ((seq_dim, "time"), result.states.astype(np.int16)),
        "log_likelihood_history": (("iteration",), np.asarray(result.history)),
        "kernel": (("lag",), result.kernel),
    }
    if result.noise is not None:
        data["noise"] = (("state", "post"), result.noise)
    if result.global_prior is not None:
        data["global_prior"] = (("post", "pre", "type"), result.global_prior)
        data["type_probability"] = (("state", "post", "pre", "type"), result.type_probability.astype(np.float32))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"emission": result.emission, "prior": result.prior, "n_iter": result.n_iter,
                     "converged": int(result.converged), "best_restart": int(result.best_restart),
                     "restart_heldout_ll": [float(v) for v in result.restarts],
                     "detrend_bins": int(result.detrend or 0), "layout": "weights[state, post, pre]; types -1 inh, 0 none, 1 exc"})
    if params:
        ds.attrs.update(params)
    return ds
