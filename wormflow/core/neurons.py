"""The canonical neuron registry: the 302 hermaphrodite neurons in one fixed order.

Order: natural sort of the names (``AS1, AS2, ..., AS11``), so the position of a neuron
never depends on which datasets were ingested. See ``connectome/build_registry.py`` for
where each column comes from.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

# pandas is imported only by neuron_table(): the ingest path needs names and columns,
# and pandas (with the pyarrow it pulls in) is most of a small process's memory
FLOAT_COLUMNS = ("x_um", "y_um", "z_um")


@lru_cache(maxsize=1)
def registry_rows() -> tuple[dict[str, str], ...]:
    """The registry as plain rows of text, in registry order (no pandas)."""
    with resources.files("wormflow.core").joinpath("data/neurons.csv").open(newline="") as fh:
        return tuple(csv.DictReader(fh))


def registry_columns() -> dict[str, list]:
    """Column name -> values in registry order (positions as float, NaN where unknown)."""
    rows = registry_rows()
    out: dict[str, list] = {}
    for col in rows[0]:
        if col == "name":
            continue
        values = [r[col] for r in rows]
        out[col] = [float(v) if v else float("nan") for v in values] if col in FLOAT_COLUMNS else values
    return out


def neuron_table():
    """The registry as a pandas DataFrame indexed by neuron name."""
    import pandas as pd

    with resources.files("wormflow.core").joinpath("data/neurons.csv").open() as fh:
        table = pd.read_csv(fh, dtype={"lr": str, "dv": str, "neurotransmitter": str,
                                       "alternative_neurotransmitter": str}, keep_default_na=False,
                            na_values={c: [""] for c in FLOAT_COLUMNS})
    return table.set_index("name")


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(r["name"] for r in registry_rows())


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
    for row in registry_rows():
        out.setdefault(row["neuron_class"], []).append(row["name"])
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def other_cells() -> dict[str, str]:
    """Non-neuronal and male-specific cells named in connectomes: name -> cell type."""
    with resources.files("wormflow.core").joinpath("data/other_cells.csv").open(newline="") as fh:
        return {r["name"]: r["type"] for r in csv.DictReader(fh)}
