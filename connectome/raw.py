"""What a connectome reader returns: one source's data as the file holds it.

A reader never renames cells and never drops a partner: ``edges`` keeps the file's own
names (stripped of padding whitespace only) for every partner, neurons or not; matrices
keep their own row and column names. :mod:`connectome.build` maps names to the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SYNAPTIC = ("chemical", "electrical")
# every kind of layer a source can hold, with what its values mean unless a reader says more
KINDS = {
    "chemical": "chemical synapse count (directed pre -> post)",
    "electrical": "gap junction count (symmetric)",
    "monoamine": "number of monoamine ligand-receptor pairings (Bentley 2016)",
    "neuropeptide": "number of neuropeptide ligand-receptor pairings (Bentley 2016)",
    "sign": "predicted synapse sign: +1 excitatory, -1 inhibitory, 0 complex (Fenyves 2020)",
    "funatlas_q": "q-value of a functional connection, stimulated pre -> responding post (Randi 2023)",
    "funatlas_q_eq": "q-value under the equivalence null (Randi 2023)",
    "funatlas_dff": "mean response amplitude dF/F of post to stimulation of pre (Randi 2023)",
    "funatlas_occurrences": "number of observed stimulations of pre with post recorded (Randi 2023)",
}
EDGE_COLUMNS = ("pre", "post", "kind", "weight", "detail")


@dataclass
class Matrix:
    """A dense layer: ``values[i, j]`` is pre ``pre[i]`` -> post ``post[j]``."""
    kind: str
    pre: list[str]
    post: list[str]
    values: np.ndarray


@dataclass
class RawConnectome:
    source: str                     # e.g. "white_1986_whole", "varshney_2011"
    source_file: str
    format: str
    edges: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EDGE_COLUMNS)))
    matrices: list[Matrix] = field(default_factory=list)
    weight: dict[str, str] = field(default_factory=dict)       # kind -> what a value means here
    covered: list[str] | None = None   # cells the source reconstructed (default: every name it uses)
    metadata: dict = field(default_factory=dict)
    extra_sources: list[str] = field(default_factory=list)

    def kinds(self) -> list[str]:
        found = set(self.edges["kind"]) | {m.kind for m in self.matrices}
        return [k for k in KINDS if k in found]


def edge_frame(pre, post, kind, weight, detail="") -> pd.DataFrame:
    """Edges with names stripped of padding and weights as float."""
    df = pd.DataFrame({"pre": pd.Series(pre, dtype=str).str.strip(),
                       "post": pd.Series(post, dtype=str).str.strip(),
                       "kind": kind, "weight": np.asarray(weight, dtype=float), "detail": detail})
    return df[list(EDGE_COLUMNS)]


def matrix_edges(m: Matrix, detail: str = "") -> pd.DataFrame:
    """The non-zero entries of a dense layer as edges (so non-neuronal partners stay listed)."""
    i, j = np.nonzero(np.nan_to_num(m.values) != 0)
    return edge_frame(np.asarray(m.pre, dtype=object)[i], np.asarray(m.post, dtype=object)[j], m.kind,
                      m.values[i, j], detail)
