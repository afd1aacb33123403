"""Turn a source as read (:class:`connectome.raw.RawConnectome`) into layers on the registry.

* Names go through :func:`wormflow.core.labels.parse_label`; a name that is not one of the
  302 neurons is looked up among the known non-neuronal and male cells
  (:func:`wormflow.core.neurons.other_cells`); anything else is reported as unknown, never
  guessed. Every edge stays in the long-form table with its raw names.
* Layers are 302 x 302, ``[pre, post]``. A pair is NaN unless the source covered both
  neurons; covered pairs without an edge are 0. A neuron is covered only where the
  source lists it: in an edge, or in a matrix row or column holding a real entry (a
  non-zero count, or any finite value of a non-count layer). A matrix's margins alone
  cover nothing: the Witvliet 2020 sheets name all 182 neurons in every dataset although
  each dataset reconstructed 161-181 of them. A reader may narrow coverage further
  (``RawConnectome.covered``), never widen it.
* Edges of one kind between the same pair are summed (e.g. Varshney's S and Sp rows).
* Electrical layers are made symmetric with ``max(W, W.T)``: sources list a gap junction
  once (White, Witvliet tables) or once from each partner with the same count
  (NemaNode, Varshney EJ), and ``max`` gives the count in both cases without doubling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wormflow.core.labels import parse_label
from wormflow.core.neurons import neuron_index, other_cells
from connectome.raw import RawConnectome


# body-wall muscles as NemaNode's EM datasets name them (BWM-DL01...); the cell table
# names them differently, so they are recognised by this documented pattern
_BODY_WALL_MUSCLE = re.compile(r"^BWM-[DV][LR]\d{2}$")


@dataclass
class BuiltSource:
    source: str
    layers: dict[str, np.ndarray]          # kind -> (302, 302) float32
    covered: np.ndarray                    # (302,) bool
    edges: pd.DataFrame                    # long form, raw and canonical names
    unknown: list[str] = field(default_factory=list)
    non_neuronal: list[str] = field(default_factory=list)


def _names(raw_names) -> dict[str, str]:
    """Raw name -> registry name ('' when the name is not one of the 302)."""
    index = neuron_index()
    out = {}
    for name in set(raw_names):
        canonical = parse_label(name).name
        out[name] = canonical if canonical in index else ""
    return out


COUNT_KINDS = ("chemical", "electrical", "funatlas_occurrences")


def listed_names(raw: RawConnectome) -> set[str]:
    """The names a source lists: every edge's two ends, and each matrix row or column that
    holds a real entry (non-zero for counts, finite otherwise)."""
    names = set(raw.edges["pre"]) | set(raw.edges["post"])
    for m in raw.matrices:
        values = np.asarray(m.values, dtype=np.float64)
        real = np.isfinite(values) & ((values != 0) if m.kind in COUNT_KINDS else True)
        names |= {p for p, hit in zip(m.pre, real.any(axis=1)) if hit}
        names |= {p for p, hit in zip(m.post, real.any(axis=0)) if hit}
    return names


def build(raw: RawConnectome) -> BuiltSource:
    index = neuron_index()
    n = len(index)
    names = set(raw.edges["pre"]) | set(raw.edges["post"])
    for m in raw.matrices:
        names |= set(m.pre) | set(m.post)
    if raw.covered is not None:
        names |= set(raw.covered)
    mapping = _names(names)
    others = other_cells()
    not_neurons = sorted(k for k, v in mapping.items() if not v)
    non_neuronal = [k for k in not_neurons if k in others or _BODY_WALL_MUSCLE.match(k)]
    unknown = [k for k in not_neurons if k not in non_neuronal]

    covered_names = listed_names(raw)
    if raw.covered is not None:
        covered_names &= set(raw.covered)
    covered = np.zeros(n, bool)
    for name in covered_names:
        if mapping.get(name):
            covered[index[mapping[name]]] = True
    mask = np.outer(covered, covered)

    layers: dict[str, np.ndarray] = {}
    from_matrix = set()
    for m in raw.matrices:
        rows = np.array([index[mapping[p]] if mapping[p] else -1 for p in m.pre])
        cols = np.array([index[mapping[p]] if mapping[p] else -1 for p in m.post])
        keep_r, keep_c = rows >= 0, cols >= 0
        dense = np.full((n, n), np.nan, np.float64)
        block = m.values[np.ix_(keep_r, keep_c)]
        dense[np.ix_(rows[keep_r], cols[keep_c])] = block
        dense = np.where(mask, dense, np.nan)        # a margin's zeros for a neuron not listed are not data
        if m.kind in COUNT_KINDS:
            dense = np.where(mask & np.isnan(dense), 0.0, dense)      # counts: covered and absent is 0
        layers[m.kind] = dense
        from_matrix.add(m.kind)

    edges = raw.edges.assign(pre_neuron=raw.edges["pre"].map(mapping).fillna(""),
                             post_neuron=raw.edges["post"].map(mapping).fillna(""))
    neuronal = edges[(edges["pre_neuron"] != "") & (edges["post_neuron"] != "")]
    for kind, group in neuronal.groupby("kind"):
        if kind in from_matrix:
            continue
        pairs = group.groupby(["pre_neuron", "post_neuron"])["weight"]
        values = pairs.first() if kind == "sign" else pairs.sum()      # a sign is not a count
        dense = np.full((n, n), np.nan) if kind == "sign" else np.where(mask, 0.0, np.nan)
        dense[[index[a] for a, _ in values.index], [index[b] for _, b in values.index]] = values.to_numpy()
        layers[kind] = dense
    if "electrical" in layers:
        e = layers["electrical"]
        layers["electrical"] = np.where(np.isnan(e) & np.isnan(e.T), np.nan, np.fmax(e, e.T))
    return BuiltSource(raw.source, {k: v.astype(np.float32) for k, v in layers.items()}, covered, edges,
                       unknown, non_neuronal)
