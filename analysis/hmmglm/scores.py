"""HMM-GLM on real recordings: a connection-type prior from the connectome, and the scores
that compare a fit with ground truth, behaviour and anatomy. Pure functions on numpy."""

from __future__ import annotations

import numpy as np


def connectome_type_prior(adjacency, sign=None, connected=(0.2, 0.6, 0.2), unconnected=(0.05, 0.9, 0.05)):
    """A starting global prior over {inh, none, exc} (post, pre, 3) from anatomy.

    adjacency: (post, pre) synapse counts or booleans (chemical and/or electrical);
    sign: (post, pre) predicted sign (+1, -1, 0 or NaN unknown). Pairs with a synapse get
    ``connected``; with a known sign, the signed type takes the other signed type's mass
    too; pairs without a synapse get ``unconnected``."""
    adj = np.nan_to_num(np.asarray(adjacency, dtype=float)) > 0
    pi = np.where(adj[..., None], np.asarray(connected, float), np.asarray(unconnected, float))
    if sign is not None:
        sg = np.nan_to_num(np.asarray(sign, dtype=float))
        signed = (pi[..., 0] + pi[..., 2])
        pi[..., 2] = np.where(adj & (sg > 0), signed, pi[..., 2])
        pi[..., 0] = np.where(adj & (sg > 0), 0.0, pi[..., 0])
        pi[..., 0] = np.where(adj & (sg < 0), signed, pi[..., 0])
        pi[..., 2] = np.where(adj & (sg < 0), 0.0, pi[..., 2])
    pi = np.maximum(pi, 1e-3)
    return pi / pi.sum(-1, keepdims=True)


def compare_with_connectome(global_prior, adjacency, sign=None, include_self: bool = False) -> dict:
    """How the learned prior's P(connection) = 1 - pi_none ranks anatomical synapses:
    ROC AUC, mean P(connection) with and without a synapse, and where the sign is known,
    the fraction of synapses whose more probable signed type agrees with it. Self-pairs
    are left out unless ``include_self`` (a neuron's coupling to its own past is its
    autocorrelation, not a synapse)."""
    p_conn = 1.0 - np.asarray(global_prior)[..., 1]
    adj = np.nan_to_num(np.asarray(adjacency, dtype=float)) > 0
    if not include_self:
        off = ~np.eye(adj.shape[0], dtype=bool)
        p_conn, adj = p_conn[off], adj[off]
        global_prior = np.asarray(global_prior)[off]
        sign = None if sign is None else np.asarray(sign, dtype=float)[off]
    out = {"n_pairs": int(adj.size), "n_synapses": int(adj.sum()),
           "p_connection_synapse": float(p_conn[adj].mean()) if adj.any() else float("nan"),
           "p_connection_none": float(p_conn[~adj].mean()) if (~adj).any() else float("nan"),
           "auc": roc_auc(p_conn.ravel(), adj.ravel())}
    if sign is not None:
        sg = np.nan_to_num(np.asarray(sign, dtype=float))
        known = adj & (sg != 0)
        learned = np.where(np.asarray(global_prior)[..., 2] >= np.asarray(global_prior)[..., 0], 1, -1)
        out["n_signed"] = int(known.sum())
        out["sign_agreement"] = float((learned[known] == sg[known]).mean()) if known.any() else float("nan")
    return out


def roc_auc(score, label) -> float:
    """Area under the ROC curve (ties counted half), NaN when one class is absent."""
    score, label = np.asarray(score, float), np.asarray(label, bool)
    n_pos, n_neg = label.sum(), (~label).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    ranks[order] = np.arange(1, len(s) + 1)
    # average ranks over ties
    uniq, start, counts = np.unique(s, return_index=True, return_counts=True)
    for st, c in zip(start[counts > 1], counts[counts > 1]):
        ranks[order[st:st + c]] = st + (c + 1) / 2
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def connection_type_scores(true_types, found_types) -> dict:
    """F1 per type (inh, none, exc), their macro mean, balanced accuracy and accuracy over
    all entries of two (..., post, pre) arrays in {-1, 0, 1}."""
    t, f = np.asarray(true_types).ravel(), np.asarray(found_types).ravel()
    out, recalls = {}, []
    for value, name in zip((-1, 0, 1), ("inhibitory", "none", "excitatory")):
        tp = np.sum((t == value) & (f == value))
        precision = tp / max(np.sum(f == value), 1)
        recall = tp / max(np.sum(t == value), 1)
        out[f"f1_{name}"] = float(2 * precision * recall / (precision + recall)) if tp else 0.0
        recalls.append(recall)
    out["f1_macro"] = float(np.mean([out["f1_inhibitory"], out["f1_none"], out["f1_excitatory"]]))
    out["balanced_accuracy"] = float(np.mean(recalls))
    out["accuracy"] = float((t == f).mean())
    return out


def behaviour_balanced_accuracy(states, behaviour, n_states: int) -> dict:
    """How well the states predict a binary behaviour (e.g. reversal), per sequence and
    without peeking: each state is mapped to the behaviour it is enriched in (P(s | on) >
    P(s | off)), with the map learned on the other sequences and scored on the held-out
    one (balanced accuracy, then averaged over sequences). Also the in-sample map's score.

    states, behaviour: lists of (T_i,) arrays; behaviour NaN where unknown, > 0.5 = on."""
    def counts(idx):
        on, off = np.zeros(n_states), np.zeros(n_states)
        for i in idx:
            s, b = np.asarray(states[i]), np.asarray(behaviour[i], float)
            keep = (s >= 0) & ~np.isnan(b)
            np.add.at(on, s[keep & (b > 0.5)], 1)
            np.add.at(off, s[keep & (b <= 0.5)], 1)
        return on, off

    def score(i, mapping):
        s, b = np.asarray(states[i]), np.asarray(behaviour[i], float)
        keep = (s >= 0) & ~np.isnan(b)
        truth, pred = b[keep] > 0.5, mapping[s[keep]]
        if truth.all() or (~truth).all():
            return float("nan")
        return float(0.5 * (pred[truth].mean() + (~pred[~truth]).mean()))

    def mapping_from(on, off):
        return (on / max(on.sum(), 1)) > (off / max(off.sum(), 1))

    n = len(states)
    held_out = []
    for i in range(n):
        on, off = counts([j for j in range(n) if j != i])
        held_out.append(score(i, mapping_from(on, off)) if on.sum() and off.sum() else float("nan"))
    on, off = counts(range(n))
    in_sample = [score(i, mapping_from(on, off)) for i in range(n)]
    return {"held_out": held_out, "held_out_mean": float(np.nanmean(held_out)) if np.isfinite(held_out).any() else float("nan"),
            "in_sample_mean": float(np.nanmean(in_sample)) if np.isfinite(in_sample).any() else float("nan"),
            "state_on_fraction": (on / np.maximum(on + off, 1)).tolist()}
