"""Lab-format readers, homogenization and the Zarr activity store."""

from activity.raw import RawRecording, Series
from activity.readers import READERS, detect, read_recordings

__all__ = ["RawRecording", "Series", "READERS", "detect", "read_recordings", "open_activity"]


def open_activity(path, **kwargs):
    """Open an activity store lazily (see :func:`activity.store.open_activity`)."""
    from activity.store import open_activity as _open
    return _open(path, **kwargs)
