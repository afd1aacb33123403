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


class StoreWriteError(StoreError):
    """Writing to a store failed (disk full, read-only location, no permission, network):
    the whole write is abandoned and nothing of it is committed. Not a bad input file."""


class LabelError(WormflowError):
    """A neuron label could not be used the way it was asked for."""


def failure_message(subject: str, exc: BaseException) -> str:
    """One line for a failure that must not stop a batch: a WormflowError's own message
    (it names the file and cause), anything else as an internal error of ``subject``."""
    if isinstance(exc, WormflowError):
        return str(exc)
    return f"{subject}: internal error {type(exc).__name__}: {exc}"


def sniff_safely(sniff, path) -> bool:
    """A format sniffer's answer, which must never be an exception: a crafted file can make
    h5py, scipy or pandas raise anything while a sniffer peeks, and a sniff that raised would
    stop a whole batch. Any exception counts as "not this format"."""
    try:
        return bool(sniff(path))
    except Exception:
        return False
