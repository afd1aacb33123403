"""The canonical neuron registry: the 302 hermaphrodite neurons in one fixed order.

Order: natural sort of the names (``AS1, AS2, ..., AS11``), so the position of a neuron
never depends on which datasets were ingested. See ``connectome/build_registry.py`` for
where each column comes from.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd


@lru_cache(maxsize=1)
def neuron_table() -> pd.DataFrame:
    """The registry as a DataFrame indexed by neuron name (a fresh copy is cheap)."""
    with resources.files("connectome").joinpath("data/neurons.csv").open() as fh:
        table = pd.read_csv(fh, dtype={"lr": str, "dv": str, "neurotransmitter": str,
                                       "alternative_neurotransmitter": str}, keep_default_na=False,
                            na_values={"x_um": [""], "y_um": [""], "z_um": [""]})
    return table.set_index("name")


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(neuron_table().index)


def neuron_names() -> tuple[str, ...]:
    """The 302 canonical names in registry order."""
    return _names()


@lru_cache(maxsize=1)
def neuron_index() -> dict[str, int]:
    return {name: i for i, name in enumerate(_names())}


@lru_cache(maxsize=1)
def classes() -> dict[str, tuple[str, ...]]:
    """Neuron class -> its members in registry order (AVA -> (AVAL, AVAR))."""
    out: dict[str, list[str]] = {}
    for name, cls in neuron_table()["neuron_class"].items():
        out.setdefault(cls, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def other_cells() -> dict[str, str]:
    """Non-neuronal and male-specific cells named in connectomes: name -> cell type."""
    with resources.files("connectome").joinpath("data/other_cells.csv").open() as fh:
        table = pd.read_csv(fh, dtype=str, keep_default_na=False)
    return dict(zip(table["name"], table["type"]))
