"""Canonical neuron registry and connectome readers."""

from connectome.errors import (FormatError, LabelError, RecordingError, StoreError,
                               UnknownFormatError, WormflowError)
from connectome.labels import LabelParse, canonical_label, parse_label
from connectome.neurons import classes, neuron_index, neuron_names, neuron_table

__all__ = [
    "WormflowError", "FormatError", "UnknownFormatError", "RecordingError", "StoreError",
    "LabelError", "LabelParse", "canonical_label", "parse_label", "neuron_names",
    "neuron_index", "neuron_table", "classes",
]
