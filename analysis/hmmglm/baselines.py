"""The simple models an HMM-GLM must beat to be believed about behaviour: a Gaussian HMM on
the leading principal components, and a logistic regression from the known reversal
neurons scored on worms it never saw. Pure numpy/scikit-learn on per-worm (T, N) arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.hmmglm import hmm


def _stack(seqs):
    return np.concatenate([np.nan_to_num(np.asarray(s, float)) for s in seqs])


@dataclass
class GaussianHMM:
    """A Gaussian HMM with full covariances on the ``components`` leading principal
    components of z-scored activity (unobserved entries count as the mean, 0).

    Written here rather than taken from hmmlearn (in limited maintenance, and not a
    dependency): it is a dozen lines on :mod:`analysis.hmmglm.hmm`'s exact
    forward-backward for padded sequences, the same inference the HMM-GLM is scored with,
    so the baseline and the model differ only in their emissions."""
    mean: np.ndarray            # (S, K)
    cov: np.ndarray             # (S, K, K)
    transition: np.ndarray
    initial: np.ndarray
    loadings: np.ndarray        # (N, K)
    centre: np.ndarray          # (N,)
    converged: bool
    n_iter: int

    def _project(self, seqs):
        return [(np.nan_to_num(np.asarray(s, float)) - self.centre) @ self.loadings for s in seqs]

    def _log_emission(self, xs):
        n_t = max(len(x) for x in xs)
        out = np.zeros((len(xs), n_t, len(self.mean)))
        for i, x in enumerate(xs):
            out[i, :len(x)] = _gaussian_log_density(x, self.mean, self.cov)
        return out, np.array([len(x) for x in xs])

    def decode(self, seqs) -> list[np.ndarray]:
        """The most probable state of every bin (posterior argmax), one array per sequence."""
        log_em, lengths = self._log_emission(self._project(seqs))
        post, _, _ = hmm.forward_backward(log_em, self.transition, np.full(len(self.mean), 1 / len(self.mean)),
                                          lengths)
        return [post[i, :n].argmax(-1) for i, n in enumerate(lengths)]


def _gaussian_log_density(x, mean, cov):
    """log N(x_t; mean_s, cov_s) for every bin and state (T, S)."""
    out = np.empty((len(x), len(mean)))
    for s in range(len(mean)):
        chol = np.linalg.cholesky(cov[s])
        r = np.linalg.solve(chol, (x - mean[s]).T)
        out[:, s] = -0.5 * (r ** 2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * x.shape[1] * np.log(2 * np.pi)
    return out


def fit_gaussian_hmm(seqs, n_states: int, components: int = 5, *, max_iter: int = 200, tol: float = 1e-5,
                     mean_dwell: int = 20, seed: int = 0) -> GaussianHMM:
    """EM for a Gaussian HMM on the sequences' leading principal components, started from
    k-means of the projected bins and sticky transitions (``mean_dwell`` bins)."""
    from scipy.cluster.vq import kmeans2

    flat = _stack(seqs)
    centre = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - centre, full_matrices=False)
    loadings = vt[:components].T
    model = GaussianHMM(np.zeros((n_states, components)), np.zeros((n_states, components, components)),
                        np.zeros((n_states, n_states)), np.full(n_states, 1 / n_states), loadings, centre, False, 0)
    xs = model._project(seqs)
    allx = np.concatenate(xs)
    _, labels = kmeans2(allx, n_states, seed=np.random.default_rng(seed), minit="++")
    resp = np.eye(n_states)[labels]
    stay = 1 - 1 / mean_dwell
    model.transition = np.full((n_states, n_states), (1 - stay) / max(n_states - 1, 1))
    np.fill_diagonal(model.transition, stay)
    last = -np.inf
    for it in range(max_iter):
        w = resp.sum(0) + 1e-9
        model.mean = (resp.T @ allx) / w[:, None]
        for s in range(n_states):
            r = allx - model.mean[s]
            model.cov[s] = (resp[:, s, None] * r).T @ r / w[s] + 1e-4 * np.eye(components)
        log_em, lengths = model._log_emission(xs)
        post, counts, ll = hmm.forward_backward(log_em, model.transition, model.initial, lengths)
        resp = np.concatenate([post[i, :n] for i, n in enumerate(lengths)])
        model.transition = hmm.update_transition(counts)
        model.initial = np.clip(post[:, 0].mean(0), 1e-6, None)
        model.initial /= model.initial.sum()
        model.n_iter = it + 1
        ll = float(ll.sum()) / len(allx)
        if abs(ll - last) < tol:
            model.converged = True
            break
        last = ll
    return model


def reversal_decoder_accuracy(seqs, behaviour, neurons, *, c: float = 1.0) -> list[float]:
    """Balanced accuracy, per worm, of a logistic regression from the activity of
    ``neurons`` (column indices; unobserved entries count as 0, the z-scored mean) to
    ``behaviour`` (> 0.5 = on, NaN unknown), fitted on every other worm (class-balanced
    weights) and scored on the held-out one. NaN where a worm shows only one class."""
    from sklearn.linear_model import LogisticRegression

    x = [np.nan_to_num(np.asarray(s, float)[:, neurons]) for s in seqs]
    b = [np.asarray(v, float) for v in behaviour]
    out = []
    for i in range(len(seqs)):
        train = [j for j in range(len(seqs)) if j != i and (~np.isnan(b[j])).any()]
        if not train:                      # a single worm: nothing to learn from but itself
            out.append(float("nan"))
            continue
        xt = np.concatenate([x[j][~np.isnan(b[j])] for j in train])
        yt = np.concatenate([b[j][~np.isnan(b[j])] > 0.5 for j in train])
        keep = ~np.isnan(b[i])
        truth = b[i][keep] > 0.5
        if truth.all() or (~truth).all() or yt.all() or (~yt).all():
            out.append(float("nan"))
            continue
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(xt, yt)
        pred = model.predict(x[i][keep])
        out.append(float(0.5 * (pred[truth].mean() + (~pred[~truth]).mean())))
    return out


def compare_on_behaviour(seqs, behaviour, reversal_neurons, n_states: int = 2, *, components: int = 5,
                         fit_options: dict | None = None, seed: int = 0) -> dict:
    """HMM-GLM states against a binary behaviour (reversals), held out by worm, beside the
    two baselines, all in this one call on the same sequences:

    - ``hmmglm``: for each worm, the model (``analysis.hmmglm.fit`` with ``fit_options``)
      is fitted on the other worms, decodes the held-out one, and its states are mapped to
      the behaviour by the training worms' states;
    - ``gaussian_hmm``: the same protocol with a Gaussian HMM on ``components`` principal
      components of the same (detrended, when the fit detrends) sequences;
    - ``logistic``: a logistic regression from ``reversal_neurons`` (column indices)
      trained on the other worms' behaviour labels (:func:`reversal_decoder_accuracy`).

    Returns per-worm balanced accuracies and their means, and each HMM-GLM fit's
    convergence."""
    from analysis.hmmglm.inference import fit
    from analysis.hmmglm.model import remove_baseline

    if len(seqs) < 2:
        raise ValueError(f"holding out by worm needs at least two worms, got {len(seqs)}")
    fit_options = dict(fit_options or {})
    beh = [np.asarray(b, float) for b in behaviour]
    detrend = fit_options.get("detrend")
    plain = [remove_baseline(s, detrend) if detrend else np.asarray(s, float) for s in seqs]
    out = {"hmmglm": [], "gaussian_hmm": [], "converged": [], "n_iter": []}
    for i in range(len(seqs)):
        train = [j for j in range(len(seqs)) if j != i]
        r = fit([seqs[j] for j in train], n_states, emission="gaussian", seed=seed, **fit_options)
        train_states = [r.states[k, :len(seqs[j])] for k, j in enumerate(train)]
        _, test_states = r.decode([seqs[i]])
        out["hmmglm"].append(_held_out_score(train_states, [beh[j] for j in train], test_states[0, :len(seqs[i])],
                                             beh[i], n_states))
        out["converged"].append(bool(r.converged))
        out["n_iter"].append(int(r.n_iter))
        g = fit_gaussian_hmm([plain[j] for j in train], n_states, components, seed=seed)
        out["gaussian_hmm"].append(_held_out_score(g.decode([plain[j] for j in train]), [beh[j] for j in train],
                                                   g.decode([plain[i]])[0], beh[i], n_states))
    out["logistic"] = reversal_decoder_accuracy(seqs, beh, reversal_neurons)
    for k in ("hmmglm", "gaussian_hmm", "logistic"):
        v = np.asarray(out[k], float)
        out[f"{k}_mean"] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return out


def _held_out_score(train_states, train_behaviour, test_states, test_behaviour, n_states) -> float:
    """The test worm's balanced accuracy under the state -> behaviour map of the training
    worms: :func:`behaviour_balanced_accuracy`'s held-out score of the last sequence."""
    from analysis.hmmglm.scores import behaviour_balanced_accuracy

    return behaviour_balanced_accuracy(list(train_states) + [test_states], list(train_behaviour) + [test_behaviour],
                                       n_states)["held_out"][-1]


def behaviour_lag(activity, behaviour, max_lag: int) -> dict:
    """The lag (bins) at which a trace (e.g. the mean of the reversal neurons) best ranks a
    binary behaviour (ROC AUC of the trace for behaviour > 0.5). A negative lag means the
    trace follows the behaviour: the trace at t + |lag| best matches the behaviour at t.
    Returns {"lag", "auc", "auc_at_zero"}."""
    from analysis.hmmglm.scores import roc_auc

    a, b = np.asarray(activity, float), np.asarray(behaviour, float)
    aucs = []
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[:len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[:lag])
        ok = ~np.isnan(x) & ~np.isnan(y)
        aucs.append(roc_auc(x[ok], y[ok] > 0.5) if ok.sum() > 2 else float("nan"))
    aucs = np.asarray(aucs)
    best = int(np.nanargmax(aucs))
    return {"lag": best - max_lag, "auc": float(aucs[best]), "auc_at_zero": float(aucs[max_lag])}
