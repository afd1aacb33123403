"""What every analysis stage shares: choosing worms of a store, and the provenance every
analysis output carries. Each method's stage is its own module (pipeline/tsnet.py,
hmmglm.py, ntf.py, langevin.py), named as the method is in the CLI, config and outputs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np

from activity.store import store_fact
from pipeline.stages import stage_attrs
from wormflow.core.provenance import wormflow_version
from wormflow.core.errors import WormflowError
from wormflow.core.repository import parse_location
from pipeline.storage import json_safe


def select_worms(ds, worms=None, datasets=None):
    """The store restricted to the given worm ids and/or dataset names; unknown names are an error."""
    if worms:
        missing = sorted(set(worms) - set(ds.worm.values.tolist()))
        if missing:
            raise WormflowError(f"worms not in the store: {', '.join(missing)}")
        ds = ds.sel(worm=list(worms))
    if datasets:
        have = set(ds.dataset.values.tolist())
        missing = sorted(set(datasets) - have)
        if missing:
            raise WormflowError(f"datasets not in the store: {', '.join(missing)} (it has {', '.join(sorted(have))})")
        ds = ds.isel(worm=np.isin(ds.dataset.values, list(datasets)))
    if ds.sizes["worm"] == 0:
        raise WormflowError("no worms selected")
    return ds


def provenance_attrs(analysis: str, store, ds, worms=None, params=None) -> dict:
    """The attributes every analysis output carries: what made it (analysis, wormflow
    version, time, and, given ``params``, the stage's declared parameters), from which
    store (path or URL, the snapshot read, and its provenance), and, given ``worms``, the sha256 of each worm's raw file."""
    attrs = {"wormflow_analysis": analysis, "wormflow_version": wormflow_version(),
             **(stage_attrs(analysis, params) if params is not None else {}),
             "created": datetime.now(timezone.utc).isoformat(), "store": str(parse_location(store)),
             "store_snapshot": str(ds.attrs.get("store_snapshot", "")),
             "store_provenance": json.dumps(json_safe(store_fact(ds, "provenance")), default=str)}
    if worms is not None:
        worms = [str(w) for w in worms]
        attrs["source_sha256"] = json.dumps(dict(zip(worms, map(str, ds.source_sha256.sel(worm=worms).values))))
    return attrs
