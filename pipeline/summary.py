"""Summaries and invariant checks of an activity store (used by ``wormflow info`` / ``validate``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from wormflow.core.neurons import neuron_names

ROI_STATUSES = {"labelled", "unlabelled", "uncertain", "unmapped", "duplicate", ""}


def activity_summary(store: str | Path) -> dict:
    ds = open_activity(store)
    observed = ds["observed"].values
    datasets = ds["dataset"].values
    status = ds["roi_status"].values
    rows = []
    for name in sorted(set(datasets.tolist())):
        sel = datasets == name
        rows.append({
            "dataset": name, "worms": int(sel.sum()),
            "minutes": float(ds["duration_s"].values[sel].sum() / 60),
            "labelled_median": float(np.median(observed[sel].sum(axis=1))),
            "neurons_seen": int(observed[sel].any(axis=0).sum()),
            "unlabelled_rois": int(np.isin(status[sel], ["unlabelled", "uncertain", "unmapped", "duplicate"]).sum()),
            "grid_dropped": int(ds["n_grid_dropped"].values[sel].sum()) if "n_grid_dropped" in ds else 0,
            "signal": "; ".join(sorted({f"{s} [{u}]" for s, u in zip(ds["signal"].values[sel].tolist(),
                                                                   ds["units"].values[sel].tolist())}))
                      if "signal" in ds.coords else "not recorded by this store's version",
        })
    gaps = []
    if "n_grid_dropped" in ds:
        for worm, n, longest in zip(ds.worm.values.tolist(), ds["n_grid_dropped"].values.tolist(),
                                    ds["max_frame_gap_s"].values.tolist()):
            if n:
                gaps.append({"worm": worm, "grid_dropped": int(n), "max_frame_gap_s": float(longest)})
    counts = observed.sum(axis=0)
    top = sorted(zip(neuron_names(), counts.tolist()), key=lambda x: -x[1])[:8]
    return {"n_worms": int(ds.sizes["worm"]), "dt": store_fact(ds, "dt"), "version": store_fact(ds, "wormflow_version"),
            "gap_tolerance": json.loads(store_fact(ds, "homogenize_params")).get("gap_tolerance"),
            "datasets": rows, "neurons_seen": int(observed.any(axis=0).sum()), "top_neurons": top, "gaps": gaps}


def validate_activity(store: str | Path) -> list[str]:
    """Every broken invariant as a sentence; an empty list means valid."""
    ds = open_activity(store)
    problems = []
    if tuple(ds["neuron"].values.tolist()) != neuron_names():
        problems.append("neuron axis differs from the registry's 302 names in registry order")
    if ds["calcium"].dtype != np.float32:
        problems.append(f"calcium is {ds['calcium'].dtype}, expected float32")
    dt = store_fact(ds, "dt")
    t = ds["time"].values
    if not np.allclose(t, np.arange(t.size) * dt, rtol=0, atol=1e-9):
        problems.append("time coordinate is not k * dt")
    keys = list(zip(ds["source_sha256"].values.tolist(), ds["worm_id"].values.tolist()))
    if len(set(keys)) != len(keys):
        problems.append("the same (file sha256, worm) is stored twice")
    for w in range(ds.sizes["worm"]):
        worm = ds.isel(worm=w)
        name = str(worm["worm"].values)
        sha = str(worm["source_sha256"].values)
        if len(sha) != 64:
            problems.append(f"{name}: source_sha256 missing or malformed")
        cal = worm["calcium"].values
        finite = np.isfinite(cal).any(axis=0)
        if not np.array_equal(finite, worm["observed"].values):
            problems.append(f"{name}: 'observed' disagrees with where calcium has values")
        valid = worm["valid"].values.astype(bool)
        if np.isfinite(cal[~valid]).any():
            problems.append(f"{name}: calcium has values at grid points marked not valid (a gap in the recording)")
        if "n_grid_dropped" in worm and int(worm["n_grid_dropped"].values) != int((~valid[t <= float(
                worm["duration_s"].values) + 1e-6]).sum()):
            problems.append(f"{name}: n_grid_dropped disagrees with the invalid grid points inside the recording")
        end = float(worm["duration_s"].values)
        if np.isfinite(cal[t > end + 1e-6]).any():
            problems.append(f"{name}: calcium has values past the end of the recording ({end:.1f} s)")
        bad = set(worm["roi_status"].values.tolist()) - ROI_STATUSES
        if bad:
            problems.append(f"{name}: unknown roi_status values {sorted(bad)}")
        neurons = [n for n in worm["roi_neuron"].values.tolist() if n]
        if len(neurons) != len(set(neurons)):
            problems.append(f"{name}: two ROIs assigned to one neuron")
    return problems
