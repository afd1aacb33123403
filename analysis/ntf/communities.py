"""Communities of weighted graphs: a degree-corrected weighted stochastic block model with
the number of blocks chosen by ICL, Leiden as the comparison, and NMI to score partitions.

The block model follows the idea of Aicher, Jacobs & Clauset (2015, "Learning latent
block structure in weighted networks"): whether a pair is joined and how heavy the edge
is are two observations, each with its own distribution per pair of blocks (r, s).

* **Edges** (a pair is an edge where its weight is non-zero) are Bernoulli with a
  probability per block pair, or follow the degree-corrected Poisson block model of
  Karrer & Newman (2011), A_ij ~ Poisson(theta_i theta_j omega_rs), where each node's
  propensity theta_i absorbs its degree, so hubs and quiet nodes of one block stay
  together instead of being split by degree. ``degree_corrected=None`` (the default)
  fits both and keeps the one of higher ICL, the corrected model paying for its n
  degree parameters: homogeneous blocks keep the plain model (degree correction would
  absorb the block sizes' own degree differences, ~30% of the edge evidence on the
  planted graphs of the tests), hub-heavy graphs take the corrected one. Where every
  known pair is an edge (a dense weight matrix) the edge part carries no information
  and is left out.
* **Weights** of the edges are Gaussian with a mean per block pair and one variance
  pooled over all edges (``weights="normal"``, any sign), or Gaussian after a log
  (``weights="lognormal"``), or gamma with a mean per block pair and one shape
  (``weights="gamma"``, exponential weights among them); the last two for positive
  weights.
  Absent edges are never read as weight-0 observations.

A NaN marks a pair whose weight is unknown: it is neither an edge nor a non-edge.

Fitting is classification EM: labels start from a spectral embedding, at random, or
from Leiden's partition; sweeps move one node at a time to its most likely block given
the others, with all parameters refreshed after each sweep, until no label changes. The
number of blocks maximizes the integrated classification likelihood (ICL; Daudin, Picard
& Robin 2008; BIC-type penalties per parameter family):

    ICL = L_c - (K(K+1)/2)/2 * log(pairs)            (edge rates, when edges are modelled)
              - sum_i log(k_i) / 2                   (degree propensities, when corrected:
                                                      theta_i is learnt from node i's k_i edges)
              - (K(K+1)/2 + 1)/2 * log(edges)        (weight means and the pooled variance)
              - (K-1)/2 * log(n)                     (block proportions)

with L_c the classification log-likelihood (edges + weights + the block-proportion term
sum_r n_r log(n_r / n)). The proportion term is what keeps a random graph in one block:
a split has to buy back n * entropy(split) nats, which chance structure never does.

Our own code rather than graph-tool's nested SBM: graph-tool is not installable from
PyPI (it needs a matching system build and numpy ABI), and a flat degree-corrected
model with the weight part recovers the planted blocks the NTF stage needs (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_LOG2PI = np.log(2 * np.pi)
WEIGHT_MODELS = ("normal", "lognormal", "gamma")


@dataclass
class SBMFit:
    labels: np.ndarray              # block of each node, 0..K-1
    n_blocks: int
    icl: float
    log_likelihood: float           # classification log-likelihood L_c
    means: np.ndarray               # (K, K) mean edge weight between blocks, as observed
    edge_density: np.ndarray        # (K, K) fraction of known pairs that are edges
    weights: str = "gamma"          # the weight model used
    edges_modelled: bool = True     # False where every known pair is an edge
    degree_corrected: bool = False  # the edge model kept
    assortative: bool = False       # the planted-partition structure kept
    scores: dict = field(default_factory=dict)    # K -> ICL, when K was chosen


@dataclass
class _Graph:
    obs: np.ndarray        # known pairs (float 0/1, symmetric, zero diagonal)
    edge: np.ndarray       # edges among the known pairs
    y: np.ndarray          # edge weights in the model's units (0 off edges)
    w: np.ndarray          # edge weights as given (0 off edges)
    weights: str
    edges_modelled: bool

    @property
    def n(self):
        return len(self.obs)


def _graph(adjacency, weights: str = "auto") -> _Graph:
    w = np.asarray(adjacency, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"the adjacency must be a square matrix, got shape {w.shape}")
    if np.isinf(w).any():
        raise ValueError("the adjacency has infinite weights")
    if weights not in WEIGHT_MODELS + ("auto",):
        raise ValueError(f"weights must be 'auto' or one of {WEIGHT_MODELS}, got {weights!r}")
    obs = ~(np.isnan(w) | np.isnan(w.T))
    np.fill_diagonal(obs, False)
    if not obs.any():
        raise ValueError("the adjacency has no known pair")
    w = np.where(obs, np.nan_to_num(w + w.T) / 2, 0.0)
    edge = obs & (w != 0)
    if not edge.any():
        raise ValueError("the adjacency has no edge (every known weight is 0)")
    if weights == "auto":
        weights = "gamma" if (w[edge] > 0).all() else "normal"
    if weights in ("lognormal", "gamma"):
        if (w[edge] < 0).any():
            raise ValueError(f"weights={weights!r} needs positive weights; use weights='normal' for signed ones")
    if weights == "lognormal":
        y = np.where(edge, np.log(np.where(edge, w, 1.0)), 0.0)
    else:
        y = np.where(edge, w, 0.0)
    return _Graph(obs.astype(float), edge.astype(float), y, w, weights, bool((edge != obs).any()))


@dataclass
class _Params:
    k: int
    sizes: np.ndarray      # (K,)
    theta: np.ndarray      # (n,) degree propensities (ones unless degree-corrected)
    omega: np.ndarray      # (K, K) edge probabilities (plain) or rates (degree-corrected)
    mu: np.ndarray         # (K, K) weight means (model units)
    var: float             # pooled weight variance (gamma weights: the pooled shape)


def _onehot(z, k):
    return np.eye(k)[z]


def _pool(x, pp):
    """Block-pair sums, pooled into one within and one between value for the
    assortative (planted-partition) model."""
    if not pp:
        return x
    inside = np.trace(x)
    return np.where(np.eye(len(x), dtype=bool), inside, x.sum() - inside)


def _params(g: _Graph, z, k, var_floor, dc: bool, pp: bool = False, n_fixed_point=20) -> _Params:
    oh = _onehot(z, k)
    sizes = oh.sum(0)
    m = _pool(oh.T @ g.edge @ oh, pp)                      # edges between blocks (ordered pairs)
    s1 = _pool(oh.T @ g.y @ oh, pp)
    mu = np.where(m > 0, s1 / np.maximum(m, 1), 0.0)
    if g.weights == "gamma":
        var = _gamma_shape(g, oh @ mu @ oh.T)              # for gamma weights: the pooled shape
    else:
        resid = g.y - (oh @ mu @ oh.T)
        var = max(float((resid[g.edge > 0] ** 2).mean()), var_floor)
    theta = np.ones(g.n)
    if not dc:
        omega = m / np.maximum(_pool(oh.T @ g.obs @ oh, pp), 1)
        return _Params(k, sizes, theta, omega, mu, var)
    degree = g.edge.sum(1)
    theta = np.maximum(degree, 1e-12) / max(degree.mean(), 1e-12)
    # maximum likelihood of theta and omega given z: alternate the two closed forms
    for _ in range(n_fixed_point):
        omega = m / np.maximum(_pool(oh.T @ (g.obs * np.outer(theta, theta)) @ oh, pp), 1e-300)
        rate = (((g.obs * theta[None, :]) @ oh) * omega[z]).sum(1)     # sum_j obs_ij theta_j omega_{z_i z_j}
        new = np.where(degree > 0, degree / np.maximum(rate, 1e-300), 0.0)
        done = np.allclose(new, theta, rtol=1e-6, atol=1e-12)
        theta = new
        if done:
            break
    omega = m / np.maximum(_pool(oh.T @ (g.obs * np.outer(theta, theta)) @ oh, pp), 1e-300)
    return _Params(k, sizes, theta, omega, mu, var)


def _gamma_shape(g: _Graph, mean):
    """Maximum-likelihood shape a of gamma weights with the given means: the root of
    log a - digamma(a) = mean(log mean - log w) (Minka's start, then Newton)."""
    from scipy.special import digamma, polygamma

    e = g.edge > 0
    s = float(np.mean(np.log(mean[e]) - np.log(g.y[e])))
    if s <= 1e-8:
        return 1e8                                          # every weight equal to its block mean
    a = (3 - s + np.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s)
    for _ in range(20):
        step = (np.log(a) - digamma(a) - s) / (1 / a - polygamma(1, a))
        a = max(a - step, a / 10)
        if abs(step) < 1e-10 * a:
            break
    return float(a)


def _xlogy(x, y):
    return np.where(x > 0, x * np.log(np.where(x > 0, np.maximum(y, 1e-300), 1.0)), 0.0)


def _log_likelihood(g: _Graph, z, p: _Params, dc: bool) -> float:
    """L_c over unordered known pairs: edges (if modelled) + weights + block proportions."""
    oh = _onehot(z, p.k)
    ll = 0.0
    if g.edges_modelled:
        pair = oh @ p.omega @ oh.T
        if dc:
            lam = np.outer(p.theta, p.theta) * pair
            ll += 0.5 * float((_xlogy(g.edge, lam) - g.obs * lam).sum())
        else:
            ll += 0.5 * float((_xlogy(g.edge, pair) + _xlogy(g.obs - g.edge, 1 - pair)).sum())
    n_edges = g.edge.sum() / 2
    e = g.edge > 0
    if g.weights == "gamma":
        from scipy.special import gammaln

        a, mean = p.var, (oh @ p.mu @ oh.T)[e]
        ll += 0.5 * float((a * np.log(a / mean) + (a - 1) * np.log(g.y[e]) - a * g.y[e] / mean).sum()) \
            - n_edges * float(gammaln(a))
    else:
        resid = g.y - (oh @ p.mu @ oh.T)
        ll += -0.5 * float((resid[e] ** 2).sum() / 2) / p.var - 0.5 * n_edges * (np.log(p.var) + _LOG2PI)
    if g.weights == "lognormal":          # the density of the weights themselves, not of their logs
        ll -= 0.5 * float(g.y[g.edge > 0].sum())
    sizes = p.sizes[p.sizes > 0]
    return float(ll + (sizes * np.log(sizes / sizes.sum())).sum())


def _var_floor(g: _Graph):
    vals = g.y[g.edge > 0]
    return max(1e-6 * float(vals.var()) if len(vals) > 1 else 0.0, 1e-12)


def _sweeps(g: _Graph, z, k, var_floor, rng, max_sweeps, dc, pp):
    for _ in range(max_sweeps):
        p = _params(g, z, k, var_floor, dc, pp)
        oh = _onehot(z, k)
        # each node's sufficient statistics toward each block, kept current as nodes move
        cnt = g.edge @ oh                                  # edges to block s
        s1 = g.y @ oh                                      # weight sum to block s
        s2 = (g.y ** 2) @ oh
        t = (g.obs * p.theta[None, :]) @ oh                # known pairs (theta-weighted) to block s
        log_on = np.log(np.clip(p.omega, 1e-300, None))
        log_off = np.log(np.clip(1 - p.omega, 1e-300, None))
        safe_mu = np.where(p.mu > 0, p.mu, 1e-300)
        log_mu = np.log(safe_mu)
        n = p.sizes.copy()
        moved = 0
        for i in rng.permutation(g.n):
            # log-likelihood of i's pairs with i in block r, for every r: (K,)
            if g.weights == "gamma":      # terms that do not depend on r left out
                score = -p.var * (np.where(cnt[i][None, :] > 0, cnt[i][None, :] * log_mu, 0.0)
                                  + s1[i][None, :] / safe_mu).sum(1)
            else:
                score = -0.5 * ((s2[i][None, :] - 2 * p.mu * s1[i][None, :] + p.mu ** 2 * cnt[i][None, :])
                                / p.var).sum(1)
            if g.edges_modelled:
                on = np.where(cnt[i][None, :] > 0, cnt[i][None, :] * log_on, 0.0)
                if dc:
                    score += (on - p.theta[i] * p.omega * t[i][None, :]).sum(1)
                else:
                    off = t[i] - cnt[i]
                    score += (on + np.where(off[None, :] > 0, off[None, :] * log_off, 0.0)).sum(1)
            others = n.copy()
            others[z[i]] -= 1
            score += np.log(others + 1.0)               # block sizes (a smoothed proportion)
            best = int(np.argmax(score))
            if best != z[i] and score[best] > score[z[i]] + 1e-9:
                old = z[i]
                z[i] = best
                n[old] -= 1
                n[best] += 1
                for arr, col in ((cnt, g.edge[:, i]), (s1, g.y[:, i]), (s2, g.y[:, i] ** 2),
                                 (t, g.obs[:, i] * p.theta[i])):
                    arr[:, old] -= col
                    arr[:, best] += col
                moved += 1
        if moved == 0:
            break
    _, z = np.unique(z, return_inverse=True)          # drop emptied blocks
    return z


def _spectral_labels(g: _Graph, k, rng):
    """k-means of the leading eigenvectors (by magnitude) of the centred weight matrix and,
    where edges are modelled, of the regularized normalized adjacency (sparse graphs)."""
    from scipy.cluster.vq import kmeans2

    if g.edges_modelled:
        deg = g.edge.sum(1) + g.edge.sum() / g.n           # regularized (Amini et al. 2013)
        m = g.edge / np.sqrt(np.outer(deg, deg))
    else:
        m = np.where(g.obs > 0, g.y - g.y[g.edge > 0].mean(), 0.0)
    vals, vecs = np.linalg.eigh(m)
    lead = np.argsort(-np.abs(vals))[:k]
    emb = vecs[:, lead] * np.abs(vals[lead])
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norms > 0, norms, 1.0)
    _, z = kmeans2(emb, k, seed=rng, minit="++")
    return z


def _fold(labels, k):
    """A partition with at most k blocks: the largest k-1 blocks kept, the rest pooled
    (or, with fewer blocks than k, as it is)."""
    _, z, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) <= k:
        return z
    keep = np.argsort(-counts)[:k - 1]
    remap = np.full(len(counts), k - 1)
    remap[keep] = np.arange(k - 1)
    return remap[z]


def fit_sbm(adjacency, n_blocks: int, *, weights: str = "auto", degree_corrected: bool | None = None,
            assortative: bool | None = None, n_init: int = 6, seed: int = 0, max_sweeps: int = 100) -> SBMFit:
    """The weighted SBM with exactly ``n_blocks`` blocks (fewer if blocks empty out), best
    by L_c of ``n_init`` starts (half spectral, half random) and one from the Leiden
    partition (so the block model never ends in a worse basin than modularity).
    ``degree_corrected`` / ``assortative`` None: every variant fitted, the one of highest
    ICL kept."""
    g = _graph(adjacency, weights)
    return _best_model(g, n_blocks, degree_corrected, assortative, n_init, seed, max_sweeps)


def _best_model(g, n_blocks, degree_corrected, assortative, n_init=6, seed=0, max_sweeps=100):
    dcs = [False, True] if degree_corrected is None else [bool(degree_corrected)]
    if not g.edges_modelled:
        dcs = [False]                      # no edge part: nothing to correct
    pps = [False, True] if assortative is None else [bool(assortative)]
    if n_blocks == 1:
        pps = [False]                      # one block: the two structures coincide
    fits = [_fit_sbm(g, n_blocks, dc, pp, n_init, seed, max_sweeps) for dc in dcs for pp in pps]
    return max(fits, key=lambda f: f.icl)


def _fit_sbm(g: _Graph, n_blocks, dc, pp, n_init=6, seed=0, max_sweeps=100):
    if not 1 <= n_blocks <= g.n:
        raise ValueError(f"n_blocks must lie in 1..{g.n}, got {n_blocks}")
    rng = np.random.default_rng(seed)
    floor = _var_floor(g)
    best = None
    starts = ["one"] if n_blocks == 1 else list(range(max(n_init, 1))) + ["leiden"]
    for start in starts:
        if start == "one":
            z0 = np.zeros(g.n, dtype=int)
        elif start == "leiden":       # modularity's partition, folded into n_blocks blocks
            z0 = _fold(_leiden(g.w, 1.0, seed), n_blocks)
        elif start % 2 == 0:
            z0 = _spectral_labels(g, n_blocks, rng)
        else:
            z0 = rng.integers(n_blocks, size=g.n)
        z = _sweeps(g, z0.astype(int), n_blocks, floor, rng, max_sweeps, dc, pp)
        ll = _log_likelihood(g, z, _params(g, z, int(z.max()) + 1, floor, dc, pp), dc)
        if best is None or ll > best[0]:
            best = (ll, z)
    ll, z = best
    k = int(z.max()) + 1
    oh = _onehot(z, k)
    edges = oh.T @ g.edge @ oh
    density = edges / np.maximum(oh.T @ g.obs @ oh, 1)
    # block-pair means as observed (not pooled), in the weights' own units
    means = np.where(edges > 0, (oh.T @ g.w @ oh) / np.maximum(edges, 1), 0.0)
    return SBMFit(z, k, _icl(ll, k, g, dc, pp), ll, means, density, g.weights, g.edges_modelled, dc, pp)


def _icl(ll, k, g: _Graph, dc, pp):
    return icl(ll, k, g.n, n_pairs=g.obs.sum() / 2, n_edges=g.edge.sum() / 2, edges_modelled=g.edges_modelled,
               degrees=g.edge.sum(1) if dc else None, assortative=pp)


def icl(log_likelihood: float, n_blocks: int, n_nodes: int, *, n_pairs: float | None = None,
        n_edges: float | None = None, edges_modelled: bool = True, degrees=None,
        assortative: bool = False) -> float:
    """Integrated classification likelihood of a fit (see the module's formula):
    ``n_pairs`` known node pairs (default all), ``n_edges`` edges (default every pair),
    ``degrees`` the node degrees of a degree-corrected fit (None: not corrected)."""
    n_pairs = n_nodes * (n_nodes - 1) / 2 if n_pairs is None else n_pairs
    n_edges = n_pairs if n_edges is None else n_edges
    pair_params = min(n_blocks, 2) if assortative else n_blocks * (n_blocks + 1) / 2
    penalty = 0.5 * (pair_params + 1) * np.log(max(n_edges, 1))
    if edges_modelled:
        penalty += 0.5 * pair_params * np.log(max(n_pairs, 1))
        if degrees is not None:
            penalty += 0.5 * float(np.log(np.maximum(np.asarray(degrees, dtype=float), 1)).sum())
    return float(log_likelihood - penalty - 0.5 * (n_blocks - 1) * np.log(max(n_nodes, 1)))


def weighted_sbm(adjacency, n_blocks: int | None = None, *, weights: str = "auto",
                 degree_corrected: bool | None = None, assortative: bool | None = None, max_blocks: int = 8,
                 n_init: int = 6, seed: int = 0, return_fit: bool = False):
    """Block label per node of a weighted graph (N x N, symmetric; 0 = no edge; NaN = a
    pair whose weight is unknown, left out rather than read as 0).

    ``weights``: "normal" (any sign), "lognormal" or "gamma" (positive weights), or
    "auto" (the default): gamma where every edge weight is positive, else normal;
    ``degree_corrected`` and ``assortative``: True, False or None (both, by ICL); see the
    module. With ``n_blocks`` None the number of blocks (1..``max_blocks``) maximizes ICL;
    the search stops once ICL has fallen for two block counts in a row. ``return_fit``
    gives the SBMFit (means, edge densities, the variant kept, ICL per block count)
    instead of the labels."""
    g = _graph(adjacency, weights)
    if n_blocks is not None:
        fit = _best_model(g, n_blocks, degree_corrected, assortative, n_init, seed)
        return fit if return_fit else fit.labels
    best, scores, falls = None, {}, 0
    for k in range(1, min(max_blocks, g.n) + 1):
        fit = _best_model(g, k, degree_corrected, assortative, n_init, seed)
        scores[k] = fit.icl
        if best is None or fit.icl > best.icl:
            best, falls = fit, 0
        else:
            falls += 1
            if falls >= 2:
                break
    best.scores = scores
    return best if return_fit else best.labels


def degree_preserving_null(adjacency, *, n_swaps: int | None = None, seed: int = 0) -> np.ndarray:
    """A random graph with the same degree of every node and the same multiset of weights:
    the edges rewired by double-edge swaps (networkx), each rewired edge drawing a weight
    from the original edges at random. Unknown (NaN) pairs stay unknown. The null model
    beside a community result: structure found here was chance. On a dense graph few
    swaps are possible (none on a complete one); those that networkx finds are kept and
    the shuffled weights carry the rest of the null."""
    import networkx as nx

    g = _graph(adjacency, "normal")
    rng = np.random.default_rng(seed)
    iu, ju = np.nonzero(np.triu(g.edge, 1))
    graph = nx.Graph()
    graph.add_nodes_from(range(g.n))
    graph.add_edges_from(zip(iu.tolist(), ju.tolist()))
    n_edges = graph.number_of_edges()
    complete = n_edges == g.n * (g.n - 1) // 2
    if not complete and n_edges >= 2:
        wanted = n_swaps or 10 * n_edges
        try:
            nx.double_edge_swap(graph, nswap=wanted, max_tries=100 * wanted, seed=int(rng.integers(2 ** 31)))
        except nx.NetworkXAlgorithmError:
            pass            # a dense graph: the swaps made so far stand (each keeps every degree)
    out = np.zeros((g.n, g.n))
    edges = np.array(graph.edges(), dtype=int).reshape(-1, 2)
    out[edges[:, 0], edges[:, 1]] = rng.permutation(g.w[iu, ju])
    out = out + out.T
    out[(g.obs == 0) & ~np.eye(g.n, dtype=bool)] = np.nan
    return out


def leiden(adjacency, *, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Leiden communities (igraph, modularity objective, weights as given; negative,
    zero and unknown (NaN) weights are dropped), as a label per node."""
    return _leiden(_graph(adjacency, "normal").w, resolution, seed)


def _leiden(w, resolution, seed):
    import igraph as ig

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

