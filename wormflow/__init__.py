"""wormflow: C. elegans whole-brain activity and connectomes, in every lab's format, in one store.

The public face, one import for users::

    import wormflow
    ds = wormflow.open_activity("out/activity.zarr")
    ds.calcium.sel(neuron="AVAL")

Names are loaded on first use, so ``import wormflow`` (and the foundation in
:mod:`wormflow.core`, which every package imports) stays cheap.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "open_activity": "activity.store", "read_recordings": "activity.readers", "detect": "activity.readers",
    "homogenize": "activity.homogenize", "HomogenizeParams": "activity.homogenize",
    "RawRecording": "activity.raw", "open_connectome": "connectome.store", "read_connectome": "connectome.readers",
    "consensus": "connectome.graph", "to_networkx": "connectome.graph",
    "neuron_names": "wormflow.core.neurons", "neuron_table": "wormflow.core.neurons",
    "canonical_label": "wormflow.core.labels", "parse_label": "wormflow.core.labels",
    "WormflowError": "wormflow.core.errors", "FormatError": "wormflow.core.errors",
    "StoreError": "wormflow.core.errors", "wormflow_version": "wormflow.core.provenance",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'wormflow' has no attribute {name!r}")


def __dir__():
    return __all__
