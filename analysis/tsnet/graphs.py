"""Time series to complex networks: visibility, cycle and recurrence graphs and their topology.

Constructions (each returns a ``networkx`` graph whose nodes are sample indices of ``x``,
or cycle numbers for cycle networks):

- ``visibility_graph(x, kind="natural"|"horizontal")``: Lacasa et al. 2008 natural and
  Luque et al. 2009 horizontal visibility graphs, built by ts2vg (weighted and directed
  variants passed through).
- ``cycle_network(x)``: Zhang & Small 2006; one node per cycle between consecutive peaks
  (or troughs), linked where two cycles are similar enough.
- ``recurrence_network(x)``: an epsilon-recurrence network of the delay embedding, with
  epsilon chosen for a fixed recurrence rate (Marwan, Donner et al.).

Missing samples (NaN). A run of at most ``max_gap`` NaNs between two finite samples is
bridged by linear interpolation (``max_gap=0``, the default, bridges nothing); a longer run
splits the series into segments that are built separately and never see, cycle with or
embed across each other. Leading and trailing NaNs are dropped, and segments shorter than
``min_length`` samples are left out. The graph records what happened in ``G.graph``
(``n_segments``, ``n_interpolated``, ``n_dropped``).

Metrics (``graph_metrics``) are computed on the unweighted, undirected topology.

The gap policy and the cycle and recurrence networks live in :mod:`analysis.tsnet.networks`;
the package :mod:`analysis.tsnet` offers every construction.
"""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from analysis.tsnet.networks import Segments, cycle_network, recurrence_network, segments

KINDS = ("natural", "horizontal")
CONSTRUCTIONS = ("natural", "horizontal", "cycle", "recurrence")
METRICS = (
    "n_nodes", "n_edges", "mean_degree", "max_degree", "density", "clustering", "transitivity",
    "giant_fraction", "path_length", "diameter", "path_exact", "assortativity", "modularity",
    "hvg_lambda", "hvg_k_min", "hvg_lambda_null", "nvg_gamma", "nvg_k_min", "nvg_gamma_null",
)
MIN_TAIL = 50        # degrees the tail fit needs at least
MIN_TAIL_FRACTION = 0.05     # ... and at least this share of all degrees
HVG_IID_LAMBDA = math.log(1.5)


# ---------------------------------------------------------------- visibility graphs

def _vg_builder(kind: str, directed, weighted, penetrable: int):
    from ts2vg import HorizontalVG, NaturalVG

    if kind not in KINDS:
        raise ValueError(f"unknown visibility graph kind {kind!r}; use one of {KINDS}")
    cls = NaturalVG if kind == "natural" else HorizontalVG
    return cls(directed=directed, weighted=weighted, penetrable_limit=penetrable)


def _vg_edges(seg: Segments, kind: str, *, directed=None, weighted=None, penetrable=0, t=None):
    """Nodes, edges (global sample indices) and weights of the visibility graph of every segment."""
    nodes, edges, weights = [], [], []
    for start, values in seg.parts:
        vg = _vg_builder(kind, directed, weighted, penetrable)
        xs = None if t is None else np.asarray(t, dtype=float)[start: start + values.size]
        vg.build(values, xs=xs)
        nodes.append(np.arange(start, start + values.size))
        e = np.asarray(vg.edges_unweighted if weighted else vg.edges, dtype=np.int64).reshape(-1, 2)
        edges.append(e + start)
        if weighted:
            weights.append(np.asarray(vg.weights, dtype=float))
    cat = (lambda a, shape: np.concatenate(a) if a else np.empty(shape))
    return (cat(nodes, 0).astype(np.int64), cat(edges, (0, 2)).astype(np.int64),
            cat(weights, 0) if weighted else None)


def visibility_graph(x, kind: str = "natural", *, directed: str | None = None, weighted: str | None = None,
                     t=None, penetrable: int = 0, max_gap: int = 0, min_length: int = 3) -> nx.Graph:
    """Natural or horizontal visibility graph of ``x`` as a ``networkx`` graph.

    ``directed`` ("left_to_right" or "top_to_bottom") gives a ``DiGraph``; ``weighted`` (any
    ts2vg weight name, e.g. "distance", "slope", "abs_slope", "angle") puts a ``weight`` on
    every edge; ``t`` gives uneven sample times for the natural VG's sight lines;
    ``penetrable`` lets that many intermediate samples block a line without breaking it.
    """
    seg = segments(x, max_gap=max_gap, min_length=min_length)
    nodes, edges, weights = _vg_edges(seg, kind, directed=directed, weighted=weighted, penetrable=penetrable, t=t)
    G = nx.DiGraph() if directed else nx.Graph()
    G.add_nodes_from(nodes.tolist())
    if weighted:
        G.add_weighted_edges_from(zip(edges[:, 0].tolist(), edges[:, 1].tolist(), weights.tolist()))
    else:
        G.add_edges_from(edges.tolist())
    G.graph.update(seg.graph_attrs(), construction="visibility", kind=kind,
                   directed=directed, weighted=weighted, penetrable=penetrable, max_gap=max_gap)
    return G


# ---------------------------------------------------------------- exponents

def _geometric_rate(k: np.ndarray, k_min: int) -> float:
    """Maximum-likelihood rate of P(k) ~ exp(-lambda k) for the degrees k >= k_min."""
    tail = k[k >= k_min] - k_min
    if tail.size < 10:
        return float("nan")
    m = tail.mean()
    return float(math.log((1 + m) / m)) if m > 0 else float("inf")


def _power_law_exponent(k: np.ndarray, k_min: int) -> float:
    """Discrete power-law exponent gamma of P(k) ~ k^-gamma for k >= k_min (Clauset et al. 2009, eq. 3.7)."""
    tail = k[k >= k_min].astype(float)
    if tail.size < 10:
        return float("nan")
    return float(1 + tail.size / np.sum(np.log(tail / (k_min - 0.5))))


def _tail_cdf(law: str, param: float, k_min: int, ks: np.ndarray) -> np.ndarray:
    """P(K <= k | K >= k_min) of the fitted tail law at the integers ``ks``."""
    if law == "geometric":
        return 1 - np.exp(-param * (ks - k_min + 1))
    from scipy.special import zeta

    return 1 - zeta(param, ks + 1) / zeta(param, k_min)


def fit_tail(k, law: str, *, k_floor: int, min_tail: int | None = None) -> tuple[float, int]:
    """The degree law fitted where it holds: (parameter, k_min).

    For every k_min from ``k_floor`` up to the largest that leaves ``min_tail`` degrees in
    the tail (default: 50 and 5% of all; a shorter tail lets noise's rate wander, measured
    0.40-0.44 on 30 noise series of 3000 points at 50, 0.40-0.43 at 5%), the law ("geometric": the HVG's exp(-lambda k); "power": the NVG's k^-gamma)
    is fitted by maximum likelihood to k >= k_min; the k_min kept minimizes the
    Kolmogorov-Smirnov distance between the tail and its fit (Clauset, Shalizi & Newman
    2009's rule). The low degrees, where a finite series' law bends, are left out that way.
    (NaN, k_floor) when even the floor leaves fewer than ``min_tail`` degrees."""
    k = np.asarray(k)
    if min_tail is None:
        min_tail = max(MIN_TAIL, int(np.ceil(MIN_TAIL_FRACTION * k.size)))
    fit = _geometric_rate if law == "geometric" else _power_law_exponent
    best = (np.inf, float("nan"), int(k_floor))
    top = int(k.max()) if k.size else k_floor
    for k_min in range(int(k_floor), top + 1):
        tail = np.sort(k[k >= k_min])
        if tail.size < min_tail:
            break
        param = fit(k, k_min)
        if not np.isfinite(param):
            continue
        ks = np.arange(k_min, int(tail[-1]) + 1)
        empirical = np.searchsorted(tail, ks, side="right") / tail.size
        distance = float(np.max(np.abs(empirical - _tail_cdf(law, param, k_min, ks))))
        if distance < best[0]:
            best = (distance, param, k_min)
    return best[1], best[2]


def _degrees(x_or_graph, kind: str, max_gap: int) -> np.ndarray:
    if isinstance(x_or_graph, nx.Graph):
        return np.fromiter((d for _, d in x_or_graph.to_undirected(as_view=True).degree()), dtype=np.int64)
    seg = segments(x_or_graph, max_gap=max_gap)
    nodes, edges, _ = _vg_edges(seg, kind)
    return _degree_array(nodes, edges)[1]


def hvg_exponent(x, *, k_min: int | None = None, max_gap: int = 0) -> float:
    """Fitted exponential rate lambda of the horizontal VG degree distribution P(k) ~ exp(-lambda k).

    ``x`` is a series (its horizontal VG is built) or an already built graph. The rate is the
    maximum-likelihood estimate for a geometric tail over k >= ``k_min``; ``k_min`` None (the
    default) picks it by ``fit_tail``'s rule (k >= 3, KS distance). An iid series gives
    ln(3/2) = 0.405, correlated stochastic series more, chaotic series less (Luque et al. 2009).
    """
    k = _degrees(x, "horizontal", max_gap)
    return fit_tail(k, "geometric", k_floor=3)[0] if k_min is None else _geometric_rate(k, k_min)


NVG_K_MIN = 6


def nvg_exponent(x, *, k_min: int = NVG_K_MIN, max_gap: int = 0) -> float:
    """Power-law exponent gamma of the natural VG degree tail P(k) ~ k^-gamma for k >= ``k_min``.

    For fractional Brownian motion gamma = 3 - 2H (Lacasa et al. 2009), which the fit from
    k = 6 reproduces (tests). The fixed start is deliberate: ``fit_tail``'s KS rule moves
    k_min into the finite series' cutoff, where the exponent rises (measured on fBm of
    8192 samples, H = 0.3: 2.7-3.0 against 2.4).
    """
    return _power_law_exponent(_degrees(x, "natural", max_gap), k_min)


# ---------------------------------------------------------------- metrics

def _degree_array(nodes: np.ndarray, edges: np.ndarray):
    """Undirected simple adjacency (CSR on positions of ``nodes``) and its degrees."""
    n = nodes.size
    pos = np.searchsorted(nodes, edges) if edges.size else np.empty((0, 2), np.int64)
    pos = pos[pos[:, 0] != pos[:, 1]]
    rows = np.concatenate([pos[:, 0], pos[:, 1]])
    cols = np.concatenate([pos[:, 1], pos[:, 0]])
    A = sparse.csr_matrix((np.ones(rows.size, dtype=np.float64), (rows, cols)), shape=(n, n))
    A.sum_duplicates()
    A.data[:] = 1.0  # a repeated edge counts once
    return A, np.asarray(A.sum(axis=1)).ravel().astype(np.int64)


def _igraph(n: int, A: sparse.csr_matrix):
    import igraph

    coo = sparse.triu(A, 1).tocoo()
    return igraph.Graph(n=n, edges=np.column_stack([coo.row, coo.col]).tolist())


def _path_stats(A: sparse.csr_matrix, exact_limit: int, sources: int, seed: int):
    """Mean shortest path and diameter of a connected graph: exact (igraph BFS from every
    node) up to ``exact_limit`` nodes, else from ``sources`` seeded BFS sources."""
    n = A.shape[0]
    if n < 2:
        return float("nan"), float("nan"), 1.0
    if n <= exact_limit:
        hist = _igraph(n, A).path_length_hist(directed=False)   # one BFS from every node
        length, _, count = (np.array(v, dtype=float) for v in zip(*hist.bins()))
        return float((length * count).sum() / count.sum()), float(length[count > 0].max()), 1.0
    src = np.random.default_rng(seed).choice(n, size=min(sources, n), replace=False)
    total, count, diam = 0.0, 0, 0.0
    for block in np.array_split(src, max(1, src.size // 64)):
        D = csgraph.shortest_path(A, method="D", unweighted=True, indices=block)
        total += D.sum()
        count += D.size - block.size
        diam = max(diam, float(D.max()))
    return total / count, diam, 0.0


def _modularity(n: int, A: sparse.csr_matrix, seed: int) -> float:
    """Modularity of the Louvain (igraph multilevel) partition, with a seeded random source."""
    import random

    import igraph

    if A.nnz == 0:
        return float("nan")
    g = _igraph(n, A)
    igraph.set_random_number_generator(random.Random(seed))
    try:
        return float(g.modularity(g.community_multilevel()))
    finally:
        igraph.set_random_number_generator(random)


def _metrics_from_arrays(nodes, edges, kind: str | None, *, exact_limit=5000, path_sources=256,
                         modularity=True, seed=0) -> dict[str, float]:
    A, k = _degree_array(nodes, edges)
    n = nodes.size
    m = A.nnz / 2
    out = dict.fromkeys(METRICS, float("nan"))
    out.update(n_nodes=float(n), n_edges=float(m))
    if n == 0:
        return out
    out["mean_degree"] = 2 * m / n
    out["max_degree"] = float(k.max())
    out["density"] = 2 * m / (n * (n - 1)) if n > 1 else float("nan")
    tri = np.asarray((A @ A).multiply(A).sum(axis=1)).ravel() / 2
    pairs = k * (k - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(k >= 2, tri / np.where(pairs > 0, pairs, 1), 0.0)
    out["clustering"] = float(local.mean())
    out["transitivity"] = float(tri.sum() / pairs.sum()) if pairs.sum() > 0 else 0.0
    n_comp, comp = csgraph.connected_components(A, directed=False)
    giant = np.flatnonzero(comp == np.bincount(comp).argmax())
    out["giant_fraction"] = giant.size / n
    Ag = A[giant][:, giant]
    out["path_length"], out["diameter"], out["path_exact"] = _path_stats(Ag, exact_limit, path_sources, seed)
    if m > 0:
        coo = A.tocoo()
        du, dv = k[coo.row].astype(float), k[coo.col].astype(float)
        if du.std() > 0:
            out["assortativity"] = float(np.corrcoef(du, dv)[0, 1])
    if modularity:
        out["modularity"] = _modularity(n, A, seed)
    if kind == "horizontal":
        out["hvg_lambda"], out["hvg_k_min"] = fit_tail(k, "geometric", k_floor=3)
    elif kind == "natural":
        out["nvg_gamma"], out["nvg_k_min"] = _power_law_exponent(k, NVG_K_MIN), NVG_K_MIN
    return {name: float(v) for name, v in out.items()}


def _graph_arrays(G: nx.Graph):
    nodes = np.array(sorted(G.nodes), dtype=np.int64)
    edges = np.array(list(G.edges()), dtype=np.int64).reshape(-1, 2)
    return nodes, edges


def graph_metrics(G: nx.Graph, *, exact_limit: int = 5000, path_sources: int = 256, modularity: bool = True,
                  seed: int = 0) -> dict[str, float]:
    """Topology of ``G`` (undirected, unweighted view) as metric name -> value.

    ``mean_degree``, ``max_degree``, ``density``; ``clustering`` (mean local clustering, 0 for
    degree < 2, as networkx) and ``transitivity``; ``giant_fraction`` of nodes in the largest
    component, on which ``path_length`` (mean shortest path) and ``diameter`` are measured:
    exactly up to ``exact_limit`` nodes, else from ``path_sources`` seeded BFS sources
    (``path_exact`` is 0 then and the diameter a lower bound); degree ``assortativity``;
    ``modularity`` of the seeded Louvain (igraph multilevel) partition; ``hvg_lambda`` (horizontal VGs, from k >= 3) or
    ``nvg_gamma`` (natural VGs, k >= 6), the rate fitted on the tail chosen by ``fit_tail``
    (the fit's start in ``hvg_k_min``, ``nvg_k_min``), and each beside the same fit on a
    phase-randomized surrogate of the trace (``hvg_lambda_null``, ``nvg_gamma_null``). Nodes must be integers (as every constructor makes).
    """
    nodes, edges = _graph_arrays(G)
    return _metrics_from_arrays(nodes, edges, G.graph.get("kind"), exact_limit=exact_limit,
                                path_sources=path_sources, modularity=modularity, seed=seed)


def degree_distribution(G_or_degrees, k_max: int | None = None) -> np.ndarray:
    """P(k) for k = 0..k_max (the last bin holds k >= k_max)."""
    if isinstance(G_or_degrees, nx.Graph):
        k = _degrees(G_or_degrees, "", 0)
    else:
        k = np.asarray(G_or_degrees, dtype=np.int64)
    k_max = int(k.max()) if k_max is None else k_max
    counts = np.bincount(np.minimum(k, k_max), minlength=k_max + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def hvg_iid_distribution(k) -> np.ndarray:
    """The exact HVG degree distribution of any iid series, P(k) = (1/3)(2/3)^(k-2) for k >= 2."""
    k = np.asarray(k, dtype=float)
    return np.where(k >= 2, (1 / 3) * (2 / 3) ** (k - 2), 0.0)


# ---------------------------------------------------------------- over a store

def _trace_graph(x, construction: str, options: dict):
    """Nodes, edges and degrees of one trace's graph by any construction (no networkx for VGs)."""
    max_gap = options.get("max_gap", 0)
    if construction in KINDS:
        seg = segments(x, max_gap=max_gap)
        nodes, edges, _ = _vg_edges(seg, construction, penetrable=options.get("penetrable", 0))
        return nodes, edges
    builder = cycle_network if construction == "cycle" else recurrence_network
    kw = {k: v for k, v in options.items() if k in _OPTION_KEYS[construction]}
    return _graph_arrays(builder(x, **kw))


def _surrogate_exponent(x, kind, options) -> dict[str, float]:
    """The VG exponent of a phase-randomized surrogate of ``x`` (same spectrum, random
    phases), fitted over the same k_min rule: the null beside the trace's own value. The
    surrogate's seed comes from the trace's bytes and ``seed``, so reruns agree."""
    import zlib

    from analysis.surrogates import phase_randomized

    rng = np.random.default_rng([int(options.get("seed", 0)), zlib.crc32(np.ascontiguousarray(x).tobytes())])
    surrogate = phase_randomized(x, rng)
    nodes, edges, _ = _vg_edges(segments(surrogate, max_gap=options.get("max_gap", 0)), kind,
                                penetrable=options.get("penetrable", 0))
    k = _degree_array(nodes, edges)[1]
    if kind == "horizontal":
        return {"hvg_lambda_null": fit_tail(k, "geometric", k_floor=3)[0]}
    return {"nvg_gamma_null": _power_law_exponent(k, NVG_K_MIN)}


_OPTION_KEYS = {
    "cycle": {"split", "similarity", "threshold", "density", "min_distance", "length", "embed_dim", "max_gap"},
    "recurrence": {"dim", "lag", "rate", "epsilon", "norm", "max_gap", "exact_limit", "seed"},
}


def trace_metrics(x, construction: str, k_max: int = 40, **options) -> tuple[np.ndarray, np.ndarray]:
    """Metrics (in ``METRICS`` order) and degree counts (0..k_max, last bin >= k_max) of one trace.

    An all-NaN trace (an unobserved neuron) gives NaNs and zero counts without building anything.
    """
    if construction not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction {construction!r}; use one of {CONSTRUCTIONS}")
    x = np.asarray(x, dtype=float)
    counts = np.zeros(k_max + 1)
    if not np.isfinite(x).any():
        return np.full(len(METRICS), np.nan), counts
    nodes, edges = _trace_graph(x, construction, options)
    kind = construction if construction in KINDS else None
    metric_kw = {k: options[k] for k in ("path_sources", "modularity", "seed") if k in options}
    values = _metrics_from_arrays(nodes, edges, kind, **metric_kw)
    if kind is not None and options.get("null", True):
        values.update(_surrogate_exponent(x, kind, options))
    _, k = _degree_array(nodes, edges)
    counts = np.bincount(np.minimum(k, k_max), minlength=k_max + 1).astype(float)
    return np.array([values[m] for m in METRICS]), counts


def tsnet_metrics(da, constructions=("horizontal", "natural"), *, dim: str = "time", k_max: int = 40,
                  **options):
    """Network metrics of every trace of ``da`` (e.g. the store's ``calcium``: worm, time, neuron).

    Returns an ``xarray.Dataset`` with, per construction C, ``C`` over (the other dims...,
    metric) and ``C_degree_counts`` over (the other dims..., degree). Works lazily: on a
    dask-backed ``da`` each chunk of traces becomes one task (``dim`` must be one chunk),
    so a distributed client computes it in parallel. ``options`` go to the constructors and
    to ``graph_metrics`` (``max_gap``, ``penetrable``, ``density``, ``rate``, ``modularity``...).
    """
    import xarray as xr

    bad = set(constructions) - set(CONSTRUCTIONS)
    if bad:
        raise ValueError(f"unknown constructions {sorted(bad)}; use some of {CONSTRUCTIONS}")
    if getattr(da, "chunks", None):
        da = da.chunk({dim: -1})
    out = {}
    for c in constructions:
        metrics, counts = xr.apply_ufunc(
            trace_metrics, da, kwargs={"construction": c, "k_max": k_max, **options},
            input_core_dims=[[dim]], output_core_dims=[["metric"], ["degree"]],
            vectorize=True, dask="parallelized", output_dtypes=[float, float],
            dask_gufunc_kwargs={"output_sizes": {"metric": len(METRICS), "degree": k_max + 1}},
        )
        out[c] = metrics
        out[f"{c}_degree_counts"] = counts
    ds = xr.Dataset(out).assign_coords(metric=list(METRICS), degree=np.arange(k_max + 1))
    ds.attrs["tsnet_params"] = json.dumps({"constructions": list(constructions), "dim": dim, "k_max": k_max,
                                           **options}, sort_keys=True, default=str)
    return ds


def iid_reference(construction: str, n: int, *, k_max: int = 40, n_series: int = 20, seed: int = 0,
                  **options) -> np.ndarray:
    """Mean degree distribution P(k), k = 0..k_max, of the graphs of ``n_series`` iid Gaussian
    series of length ``n`` (the reference a trace's distribution is read against)."""
    rng = np.random.default_rng(seed)
    total = np.zeros(k_max + 1)
    for _ in range(n_series):
        _, counts = trace_metrics(rng.normal(size=n), construction, k_max=k_max, modularity=False, **options)
        total += counts
    return total / total.sum() if total.sum() else total
