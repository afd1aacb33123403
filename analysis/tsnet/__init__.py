"""Time series to complex networks (visibility, cycle and recurrence graphs) and their topology.

Modules: :mod:`.graphs` (the visibility graphs, degree laws, graph metrics and the
per-trace pipeline over a store), :mod:`.networks` (the gap policy every construction
applies, and the cycle and recurrence networks), :mod:`.simulation` (series of known
structure: fractional Gaussian noise and motion, pseudo-periodic signals).
"""

from analysis.tsnet.graphs import (CONSTRUCTIONS, METRICS, MIN_TAIL, degree_distribution, fit_tail, graph_metrics,
                                   hvg_exponent,
                                   hvg_iid_distribution, iid_reference, nvg_exponent, trace_metrics, tsnet_metrics,
                                   visibility_graph)
from analysis.tsnet.networks import Segments, cycle_network, recurrence_network, segments
from analysis.tsnet.simulation import fbm, fgn, pseudo_periodic

__all__ = ["CONSTRUCTIONS", "METRICS", "MIN_TAIL", "Segments", "cycle_network", "degree_distribution", "fbm", "fgn",
           "fit_tail",
           "graph_metrics", "hvg_exponent", "hvg_iid_distribution", "iid_reference", "nvg_exponent",
           "pseudo_periodic", "recurrence_network", "segments", "trace_metrics", "tsnet_metrics", "visibility_graph"]
