"""Connectome readers, the connectome store and graphs; the neuron registry's names are
re-exported from its home, :mod:`wormflow.core`."""

from wormflow.core.errors import (FormatError, LabelError, RecordingError, StoreError, UnknownFormatError,
                                  WormflowError)
from wormflow.core.labels import LabelParse, canonical_label, parse_label
from wormflow.core.neurons import classes, neuron_index, neuron_names, neuron_table

__all__ = [
    "WormflowError", "FormatError", "UnknownFormatError", "RecordingError", "StoreError",
    "LabelError", "LabelParse", "canonical_label", "parse_label", "neuron_names",
    "neuron_index", "neuron_table", "classes", "open_connectome", "to_networkx", "consensus",
]

_LAZY = {"open_connectome": "connectome.store", "to_networkx": "connectome.graph", "consensus": "connectome.graph"}


def __getattr__(name: str):
    # the store and graph API pull in xarray/zarr/networkx; the registry (used by every
    # reader) must stay cheap to import
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'connectome' has no attribute {name!r}")
