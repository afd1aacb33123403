"""The experiment LangevinFlow is judged by on recordings: non-overlapping windows of each
worm's sequence, neurons held out (observed in every window) and test windows held out,
and the comparison of LangevinFlow with the GRU sequential VAE and spike smoothing on
held-out-neuron R² and on velocity decoded from the latents. Pure numpy (the models in
:mod:`.model`, the scores in :mod:`.evaluation`)."""

from __future__ import annotations

import numpy as np

from analysis.langevin.evaluation import blocked_ridge_r2, decode_r2, r2, ridge, smooth, smoothing_baseline
from analysis.langevin.model import fit

MODELS = ("langevin", "gru")


def windows(seqs, behaviour, length: int):
    """Non-overlapping windows of ``length`` bins from each worm's (T, N) sequence:
    (trials (n, length, N), behaviour (n, length), worm index and start of each)."""
    xs, bs, where = [], [], []
    for w, (s, b) in enumerate(zip(seqs, behaviour)):
        for start in range(0, len(s) - length + 1, length):
            xs.append(s[start:start + length])
            bs.append(b[start:start + length])
            where.append((w, start))
    if not xs:
        raise ValueError(f"no worm has a window of {length} bins")
    return np.stack(xs), np.stack(bs), np.asarray(where)


def held_out_split(x, n_neurons: int, held_out: float, test_fraction: float, seed: int):
    """(held-in neurons, held-out neurons, train windows, test windows): the held-out
    neurons are drawn among those every window observes."""
    everywhere = np.flatnonzero(np.isfinite(x).all((0, 1)))
    rng = np.random.default_rng(seed)
    n_out = max(1, int(round(held_out * n_neurons)))
    if len(everywhere) < n_out + 2:
        raise ValueError(f"only {len(everywhere)} neurons are observed in every worm; need {n_out + 2}")
    out_idx = np.sort(rng.choice(everywhere, n_out, replace=False))
    in_idx = np.setdiff1d(np.arange(n_neurons), out_idx)
    perm = rng.permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    return in_idx, out_idx, np.sort(perm[n_test:]), np.sort(perm[:n_test])


def compare(x, velocity, in_idx, out_idx, train, test, *, epochs: int, latent: int, hidden: int, seed: int,
            device: str = "auto", progress=None, where=None, **config):
    """LangevinFlow and the GRU VAE fitted on the train windows, with spike smoothing and
    a ridge decoder beside them: (fits by model, metrics by model, the smoothing baseline's
    test prediction).

    Held-out-neuron R^2 is scored on the test windows. Velocity R^2: from each network's
    latent state (z, v), by ridge cross-validated over windows; for the ridge baseline,
    from every neuron of the worm at the same bin, within each worm, cross-validated in
    contiguous blocks of time (``where``: each window's worm and start, from
    :func:`windows`; without it the ridge baseline has no velocity score). ``config`` sets
    the networks' Config fields (e.g. decoder_input)."""
    fits, metrics = {}, {}
    for dynamics in MODELS:
        fits[dynamics] = fit(x[train], in_idx, out_idx, likelihood="gaussian", dynamics=dynamics, epochs=epochs,
                             latent=latent, hidden=hidden, seed=seed, device=device,
                             progress=(lambda e, tr, va, d=dynamics: progress(d, e, tr, va)) if progress else None,
                             **config)
        pred = fits[dynamics].predict(x[test])
        bare = fits[dynamics].predict_without_context(x[test])
        metrics[dynamics] = {"heldout_r2": r2(pred[..., out_idx], x[test][..., out_idx]),
                             "heldout_r2_latent_only": r2(bare[..., out_idx], x[test][..., out_idx]),
                             "velocity_r2": decode_r2(fits[dynamics].states(x), velocity, seed=seed),
                             "epochs": len(fits[dynamics].history), "best_epoch": fits[dynamics].best_epoch}
    base = smoothing_baseline(x[train], x[test], in_idx, out_idx, likelihood="gaussian")
    metrics["smoothing"] = {"heldout_r2": r2(base[..., out_idx], x[test][..., out_idx]),
                            "velocity_r2": decode_r2(smooth(x[..., in_idx], 2.0), velocity, seed=seed)}
    metrics["ridge"] = {"heldout_r2": r2(ridge_heldout(x, in_idx, out_idx, train, test)[..., out_idx],
                                         x[test][..., out_idx]),
                        "velocity_r2": ridge_velocity(x, velocity, where) if where is not None else float("nan")}
    return fits, metrics, base


def ridge_heldout(x, in_idx, out_idx, train, test, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)) -> np.ndarray:
    """Held-out neurons from the held-in neurons at the same bin by ridge, fitted on the
    train windows (penalty chosen on a split of them); returns the test windows' prediction
    (held-in columns are their own values)."""
    def rows(idx, cols):
        return np.nan_to_num(x[idx][..., cols].reshape(-1, len(cols)))

    half = len(train) // 2
    fit_on, check = train[:half], train[half:]
    best = min(alphas, key=lambda a: float(((ridge(rows(fit_on, in_idx), rows(fit_on, out_idx), a)(
        rows(check, in_idx)) - rows(check, out_idx)) ** 2).sum()))
    model = ridge(rows(train, in_idx), rows(train, out_idx), best)
    out = np.nan_to_num(x[test]).copy()
    out[..., out_idx] = model(rows(test, in_idx)).reshape(len(test), x.shape[1], len(out_idx))
    return out


def ridge_velocity(x, velocity, where, folds: int = 5) -> float:
    """Velocity decoded within each worm from all its neurons at the same bin (ridge,
    ``folds`` contiguous blocks of time), pooled over worms as one R^2."""
    pred = np.full(np.shape(velocity), np.nan)
    for w in np.unique(where[:, 0]):
        idx = np.flatnonzero(where[:, 0] == w)
        idx = idx[np.argsort(where[idx, 1])]
        traces = x[idx].reshape(-1, x.shape[-1])
        p, _ = blocked_ridge_r2(traces, np.asarray(velocity)[idx].reshape(-1), folds=folds)
        pred[idx] = p.reshape(len(idx), x.shape[1])
    return r2(pred[..., None], np.asarray(velocity)[..., None])
