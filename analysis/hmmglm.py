"""State-switching GLMs: an HMM whose every state has its own neuron-to-neuron coupling.

Model (after Li, Kim, Rodgers, Choi & Wu, ICLR 2024): a hidden state z_t follows a Markov
chain; given z_t = s, neuron n's activity at t depends on the recent activity of every
neuron m through W[s, n, m] (post, pre) and a bias b[s, n]:

    eta[t, n] = b[s, n] + sum_m W[s, n, m] * h[t, m],   h[t, m] = sum_k phi_k y[t - k, m]

with a fixed history kernel phi (normalized exponential over ``window`` bins; a single
lag for calcium). Emissions: Poisson counts with rate sigmoid(eta) (the paper's link, so
at most one expected event per bin), or Gaussian calcium with mean eta and a learned
noise variance per state and neuron (an autoregressive GLM).

Priors tying the states together:

- ``"none"``: independent couplings per state (a tiny ridge keeps the fit defined);
- ``"gaussian"``: W[s] ~ N(mu, tau^2) around a shared mean coupling; mu and tau learned;
- ``"onehot"``: each W[s, n, m] has a type in {inhibitory, none, excitatory} drawn from
  a global prior pi[n, m] shared by all states, with a non-negative strength:
  W = (a_exc - a_inh) * strength. pi is learned, with a Dirichlet hyperprior whose mean
  is the learned overall frequency of each type (empirical Bayes) and whose
  concentration is ``type_concentration``.

Fitting is EM: exact forward-backward (analysis.hmm) for the states, the transition matrix
in closed form, and the GLM parameters by penalized Fisher scoring (second order, with
step halving) on all states and neurons at once. For the one-hot prior the paper samples
types with a Gumbel-softmax relaxation and trains by gradient descent; here the
expectation that relaxation estimates is computed exactly instead: each M-step takes the
Laplace (Gaussian) approximation of every coupling's likelihood, scores the three types
against it (a half-normal strength slab for the two signed types), updates pi from the
type posteriors, and passes the posterior-mean couplings to the next E-step. As in the
paper, evaluation is hard one-hot: the final model takes each coupling's most probable
type, then refits the strengths with "none" couplings fixed at zero and signs enforced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, gammaln, log_ndtr
from threadpoolctl import threadpool_limits

from analysis import hmm

PRIORS = ("none", "gaussian", "onehot")
EMISSIONS = ("poisson", "gaussian")
TYPE_NAMES = ("inhibitory", "none", "excitatory")
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


def _prepare(seqs, kernel) -> _Data:
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
    parts = _pool().map(chunk, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])
    out = np.concatenate(list(parts))
    return out - data.log_factorial[:, None] if emission == "poisson" else out


def _glm_terms(x, y, weight, theta, emission, noise):
    """Penalty-free objective per neuron, its score and Fisher weights per bin, for one
    state's bins: x (m, D), y and weight (m, N), theta (N, D), noise (N,) or None."""
    eta = x @ theta.T
    if emission == "poisson":
        sig = expit(eta)
        lam = (1 - _EPS) * sig + _EPS
        dlam = (1 - _EPS) * sig * (1 - sig)
        value = (weight * (y * np.log(lam) - lam)).sum(0)
        score = weight * (y / lam - 1) * dlam
        fisher = weight * dlam ** 2 / lam
    else:
        r = y - eta
        value = -0.5 * (weight * r ** 2).sum(0) / noise
        score = weight * r / noise
        fisher = weight / noise
    return value, score, fisher


def _newton(data: _Data, resp, p: _Params, emission: str, precision, centre, steps: int,
            cutoff: float = 1e-3):
    """Fisher scoring on sum_t resp[t, s] log p(y_tn | theta_sn) - 0.5 sum precision *
    (theta - centre)^2, for all neurons of a state at once with step halving per neuron;
    states run in parallel threads. Bins whose responsibility for a state is below
    ``cutoff`` are left out of that state's fit: their total weight is negligible, and
    once the states separate it saves most of the work. Returns theta and the curvature
    (S, N, D, D) of the likelihood part."""
    s_n, n_n, d = p.theta.shape

    def one_state(s):
        idx = np.flatnonzero(resp[:, s] > cutoff)
        if idx.size == 0:
            return p.theta[s], np.broadcast_to(np.eye(d), (n_n, d, d))
        fixed = None if p.fixed is None else p.fixed[s]
        noise = None if p.noise is None else p.noise[s]
        observed = None if data.observed is None else data.observed[idx]
        return _newton_state(data.x[idx], data.y[idx], resp[idx, s], observed, data.outer_rows(idx),
                             p.theta[s], noise, fixed, emission, precision[s], centre[s], steps)

    done = list(_pool().map(one_state, range(s_n)))
    return np.stack([t for t, _ in done]), np.stack([c for _, c in done])


def _newton_state(x, y, r, observed, outer, th, noise, fixed, emission, prec, cen, steps):
    n_n, d = th.shape
    eye = np.eye(d)
    weight = np.broadcast_to(r[:, None], y.shape) if observed is None else r[:, None] * observed
    free = None if fixed is None else np.concatenate([fixed != 0, np.ones((n_n, 1), bool)], -1)
    value, score, fisher = _glm_terms(x, y, weight, th, emission, noise)
    value = value - 0.5 * (prec * (th - cen) ** 2).sum(-1)
    curv = None
    for _ in range(steps):
        grad = score.T @ x - prec * (th - cen)
        curv = _gram(outer, fisher)
        h = curv + prec[:, :, None] * eye
        if free is not None:
            grad = grad * free
            h = np.where(free[:, :, None] & free[:, None, :], h, eye)
        step = np.linalg.solve(h + 1e-9 * eye, grad[..., None])[..., 0]
        size = np.ones(n_n)
        for _halving in range(8):
            trial = th + size[:, None] * step
            if fixed is not None:
                trial = _enforce_signs(trial, fixed)
            t_value, t_score, t_fisher = _glm_terms(x, y, weight, trial, emission, noise)
            t_value = t_value - 0.5 * (prec * (trial - cen) ** 2).sum(-1)
            worse = t_value < value - 1e-9 * np.abs(value)
            if not worse.any():
                break
            size = np.where(worse, size / 2, size)
        keep = ~worse
        th = np.where(keep[:, None], trial, th)
        value = np.where(keep, t_value, value)
        score = np.where(keep, t_score, score)
        fisher = np.where(keep, t_fisher, fisher)
    if curv is None:
        curv = _gram(outer, fisher)
    return th, curv


_POOL = None


def _pool():
    """A small thread pool: numpy's element-wise and BLAS work releases the GIL, so the
    states' fits and the emission chunks run side by side on the available cores."""
    global _POOL
    if _POOL is None:
        import os
        from concurrent.futures import ThreadPoolExecutor
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, len(os.sched_getaffinity(0)))))
    return _POOL


def _enforce_signs(theta, fixed):
    w = theta[..., :-1]
    w = np.where(fixed > 0, np.maximum(w, 0), np.where(fixed < 0, np.minimum(w, 0), 0.0))
    return np.concatenate([w, theta[..., -1:]], -1)


def _outer(x):
    """The design rows' outer products (m, D*D) in float32, the operand of ``_gram``."""
    x = x.astype(np.float32)
    return (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)


def _gram(outer, weights):
    """sum_m weights[m, n] x[m] x[m]^T for every n (N, D, D) as one float32 matrix product
    (ample precision for a Newton direction, at half the cost)."""
    d = int(round(np.sqrt(outer.shape[1])))
    g = np.ascontiguousarray(weights.T, dtype=np.float32) @ outer
    return g.reshape(-1, d, d).astype(np.float64)


def _type_posterior(theta, curv, p: _Params):
    """Per coupling: the posterior over {inh, none, exc} under the Laplace approximation
    N(w; w_hat, v) of its likelihood, and the posterior-mean coupling.

    v is the marginal variance (inverse curvature) of each coupling; the signed types have
    a half-normal strength of scale ``p.slab``. Returns (q (S, N, N, 3), E[w] (S, N, N),
    E[w^2 | signed] weighted by q, for the slab update)."""
    d = theta.shape[-1]
    cov = np.linalg.inv(curv + 1e-6 * np.eye(d))
    v = np.maximum(np.diagonal(cov, axis1=-2, axis2=-1)[..., :-1], 1e-10)
    w = theta[..., :-1]
    s2 = p.slab ** 2
    log_none = -0.5 * (w ** 2 / v + np.log(2 * np.pi * v))
    tot = v + s2
    log_slab = np.log(2.0) - 0.5 * (w ** 2 / tot + np.log(2 * np.pi * tot))
    mu = w * s2 / tot                       # the coupling's posterior under the slab, before truncation
    sd = np.sqrt(v * s2 / tot)
    z = mu / sd
    log_pos, log_neg = log_ndtr(z), log_ndtr(-z)
    log_ev = np.stack([log_slab + log_neg, log_none, log_slab + log_pos], -1)
    log_q = log_ev + np.log(p.global_prior)[None]
    log_q -= log_q.max(-1, keepdims=True)
    q = np.exp(log_q)
    q /= q.sum(-1, keepdims=True)
    log_phi = -0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)
    lam_pos = np.exp(log_phi - log_pos)     # inverse Mills ratios of the two truncations,
    lam_neg = np.exp(log_phi - log_neg)     # in log space so that far tails stay finite
    mean_pos, mean_neg = mu + sd * lam_pos, mu - sd * lam_neg
    mean = q[..., 2] * mean_pos + q[..., 0] * mean_neg
    second = (q[..., 2] * (sd ** 2 + mu ** 2 + mu * sd * lam_pos)
              + q[..., 0] * (sd ** 2 + mu ** 2 - mu * sd * lam_neg))
    return q, mean, second


def _m_step(data, resp, p: _Params, prior, emission, options, steps):
    s_n, n_n, d = p.theta.shape
    precision = np.zeros((s_n, n_n, d))
    centre = np.zeros((s_n, n_n, d))
    precision[..., -1] = 1e-6
    if prior == "gaussian" and p.fixed is None:
        precision[..., :-1] = 1.0 / p.tau2
        centre[..., :-1] = p.mean[None]
    else:
        precision[..., :-1] = options["ridge"]
    start = p.theta if p.raw is None else p.raw
    theta, curv = _newton(data, resp, _replace(p, theta=start), emission, precision, centre, steps)
    new = _replace(p, theta=theta)
    if emission == "gaussian":
        eta = _linear(data, theta)
        w = resp[:, :, None] if data.observed is None else resp[:, :, None] * data.observed[:, None, :]
        new.noise = np.maximum((w * (data.y[:, None, :] - eta) ** 2).sum(0) / np.maximum(w.sum(0), 1e-12),
                               _VAR_FLOOR)
    if p.fixed is not None:
        return new
    if prior == "gaussian":
        new.mean = theta[..., :-1].mean(0)
        new.tau2 = float(max(((theta[..., :-1] - new.mean) ** 2).mean(), 1e-4))
    elif prior == "onehot":
        q, mean, second = _type_posterior(theta, curv, p)
        signed = q[..., 0] + q[..., 2]
        new.slab = float(np.sqrt(max(second.sum() / max(signed.sum(), 1e-12), 1e-4)))
        # the hyperprior's mean: a given prior (e.g. the connectome's), else the learned type frequencies
        hyper_mean = options.get("prior_mean")
        alpha = options["type_concentration"] * (q.mean((0, 1, 2)) if hyper_mean is None else hyper_mean)
        new.global_prior = (q.sum(0) + alpha) / (s_n + np.sum(alpha, -1, keepdims=True))
        new.type_prob = q
        new.raw = theta
        new.theta = np.concatenate([mean, theta[..., -1:]], -1)
    return new


def _replace(p: _Params, **changes) -> _Params:
    values = {f: getattr(p, f) for f in p.__dataclass_fields__}
    values.update(changes)
    return _Params(**values)


def _e_step(data, p: _Params, emission, uniform_initial=False):
    n_s = p.theta.shape[0]
    log_em = data.to_grid(_log_emission(data, p, emission))
    initial = np.full(n_s, 1.0 / n_s) if uniform_initial else p.initial
    posterior, counts, log_lik = hmm.forward_backward(log_em, p.transition, initial, data.lengths)
    return posterior, counts, float(log_lik.sum())


def _initial_params(data, n_states, emission, prior, rng, options) -> _Params:
    """First responsibilities from a segmentation of the sequences, then one M-step.

    ``init="kmeans"``: windows of a quarter dwell are clustered by their mean activity
    (k-means++, standardized features), so that each state starts on stretches that look
    alike; ``"random"``: a random sticky segmentation. The dwell defaults to a twentieth
    of the median sequence, at least 10 bins."""
    dwell = options["mean_dwell"]
    if options["init"] == "kmeans":
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
        p = _m_step(data, resp, p, "none", emission, options, 1)   # couplings first, then the noise
    return _m_step(data, resp, p, prior, emission, options, options["newton_steps"] + 2)


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
        posterior, counts, ll = _e_step(data, p, emission)
        history.append(ll / n_bins)
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            converged = True
            break
        resp = posterior[data.seq, data.time]
        p = _m_step(data, resp, p, prior, emission, options, options["newton_steps"])
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
    restarts: list = field(default_factory=list)    # warm-up log-likelihood per bin of each restart
    n_iter: int = 0
    converged: bool = False
    neurons: list | None = None      # neuron names, when fitted on a store
    sequences: list | None = None    # worm ids, when fitted on a store

    def _params(self):
        theta = np.concatenate([self.weights, self.bias[..., None]], -1)
        return _Params(theta=theta, transition=self.transition_matrix, initial=self.initial, noise=self.noise)

    def _data(self, data):
        seqs = as_sequences(data)
        if seqs[0].shape[1] != self.weights.shape[1]:
            raise ValueError(f"the model has {self.weights.shape[1]} neurons, the data {seqs[0].shape[1]}")
        return _prepare(seqs, self.kernel)

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
        posterior, _, _ = _e_step(d, p, self.emission, uniform_initial)
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


def fit(data, n_states: int, prior: str = "onehot", emission: str = "poisson", *,
        window: int | None = None, decay: float = 1.0, n_restarts: int = 4, warmup_iter: int = 5,
        warmup_fraction: float = 0.34, init: str = "kmeans",
        max_iter: int = 100, tol: float = 1e-5, newton_steps: int = 1, ridge: float = 1e-3,
        type_concentration: float = 2.0, global_prior_init=None, prior_mean=None, stickiness: float = 0.0,
        mean_dwell: int | None = None, threshold: float = 0.1, seed: int = 0,
        store_options: dict | None = None) -> HMMGLMResult:
    """Fit an HMM-GLM to ``data``: an array (sequences, time, neurons), a list of
    (time, neurons) arrays (NaN where unobserved), or an activity-store Dataset, whose
    worms become sequences by ``analysis.brainstates.store_sequences(ds, **store_options)``.

    window: history bins (default 5 for Poisson, 1 for Gaussian); decay: the kernel's rate;
    n_restarts random starts run ``warmup_iter`` EM iterations each on a random
    ``warmup_fraction`` of the sequences (all of them when there are few), and the best,
    by its log-likelihood on all sequences, continues to convergence (change in log-likelihood per bin < tol); newton_steps: Fisher-scoring
    steps per M-step; ridge: L2 on couplings for the plain and one-hot fits;
    type_concentration, global_prior_init: the one-hot prior's hyperprior strength and
    starting pi (N, N, 3), e.g. from the connectome; prior_mean: (N, N, 3) mean of the
    hyperprior, which then pulls pi toward it at every M-step (default: the learned
    overall type frequencies); stickiness: pseudo-counts on
    self-transitions; init: "kmeans" (default) or "random" first segmentation;
    threshold: |W| above which plain and Gaussian-prior couplings count
    as connections."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if emission not in EMISSIONS:
        raise ValueError(f"emission must be one of {', '.join(EMISSIONS)}, got {emission!r}")
    if init not in ("kmeans", "random"):
        raise ValueError(f"init must be 'kmeans' or 'random', got {init!r}")
    if n_states < 1:
        raise ValueError(f"n_states must be at least 1, got {n_states}")
    worms = neurons = None
    if hasattr(data, "data_vars"):
        from analysis.brainstates import store_sequences
        seqs, worms, neurons = store_sequences(data, **(store_options or {}))
    else:
        seqs = as_sequences(data)
    if emission == "poisson":
        for i, s in enumerate(seqs):
            v = s[~np.isnan(s)]
            if (v < 0).any() or (v != np.round(v)).any():
                raise ValueError(f"sequence {i}: Poisson emission needs non-negative integer counts")
    kernel = history_kernel(window or (5 if emission == "poisson" else 1), decay)
    d = _prepare(seqs, kernel)
    options = dict(ridge=ridge, type_concentration=type_concentration, newton_steps=newton_steps,
                   stickiness=stickiness, mean_dwell=mean_dwell or max(10, int(np.median(d.lengths)) // 20),
                   global_prior_init=global_prior_init, prior_mean=prior_mean, init=init)
    rng = np.random.default_rng(seed)
    # the states and emission chunks run on a thread pool; one BLAS thread per task keeps
    # the pool and OpenBLAS from fighting over the same cores
    with threadpool_limits(limits=1, user_api="blas"):
        p, posterior, history, starts, converged = _fit_em(d, n_states, prior, emission, options, rng,
                                                           n_restarts, warmup_iter, warmup_fraction,
                                                           max_iter, tol, newton_steps)
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
        history=history, restarts=[s[0] for s in starts], n_iter=len(history), converged=converged,
        neurons=neurons, sequences=worms)


def _fit_em(d, n_states, prior, emission, options, rng, n_restarts, warmup_iter, warmup_fraction,
            max_iter, tol, newton_steps):
    """Restarts, EM to convergence and, for the one-hot prior, the hard refit."""
    n_seq = len(d.lengths)
    n_sub = n_seq if n_seq < 6 else max(3, int(np.ceil(warmup_fraction * n_seq)))
    starts = []
    for _ in range(max(n_restarts, 1)):
        sub = d if n_sub == n_seq else d.subset(np.sort(rng.choice(n_seq, n_sub, replace=False)))
        p_r = _initial_params(sub, n_states, emission, prior, rng, options)
        p_r, _, _ = _em(sub, p_r, n_states, prior, emission, options, warmup_iter, tol, [])
        starts.append((_e_step(d, p_r, emission)[2] / len(d.y), p_r))
    best = max(range(len(starts)), key=lambda i: starts[i][0])
    p = starts[best][1]
    history: list = []
    p, posterior, converged = _em(d, p, n_states, prior, emission, options, max_iter, tol, history)
    if prior == "onehot":
        types = np.argmax(p.type_prob, -1) - 1
        hard = _replace(p, theta=_enforce_signs(p.raw, types), fixed=types, raw=None)
        resp = posterior[d.seq, d.time]
        p = _m_step(d, resp, hard, prior, emission, options, newton_steps + 4)
        p, posterior, _ = _em(d, p, n_states, prior, emission, options, 3, tol, history)
    posterior, _, _ = _e_step(d, p, emission)
    return p, posterior, history, starts, converged


def result_dataset(result: HMMGLMResult, params: dict | None = None):
    """The fit as an ``xarray.Dataset``: weights, connection types and their probabilities
    (state, post, pre[, type]), the global prior (post, pre, type), transitions, and the
    posterior and state path per (sequence, time)."""
    import xarray as xr

    s_n, n_n, _ = result.weights.shape
    names = result.neurons or [f"n{i}" for i in range(n_n)]
    seqs = result.sequences or [f"seq{i}" for i in range(result.posterior.shape[0])]
    coords = {"state": np.arange(s_n), "post": names, "pre": names, "type": list(TYPE_NAMES),
              "sequence": seqs, "time": np.arange(result.posterior.shape[1]), "to_state": np.arange(s_n)}
    data = {
        "weights": (("state", "post", "pre"), result.weights),
        "bias": (("state", "post"), result.bias),
        "connection_types": (("state", "post", "pre"), result.connection_types),
        "transition_matrix": (("state", "to_state"), result.transition_matrix),
        "initial": (("state",), result.initial),
        "posterior": (("sequence", "time", "state"), result.posterior.astype(np.float32)),
        "states": (("sequence", "time"), result.states.astype(np.int16)),
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
                     "converged": int(result.converged), "layout": "weights[state, post, pre]; types -1 inh, 0 none, 1 exc"})
    if params:
        ds.attrs.update(params)
    return ds
