"""One exception family for wormflow.

Every message names the file (or store) and the cause, so a person can act on it
without reading a traceback.
"""


class WormflowError(Exception):
    """Base of every error wormflow raises on purpose."""


class FormatError(WormflowError):
    """A raw file is unreadable, of the wrong format, or violates its format's layout."""


class UnknownFormatError(FormatError):
    """No registered reader recognises a file."""


class RecordingError(FormatError):
    """A file was read but its content is not a usable recording (bad timestamps, ...)."""


class StoreError(WormflowError):
    """An activity or connectome store is missing, invalid or incompatible."""


class LabelError(WormflowError):
    """A neuron label could not be used the way it was asked for."""
