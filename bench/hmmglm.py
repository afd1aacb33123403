"""Benchmark: HMM-GLM on the reference synthetic protocol (5 states, 20 neurons, Poisson).

Uses exactly `<mirror>/synthetic/hmmglm_S5_N20.npz`, made by the reference implementation's
own generator (onehot-hmmglm; 30 training and 20 test sequences of 2000 bins). For each
prior it fits `analysis.hmmglm.fit` on the training sequences and prints:
- fit time (restarts included), EM iterations of the final run, and seconds per EM
  iteration on all training data (one E-step + one M-step at the fitted model, mean of 3);
- state accuracy on the test set (posterior argmax; states matched by the Hungarian
  assignment on the training set, the same permutation reused on the test set);
- connection types over all states x neurons x neurons: F1-macro and balanced accuracy
  (plain and Gaussian prior: the sign of |W| > 0.1, as the reference scores them);
- mean absolute weight error, and the test log-likelihood per bin (forward algorithm,
  uniform initial state, summed over sequences / (sequences x bins)).

The baseline is the reference implementation, which needs its own PyTorch code and is not
run here: its figures are quoted from issue 8 (measured on this kind of machine, CPU, one
thread) and the ratios are against them, with the true generating model's figures
computed here from the file's own parameters.

Run: .venv/bin/python bench/hmmglm.py   (WORMFLOW_MIRROR picks the mirror)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import numpy as np  # noqa: E402

from analysis import hmmglm
from analysis.hmmglm import hmm  # noqa: E402

# issue 8's reference figures: fit s, state acc, F1-macro, balanced acc, test LL per bin, EM epochs
REFERENCE = {
    "none (demo: 10 epochs x 50 Adam steps)": (60, 0.966, 0.42, 0.72, -17.189, 10),
    "gaussian (demo)": (70, 0.970, 0.49, 0.76, -17.141, 10),
    "onehot (demo)": (82, 0.967, 0.58, 0.63, -17.129, 10),
    "none (100 epochs x 5 steps, its best)": (229, 0.982, 0.75, 0.89, -16.893, 100),
}
GOAL = {"f1_macro": 0.80, "state_acc": 0.98, "test_ll": -16.89, "fit_s": 10.0}


def mirror() -> Path:
    env = os.environ.get("WORMFLOW_MIRROR")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def true_model(d):
    theta = np.concatenate([d["weights"], np.broadcast_to(d["bias"][None, :, None], d["weights"].shape[:2] + (1,))], -1)
    s = len(d["transition_matrix"])
    return hmmglm.HMMGLMResult(
        weights=d["weights"], bias=theta[..., -1], noise=None, transition_matrix=d["transition_matrix"],
        initial=np.full(s, 1 / s), connection_types=d["conn_types"], global_prior=None, type_probability=None,
        posterior=np.zeros((1, 1, s)), states=np.zeros((1, 1), int), kernel=d["kernel"], emission="poisson",
        prior="none")


def em_iteration_seconds(train, r, prior, repeats: int = 3) -> float:
    """One full-data EM iteration (E-step, M-step) at the fitted parameters, in seconds."""
    from threadpoolctl import threadpool_limits

    d = hmmglm.prepare_sequences(hmmglm.as_sequences(train), r.kernel)
    p = r._params()
    p.global_prior = r.global_prior if r.global_prior is not None else np.full(r.weights.shape[1:] + (3,), 1 / 3)
    p.mean = r.weights.mean(0)
    options = dict(ridge=1e-3, type_concentration=2.0, newton_steps=1, stickiness=0.0)
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        for _ in range(repeats):
            posterior, counts, _ = hmmglm.e_step(d, p, "poisson")
            hmmglm.m_step(d, posterior[d.seq, d.time], p, prior, "poisson", options, 1)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    path = mirror() / "synthetic" / "hmmglm_S5_N20.npz"
    if not path.exists():
        sys.exit(f"{path} not found: set WORMFLOW_MIRROR to the local mirror")
    d = dict(np.load(path))
    train, test = d["spikes_train"].astype(float), d["spikes_test"].astype(float)
    print(f"{path.name}: {train.shape[0]} train + {test.shape[0]} test sequences x {train.shape[1]} bins x "
          f"{train.shape[2]} neurons, 5 states")
    truth = true_model(d)
    _, st = truth.decode(test)
    print(f"{'model':44s} {'fit s':>6s} {'iters':>5s} {'s/iter':>6s} {'acc':>6s} {'F1m':>5s} {'BA':>5s} "
          f"{'|dW|':>5s} {'test LL':>8s}")
    print(f"{'true generating model':44s} {'-':>6s} {'-':>5s} {'-':>6s} "
          f"{(st == d['states_test']).mean():6.3f} {1:5.2f} {1:5.2f} {0:5.3f} {truth.log_likelihood(test):8.3f}")
    for name, (fit_s, acc, f1, ba, ll, epochs) in REFERENCE.items():
        print(f"{'reference ' + name:44s} {fit_s:6.0f} {epochs:5d} {fit_s / epochs:6.2f} {acc:6.3f} {f1:5.2f} "
              f"{ba:5.2f} {'':>5s} {ll:8.3f}")
    ours = {}
    for prior in ("none", "gaussian", "onehot"):
        t0 = time.perf_counter()
        r = hmmglm.fit(train, 5, prior=prior, seed=0)
        fit_s = time.perf_counter() - t0
        perm = hmm.match_states(d["states_train"], r.states, 5)
        _, states = r.decode(test)
        acc = hmm.state_accuracy(d["states_test"], states, perm)
        found = r.connection_types[np.argsort(perm)]      # true state order
        scores = hmmglm.connection_type_scores(d["conn_types"], found)
        werr = float(np.abs(r.weights[np.argsort(perm)] - d["weights"]).mean())
        ll = r.log_likelihood(test)
        per_iter = em_iteration_seconds(train, r, prior)
        ours[prior] = (fit_s, acc, scores, ll, per_iter)
        print(f"{'wormflow ' + prior:44s} {fit_s:6.1f} {r.n_iter:5d} {per_iter:6.2f} {acc:6.3f} "
              f"{scores['f1_macro']:5.2f} {scores['balanced_accuracy']:5.2f} {werr:5.3f} {ll:8.3f}")
    fit_s, acc, scores, ll, _ = ours["onehot"]
    best_ref = REFERENCE["none (100 epochs x 5 steps, its best)"]
    ref_iter = REFERENCE["onehot (demo)"][0] / REFERENCE["onehot (demo)"][5]
    print(f"one-hot per EM iteration: {ours['onehot'][4]:.2f} s vs the reference's {ref_iter:.1f} s per epoch "
          f"(demo schedule) = {ref_iter / ours['onehot'][4]:.1f}x")
    print(f"one-hot vs the reference's one-hot (demo): {REFERENCE['onehot (demo)'][0] / fit_s:.1f}x faster; "
          f"vs its best model: {best_ref[0] / fit_s:.1f}x faster, F1-macro {scores['f1_macro']:.2f} vs {best_ref[2]:.2f}, "
          f"test LL {ll:.3f} vs {best_ref[4]:.3f}")
    checks = {"F1-macro >= 0.80": scores["f1_macro"] >= GOAL["f1_macro"],
              "state acc >= 0.98": acc >= GOAL["state_acc"],
              "test LL >= -16.89": ll >= GOAL["test_ll"],
              "fit <= 10 s": fit_s <= GOAL["fit_s"],
              "one-hot best on types": scores["f1_macro"] >= max(o[2]["f1_macro"] for o in ours.values())}
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()))


if __name__ == "__main__":
    main()
