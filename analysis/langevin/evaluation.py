"""LangevinFlow's benchmark around the model: the synthetic Lorenz data, the scores (bits
per spike, R², cross-validated latent decoding) and the spike-smoothing baseline. Pure
numpy/scipy; :mod:`analysis.langevin` re-exports every public name."""

from __future__ import annotations

import math
import warnings

import numpy as np


# ---------------------------------------------------------------- data


def lorenz_dataset(n_trials: int = 400, n_time: int = 50, n_neurons: int = 30, *, dt: float = 0.006,
                   steps_per_bin: int = 1, base_rate: float = 0.2, gain: float = 0.7, seed: int = 0) -> dict:
    """The synthetic Lorenz benchmark after the LFADS recipe: a Lorenz system (sigma 10,
    rho 28, beta 8/3) integrated with RK4, one trial per random start on the attractor;
    the state is z-scored, and each neuron's log-rate is linear in it:
    log r = log(base_rate) + gain * W x, W ~ N(0, 1/3); counts ~ Poisson(r) per bin.
    Returns spikes (trial, time, neuron) int, rates, latents (trial, time, 3)."""
    rng = np.random.default_rng(seed)

    def f(s):
        x, y, z = s[..., 0], s[..., 1], s[..., 2]
        return np.stack([10.0 * (y - x), x * (28.0 - z) - y, x * y - (8.0 / 3.0) * z], -1)

    state = rng.normal(size=(n_trials, 3)) * np.array([8.0, 8.0, 8.0]) + np.array([0.0, 0.0, 25.0])
    h = dt / steps_per_bin

    def step(s):
        k1 = f(s)
        k2 = f(s + 0.5 * h * k1)
        k3 = f(s + 0.5 * h * k2)
        k4 = f(s + h * k3)
        return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    for _ in range(int(2.0 / h)):                     # burn in onto the attractor
        state = step(state)
    path = np.empty((n_trials, n_time, 3))
    for t in range(n_time):
        for _ in range(steps_per_bin):
            state = step(state)
        path[:, t] = state
    latents = (path - path.reshape(-1, 3).mean(0)) / path.reshape(-1, 3).std(0)
    w = rng.normal(scale=1 / math.sqrt(3), size=(3, n_neurons))
    rates = base_rate * np.exp(gain * latents @ w)
    spikes = rng.poisson(rates)
    return dict(spikes=spikes, rates=rates, latents=latents, readout=w)


def split_neurons(n_neurons: int, held_out: float = 0.2, seed: int = 0):
    """(held-in, held-out) neuron indices, the held-out ones chosen at random."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_neurons)
    n_out = max(1, int(round(held_out * n_neurons)))
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


# ---------------------------------------------------------------- metrics


ZERO_RATE_FLOOR = 1e-9        # the Neural Latents Benchmark's floor for a predicted rate of 0


def bits_per_spike(rates, spikes) -> float:
    """The Neural Latents Benchmark's bits per spike: the Poisson log-likelihood of
    ``spikes`` under ``rates`` (counts per bin, any shape ending in neurons) minus that
    under each neuron's mean rate over the evaluated data, in bits, per spike.

    As NLB scores it: a NaN count masks that one element (not its whole bin), the null
    rate is each neuron's mean over the observed elements, a predicted rate of exactly 0
    is floored at 1e-9, and a negative or NaN rate where a count is observed is an error."""
    rates = np.asarray(rates, dtype=float)
    spikes = np.asarray(spikes, dtype=float)
    if rates.shape != spikes.shape:
        raise ValueError(f"rates {rates.shape} and spikes {spikes.shape} must have one shape")
    observed = ~np.isnan(spikes)
    if np.isnan(rates[observed]).any():
        raise ValueError("rates must be finite where a count is observed")
    if (rates[observed] < 0).any():
        raise ValueError("rates must be positive or zero (zero is floored at 1e-9)")
    with warnings.catch_warnings():                       # a neuron with no observed count: NaN null, masked
        warnings.simplefilter("ignore", RuntimeWarning)
        null = np.broadcast_to(np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True), spikes.shape)

    def nll(r):
        r = np.where(r[observed] == 0, ZERO_RATE_FLOOR, r[observed])
        return float((r - spikes[observed] * np.log(r)).sum())

    return (nll(null) - nll(rates)) / (np.nansum(spikes) * math.log(2))


def r2(pred, truth, axis_neurons: int = -1) -> float:
    """Mean over neurons of the coefficient of determination of ``pred`` for ``truth``
    (all other axes pooled; NaN entries of ``truth`` skipped)."""
    p = np.moveaxis(np.asarray(pred, float), axis_neurons, -1).reshape(-1, np.shape(pred)[axis_neurons])
    t = np.moveaxis(np.asarray(truth, float), axis_neurons, -1).reshape(p.shape)
    out = []
    for j in range(p.shape[1]):
        ok = np.isfinite(t[:, j]) & np.isfinite(p[:, j])
        if ok.sum() < 3:
            continue
        ss = ((t[ok, j] - t[ok, j].mean()) ** 2).sum()
        if ss > 0:
            out.append(1 - ((t[ok, j] - p[ok, j]) ** 2).sum() / ss)
    return float(np.mean(out)) if out else float("nan")


def decode_r2(latents, target, *, folds: int = 5, alphas=(0.01, 0.1, 1.0, 10.0, 100.0), seed: int = 0) -> float:
    """Cross-validated ridge decoding of ``target`` (trial, time[, k]) from ``latents``
    (trial, time, d): folds over trials, the ridge penalty chosen inside each training
    fold; returns R^2 on the held-out folds pooled."""
    x = np.asarray(latents, float)
    y = np.asarray(target, float)
    if y.ndim == 2:
        y = y[..., None]
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    preds = np.full(y.shape, np.nan)

    fit = ridge

    def rows(idx):
        xx, yy = x[idx].reshape(-1, x.shape[-1]), y[idx].reshape(-1, y.shape[-1])
        ok = np.isfinite(yy).all(1) & np.isfinite(xx).all(1)
        return xx[ok], yy[ok]

    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        inner = train[::2], train[1::2]
        best = min(alphas, key=lambda a: _sq_err(fit(*rows(inner[0]), a), *rows(inner[1])))
        model = fit(*rows(train), best)
        xt = x[test].reshape(-1, x.shape[-1])
        preds[test] = model(np.nan_to_num(xt)).reshape(len(test), x.shape[1], -1)
    return r2(preds, y)


def ridge(x, y, alpha: float):
    """Ridge regression of y (m, k) on x (m, d) with an unpenalized intercept; returns the
    prediction function. (One closed-form solve; scikit-learn's Ridge would do the same,
    at the cost of an estimator object per penalty and fold in the searches below.)"""
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(xc.shape[1]), xc.T @ (y - ym))
    return lambda xx: (xx - xm) @ coef + ym


def blocked_ridge_r2(x, y, *, folds: int = 5, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)) -> tuple[np.ndarray, float]:
    """Ridge decoding of y (T,) from x (T, d) within one recording, cross-validated in
    ``folds`` contiguous blocks of time (so that neighbouring, correlated bins never sit on
    both sides of a split); the penalty is chosen inside each training part by the same
    blocked split. Columns of x that are all NaN are dropped, rows with a NaN are skipped.
    Returns (the out-of-block prediction (T,), its R^2)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x = x[:, ~np.isnan(x).all(0)]
    ok = np.isfinite(y) & np.isfinite(x).all(1)
    pred = np.full(len(y), np.nan)
    idx = np.flatnonzero(ok)
    blocks = np.array_split(idx, folds)

    def inner_error(train, alpha):
        parts = np.array_split(train, folds)
        err = 0.0
        for k, held in enumerate(parts):
            rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
            if len(held) and len(rest):
                err += _sq_err(ridge(x[rest], y[rest, None], alpha), x[held], y[held, None])
        return err

    for k, test in enumerate(blocks):
        train = np.concatenate([b for j, b in enumerate(blocks) if j != k])
        if not len(test) or len(train) < 3:
            continue
        best = min(alphas, key=lambda a: inner_error(train, a))
        pred[test] = ridge(x[train], y[train, None], best)(x[test])[:, 0]
    return pred, r2(pred[:, None], y[:, None])


def _sq_err(model, x, y):
    return float(((model(x) - y) ** 2).sum()) if len(x) else 0.0


# ---------------------------------------------------------------- the smoothing baseline


def smooth(data, sigma_bins: float):
    """Gaussian smoothing of (trial, time, neuron) along time (NaN -> 0 first)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.nan_to_num(np.asarray(data, float)), sigma_bins, axis=1, mode="nearest")


def smoothing_baseline(train, test, held_in, held_out, *, likelihood: str = "poisson",
                       sigmas=(1.0, 2.0, 4.0, 8.0), ridge: float = 1e-2) -> np.ndarray:
    """NLB's spike-smoothing baseline: held-in neurons' own smoothed activity is their
    prediction; held-out neurons are a GLM (Poisson with log link, or linear for calcium)
    of the smoothed held-in activity, fitted on ``train``. The kernel width is chosen on
    a split of ``train``. Returns predictions for ``test`` (trial, time, neuron)."""
    train, test = np.asarray(train, float), np.asarray(test, float)
    half = len(train) // 2

    def run(fit_on, apply_to, sigma):
        xs = smooth(fit_on[..., held_in], sigma).reshape(-1, len(held_in))
        ys = np.nan_to_num(fit_on[..., held_out]).reshape(-1, len(held_out))
        coef = _glm(xs, ys, likelihood, ridge)
        xa = smooth(apply_to[..., held_in], sigma)
        out = np.empty(apply_to.shape)
        out[..., held_in] = np.maximum(xa, 1e-3) if likelihood == "poisson" else xa
        design = np.concatenate([xa.reshape(-1, len(held_in)), np.ones((xa[..., 0].size, 1))], 1)
        lin = design @ coef
        out[..., held_out] = (np.exp(lin) if likelihood == "poisson" else lin).reshape(*apply_to.shape[:2], -1)
        return out

    def score(pred, truth):
        if likelihood == "poisson":
            return bits_per_spike(np.maximum(pred[..., held_out], 1e-6), truth[..., held_out])
        return r2(pred[..., held_out], truth[..., held_out])

    best = max(sigmas, key=lambda s: score(run(train[:half], train[half:], s), train[half:]))
    return run(train, test, best)


def _glm(x, y, likelihood, ridge, n_iter: int = 50):
    """Per output column: ridge-penalized Poisson (log link, by Newton's method) or linear
    regression on x with an intercept; returns (d+1, k) coefficients."""
    xd = np.concatenate([x, np.ones((len(x), 1))], 1)
    pen = ridge * np.eye(xd.shape[1])
    pen[-1, -1] = 0
    if likelihood != "poisson":
        return np.linalg.solve(xd.T @ xd + pen * len(x), xd.T @ y)
    coef = np.zeros((xd.shape[1], y.shape[1]))
    coef[-1] = np.log(np.maximum(y.mean(0), 1e-3))
    for _ in range(n_iter):
        mu = np.exp(np.clip(xd @ coef, -20, 20))
        grad = xd.T @ (y - mu) - pen @ coef * len(x)
        step = np.stack([np.linalg.solve((xd * mu[:, [j]]).T @ xd + pen * len(x), grad[:, j])
                         for j in range(y.shape[1])], 1)
        coef += step
        if np.abs(step).max() < 1e-6:
            break
    return coef
