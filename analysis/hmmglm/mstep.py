"""The HMM-GLM's M-step: penalized Fisher scoring of every state's GLM, and for the one-hot
prior the exact type posterior of each coupling (see :mod:`analysis.hmmglm`)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_ndtr

from analysis.hmmglm.model import _EPS, _VAR_FLOOR, _Data, _Params, _linear, _map, _replace


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

    done = _map(data, one_state, range(s_n))
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


def _enforce_signs(theta, fixed):
    w = theta[..., :-1]
    w = np.where(fixed > 0, np.maximum(w, 0), np.where(fixed < 0, np.minimum(w, 0), 0.0))
    return np.concatenate([w, theta[..., -1:]], -1)


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


def m_step(data, resp, p: _Params, prior, emission, options, steps):
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
        sq, n_w = (w * (data.y[:, None, :] - eta) ** 2).sum(0), w.sum(0)
        if options.get("shared_noise"):
            sq, n_w = np.broadcast_to(sq.sum(0), sq.shape), np.broadcast_to(n_w.sum(0), n_w.shape)
        new.noise = np.maximum(sq / np.maximum(n_w, 1e-12), _VAR_FLOOR)
    if p.fixed is not None:
        return new
    if prior == "gaussian":
        new.mean = theta[..., :-1].mean(0)
        new.tau2 = float(max(((theta[..., :-1] - new.mean) ** 2).mean(), 1e-4))
    elif prior == "onehot":
        q, mean, second = _type_posterior(theta, curv, p)
        pairs = np.ones((n_n, n_n), bool)
        if options.get("free_diagonal"):
            # a neuron's coupling to its own past is its indicator's decay and its own
            # persistence, present in every state: it keeps its fitted value, typed by its sign,
            # and stays out of the slab and of the type frequencies the synapses share
            i = np.arange(n_n)
            w_self = theta[:, i, i]
            q[:, i, i] = np.where(w_self[..., None] >= 0, [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
            mean[:, i, i], second[:, i, i] = w_self, 0.0
            pairs[i, i] = False
        signed = (q[..., 0] + q[..., 2])[:, pairs]
        # the slab's scale is learned from the signed couplings, but never below the floor: with
        # many neurons, noise-sized couplings would otherwise teach the slab that connections
        # are noise-sized, and every coupling would then look like one
        new.slab = max(float(np.sqrt(max(second[:, pairs].sum() / max(signed.sum(), 1e-12), 1e-4))),
                       options.get("slab_floor", 0.0))
        # the hyperprior's mean: a given prior (e.g. the connectome's), else the learned type frequencies
        hyper_mean = options.get("prior_mean")
        alpha = options["type_concentration"] * (q[:, pairs].mean((0, 1)) if hyper_mean is None else hyper_mean)
        new.global_prior = (q.sum(0) + alpha) / (s_n + np.sum(alpha, -1, keepdims=True))
        new.type_prob = q
        new.raw = theta
        new.theta = np.concatenate([mean, theta[..., -1:]], -1)
    return new
