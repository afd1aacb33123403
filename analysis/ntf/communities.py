"""Communities of weighted graphs: a weighted stochastic block model with the number of
blocks chosen by ICL, Leiden as the comparison, and NMI to score partitions.

The block model (after Aicher, Jacobs & Clauset 2015, "Learning latent block structure
in weighted networks") gives every pair of blocks (r, s) its own Gaussian weight
distribution N(mu_rs, sigma2): every node pair's weight is one draw; the variance is
pooled over all pairs by default (``shared_variance``), or one per block pair. It therefore
finds assortative, disassortative and core-periphery structure alike, and needs no
threshold on the weights. It is not degree-corrected: nodes of one block share one weight
distribution toward each block.

Fitting is classification EM: labels start from a spectral embedding (k-means of the
leading eigenvectors by magnitude) or at random, then sweeps move one node at a time to
its most likely block given the others, with the block parameters refreshed after each
sweep, until no label changes. The number of blocks maximizes the integrated
classification likelihood (ICL; Daudin, Picard & Robin 2008):
    ICL = L_c - (P/2) log(n(n-1)/2) - ((K-1)/2) log n,   P = K(K+1)/2 + 1,
with L_c the maximized classification log-likelihood, counting a mean per block pair
and the variance(s) among the K(K+1)/2 (shared variance: +1) parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_LOG2PI = np.log(2 * np.pi)


@dataclass
class SBMFit:
    labels: np.ndarray              # block of each node, 0..K-1
    n_blocks: int
    icl: float
    log_likelihood: float           # classification log-likelihood L_c
    means: np.ndarray               # (K, K) mean weight between blocks
    variances: np.ndarray           # (K, K)
    scores: dict = field(default_factory=dict)    # K -> ICL, when K was chosen


def _check(adjacency):
    """(weights with missing pairs at 0, squared weights, observed-pair mask): symmetric,
    diagonal excluded. NaN marks a pair whose weight is unknown; it takes no part."""
    w = np.asarray(adjacency, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"the adjacency must be a square matrix, got shape {w.shape}")
    if np.isinf(w).any():
        raise ValueError("the adjacency has infinite weights")
    obs = ~(np.isnan(w) | np.isnan(w.T))
    np.fill_diagonal(obs, False)
    w = np.where(obs, np.nan_to_num(w + w.T) / 2, 0.0)
    if not obs.any():
        raise ValueError("the adjacency has no observed pair")
    return w, w * w, obs.astype(float)


def _block_stats(g, z, k):
    w, w2, obs = g
    onehot = np.eye(k)[z]
    n = onehot.sum(0)
    m1 = onehot.T @ w @ onehot               # ordered pairs: within a block each pair twice
    m2 = onehot.T @ w2 @ onehot
    pairs = onehot.T @ obs @ onehot
    return n, m1, m2, pairs


def _params(g, z, k, floor, shared=True):
    n, m1, m2, pairs = _block_stats(g, z, k)
    safe = np.maximum(pairs, 1)
    mu = m1 / safe
    if shared:      # one variance pooled over every pair
        pooled = float((m2 - 2 * mu * m1 + mu ** 2 * pairs).sum() / max(pairs.sum(), 1))
        var = np.full((k, k), max(pooled, floor))
    else:
        var = np.maximum(m2 / safe - mu ** 2, floor)
    return mu, var, n, pairs, m1, m2


def classification_log_likelihood(adjacency, labels, floor: float | None = None, shared_variance: bool = True) -> float:
    """L_c of a partition under the Gaussian weighted SBM at its maximum-likelihood block
    parameters (each observed unordered node pair counted once), plus the block
    proportions' term."""
    g = _check(adjacency)
    return _log_likelihood(g, np.asarray(labels), floor if floor is not None else _floor(g), shared_variance)


def _log_likelihood(g, z, floor, shared):
    k = int(z.max()) + 1
    mu, var, n, pairs, m1, m2 = _params(g, z, k, floor, shared)
    # over ordered pairs, then halved: every unordered pair counted once
    sq = m2 - 2 * mu * m1 + mu ** 2 * pairs
    ll = -0.5 * (sq / var + pairs * (np.log(var) + _LOG2PI))
    props = n[n > 0] / n.sum()
    return float(0.5 * ll.sum() + (n[n > 0] * np.log(props)).sum())


def _floor(g):
    w, _, obs = g
    return max(1e-3 * float(w[obs > 0].var()), 1e-12)


def _sweeps(g, z, k, floor, rng, max_sweeps, shared):
    w, w2, obs = g
    for _ in range(max_sweeps):
        mu, var, n, _, _, _ = _params(g, z, k, floor, shared)
        onehot = np.eye(k)[z]
        # each node's weight sums and observed-pair counts toward each block
        s1, s2, cnt = w @ onehot, w2 @ onehot, obs @ onehot
        log_var = np.log(var)
        moved = 0
        for i in rng.permutation(len(w)):
            # log-likelihood of i's pairs if i were in block r, for every r: (K,)
            sq = (s2[i][None, :] - 2 * mu * s1[i][None, :] + mu ** 2 * cnt[i][None, :]) / var
            score = -0.5 * (sq + cnt[i][None, :] * (log_var + _LOG2PI)).sum(1)
            others = n.copy()
            others[z[i]] -= 1
            score += np.log(others + 1.0)               # block sizes (a smoothed proportion)
            best = int(np.argmax(score))
            if best != z[i] and score[best] > score[z[i]] + 1e-9:
                old = z[i]
                z[i] = best
                n[old] -= 1
                n[best] += 1
                # keep the block sums current for the nodes still to visit
                for arr, col in ((s1, w[:, i]), (s2, w2[:, i]), (cnt, obs[:, i])):
                    arr[:, old] -= col
                    arr[:, best] += col
                moved += 1
        if moved == 0:
            break
    _, z = np.unique(z, return_inverse=True)          # drop emptied blocks
    return z


def _spectral_labels(g, k, rng):
    from scipy.cluster.vq import kmeans2

    w, _, obs = g
    centred = np.where(obs > 0, w - w[obs > 0].mean(), 0.0)   # the mean weight would fill the leading vector
    vals, vecs = np.linalg.eigh(centred)
    lead = np.argsort(-np.abs(vals))[:k]
    emb = vecs[:, lead] * np.abs(vals[lead])
    _, z = kmeans2(emb, k, seed=rng, minit="++")
    return z


def _fold(labels, k, rng):
    """A partition with at most k blocks: the largest k-1 blocks kept, the rest pooled
    (or, with fewer blocks than k, as it is)."""
    _, z, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) <= k:
        return z
    keep = np.argsort(-counts)[:k - 1]
    remap = np.full(len(counts), k - 1)
    remap[keep] = np.arange(k - 1)
    return remap[z]


def fit_sbm(adjacency, n_blocks: int, *, n_init: int = 6, seed: int = 0, max_sweeps: int = 100,
            shared_variance: bool = True) -> SBMFit:
    """The Gaussian weighted SBM with exactly ``n_blocks`` blocks (fewer if blocks empty
    out), best by L_c of ``n_init`` starts (half spectral, half random) and one from the
    Leiden partition (so the block model is never left in a worse basin than modularity
    finds)."""
    return _fit_sbm(_check(adjacency), n_blocks, n_init, seed, max_sweeps, shared_variance)


def _fit_sbm(g, n_blocks, n_init=6, seed=0, max_sweeps=100, shared_variance=True):
    n_nodes = len(g[0])
    if not 1 <= n_blocks <= n_nodes:
        raise ValueError(f"n_blocks must lie in 1..{n_nodes}, got {n_blocks}")
    rng = np.random.default_rng(seed)
    floor = _floor(g)
    best = None
    starts = list(range(max(n_init, 1)))
    if n_blocks > 1:
        starts.append("leiden")
    for start in starts:
        if n_blocks == 1:
            z0 = np.zeros(n_nodes, dtype=int)
        elif start == "leiden":       # modularity's partition, folded into n_blocks blocks
            z0 = _fold(_leiden(g, 1.0, seed), n_blocks, rng)
        elif start % 2 == 0:
            z0 = _spectral_labels(g, n_blocks, rng)
        else:
            z0 = rng.integers(n_blocks, size=n_nodes)
        z = _sweeps(g, z0.astype(int), n_blocks, floor, rng, max_sweeps, shared_variance)
        ll = _log_likelihood(g, z, floor, shared_variance)
        if best is None or ll > best[0]:
            best = (ll, z)
        if n_blocks == 1:
            break
    ll, z = best
    k = int(z.max()) + 1
    mu, var = _params(g, z, k, floor, shared_variance)[:2]
    n_pairs = g[2].sum() / 2
    return SBMFit(z, k, icl(ll, k, n_nodes, shared_variance, n_pairs), ll, mu, var)


def icl(log_likelihood: float, n_blocks: int, n_nodes: int, shared_variance: bool = True,
        n_pairs: float | None = None) -> float:
    """Integrated classification likelihood of a Gaussian weighted SBM fit: a mean per
    block pair, and one variance (shared) or one per block pair; ``n_pairs``: the observed
    node pairs (default all)."""
    n_pairs = n_nodes * (n_nodes - 1) / 2 if n_pairs is None else n_pairs
    pair_params = n_blocks * (n_blocks + 1) / 2
    n_params = pair_params + (1 if shared_variance else pair_params)
    return float(log_likelihood - 0.5 * n_params * np.log(max(n_pairs, 1))
                 - 0.5 * (n_blocks - 1) * np.log(max(n_nodes, 1)))


def weighted_sbm(adjacency, n_blocks: int | None = None, *, max_blocks: int = 8, n_init: int = 6,
                 seed: int = 0, shared_variance: bool = True, return_fit: bool = False):
    """Block label per node of a weighted graph (N x N, symmetric, any sign; NaN marks a
    pair whose weight is unknown, which is left out rather than read as 0).

    With ``n_blocks`` None the number of blocks (1..``max_blocks``) maximizes ICL; the
    search stops once ICL has fallen for two block counts in a row. ``return_fit`` gives
    the SBMFit (means, variances, ICL per block count) instead of the labels."""
    g = _check(adjacency)
    if n_blocks is not None:
        fit = _fit_sbm(g, n_blocks, n_init, seed, shared_variance=shared_variance)
        return fit if return_fit else fit.labels
    best, scores, falls = None, {}, 0
    for k in range(1, min(max_blocks, len(g[0])) + 1):
        fit = _fit_sbm(g, k, n_init, seed, shared_variance=shared_variance)
        scores[k] = fit.icl
        if best is None or fit.icl > best.icl:
            best, falls = fit, 0
        else:
            falls += 1
            if falls >= 2:
                break
    best.scores = scores
    return best if return_fit else best.labels


def leiden(adjacency, *, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Leiden communities (igraph, modularity objective, weights as given; negative,
    zero and unknown (NaN) weights are dropped), as a label per node."""
    return _leiden(_check(adjacency), resolution, seed)


def _leiden(g, resolution, seed):
    import igraph as ig

    w = g[0]
    iu, ju = np.nonzero(np.triu(w, 1) > 0)
    g = ig.Graph(n=len(w), edges=list(zip(iu.tolist(), ju.tolist())))
    g.es["weight"] = w[iu, ju].tolist()
    import random

    random.seed(seed)                                  # igraph draws from Python's RNG
    ig.set_random_number_generator(random)
    part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution,
                              n_iterations=-1)
    return np.asarray(part.membership)


def nmi(a, b) -> float:
    """Normalized mutual information of two partitions (arithmetic-mean normalization;
    1 for identical partitions, 1 when both are a single block)."""
    a, b = np.asarray(a), np.asarray(b)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    ha = float(-(pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    if ha == 0 and hb == 0:
        return 1.0
    return float(mi / ((ha + hb) / 2)) if ha + hb > 0 else 0.0
