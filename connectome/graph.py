"""Graphs and consensus from the connectome store (pure functions on its Dataset)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import xarray as xr

from wormflow.core.errors import WormflowError


def _layer(ds: xr.Dataset, kind: str) -> xr.DataArray:
    if kind not in ds.data_vars or "source" not in ds[kind].dims:
        layers = [v for v in ds.data_vars if ds[v].dims == ("source", "pre", "post")]
        raise WormflowError(f"no layer {kind!r} in the connectome store (layers: {', '.join(layers)})")
    return ds[kind]


def to_networkx(ds: xr.Dataset, source: str, kind: str = "chemical") -> nx.Graph:
    """One source's layer as a graph: ``DiGraph`` for directed layers, ``Graph`` for electrical.

    Nodes are the neurons the source covered (with class and cell type); an edge per
    non-zero value, its value in ``weight``.
    """
    layer = _layer(ds, kind)
    if source not in ds["source"].values:
        raise WormflowError(f"no source {source!r} in the connectome store "
                            f"(sources: {', '.join(ds['source'].values.tolist())})")
    w = layer.sel(source=source).values
    covered = ds["covered"].sel(source=source).values
    names = ds["pre"].values
    g = nx.Graph() if kind == "electrical" else nx.DiGraph()
    g.graph.update(source=source, kind=kind)
    cls, typ = ds["pre_class"].values, ds["pre_cell_type"].values      # read once, not per node
    for i in np.flatnonzero(covered):
        g.add_node(names[i], neuron_class=str(cls[i]), cell_type=str(typ[i]))
    i, j = np.nonzero(np.nan_to_num(w) != 0)
    if kind == "electrical":
        keep = i <= j
        i, j = i[keep], j[keep]
    g.add_weighted_edges_from((names[a], names[b], float(w[a, b])) for a, b in zip(i, j))
    return g


def consensus(ds: xr.Dataset, sources: list[str] | None = None, kind: str = "chemical") -> xr.Dataset:
    """Per-pair agreement across sources.

    ``mean`` and ``std`` of the weight over the sources that covered the pair (every
    source counts separately, so equal weights from two sources are two observations),
    ``n_sources`` that saw an edge (weight > 0), ``n_covering`` that covered the pair,
    and ``fraction`` = n_sources / n_covering. Default sources: every source with the layer.
    """
    layer = _layer(ds, kind)
    if sources is None:
        has = layer.notnull().any(dim=("pre", "post")).values
        sources = ds["source"].values[has].tolist()
    missing = sorted(set(sources) - set(ds["source"].values.tolist()))
    if missing:
        raise WormflowError(f"no source(s) {missing} in the connectome store")
    w = layer.sel(source=sources).values.astype(np.float64)
    covering = np.isfinite(w)
    n_cov = covering.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_cov > 0, np.nansum(w, axis=0) / n_cov, np.nan)
        var = np.where(n_cov > 0, np.nansum((w - mean) ** 2, axis=0) / n_cov, np.nan)
        seen = (np.nan_to_num(w) > 0).sum(axis=0)
        frac = np.where(n_cov > 0, seen / n_cov, np.nan)
    dims = ("pre", "post")
    coords = {"pre": ds["pre"].values, "post": ds["post"].values}
    return xr.Dataset({"mean": (dims, mean), "std": (dims, np.sqrt(var)), "n_sources": (dims, seen),
                       "n_covering": (dims, n_cov), "fraction": (dims, frac)}, coords=coords,
                      attrs={"kind": kind, "sources": list(sources)})
