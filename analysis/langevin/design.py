"""The experiment LangevinFlow is judged by on recordings: non-overlapping windows of each
worm's sequence, neurons held out (observed in every window) and test windows held out,
and the comparison of LangevinFlow with the GRU sequential VAE and spike smoothing on
held-out-neuron R² and on velocity decoded from the latents. Pure numpy (the models in
:mod:`.model`, the scores in :mod:`.evaluation`)."""

from __future__ import annotations

import numpy as np

from analysis.langevin.evaluation import decode_r2, r2, smooth, smoothing_baseline
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
            device: str = "auto", progress=None):
    """LangevinFlow and the GRU VAE fitted on the train windows, spike smoothing beside them:
    (fits by model, metrics by model, the smoothing baseline's test prediction)."""
    fits, metrics = {}, {}
    for dynamics in MODELS:
        fits[dynamics] = fit(x[train], in_idx, out_idx, likelihood="gaussian", dynamics=dynamics, epochs=epochs,
                             latent=latent, hidden=hidden, seed=seed, device=device,
                             progress=(lambda e, tr, va, d=dynamics: progress(d, e, tr, va)) if progress else None)
        pred = fits[dynamics].predict(x[test])
        metrics[dynamics] = {"heldout_r2": r2(pred[..., out_idx], x[test][..., out_idx]),
                             "velocity_r2": decode_r2(fits[dynamics].latents(x), velocity, seed=seed),
                             "epochs": len(fits[dynamics].history), "best_epoch": fits[dynamics].best_epoch}
    base = smoothing_baseline(x[train], x[test], in_idx, out_idx, likelihood="gaussian")
    metrics["smoothing"] = {"heldout_r2": r2(base[..., out_idx], x[test][..., out_idx]),
                            "velocity_r2": decode_r2(smooth(x[..., in_idx], 2.0), velocity, seed=seed)}
    return fits, metrics, base
