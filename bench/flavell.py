"""The mirror's labelled Flavell worms as an activity store, for the benches that score the
analyses on real recordings (bench/hmmglm.py, bench/langevin.py)."""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent


def mirror() -> Path:
    """WORMFLOW_MIRROR, else ../shared/data beside the project."""
    env = os.environ.get("WORMFLOW_MIRROR")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


@contextmanager
def flavell_store(label: str):
    """Yields (the Flavell files, the opened store of them, ingested into a temporary
    folder), or (no files, None) after saying so when the mirror has none."""
    from activity import open_activity
    from pipeline.ingest import ingest_activity

    files = sorted((mirror() / "activity" / "Dag2023").glob("*/*.h5"))
    if not files:
        print(f"\n{label}: no Flavell files under {mirror()}; skipped")
        yield [], None
        return
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "flavell.zarr"
        ingest_activity(files, store)
        yield files, open_activity(store)
