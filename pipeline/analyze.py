"""Running the analyses over an activity store: cluster, progress, provenance, atomic output."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from pipeline.stages import Tsnet, stage_attrs
from wormflow.core.provenance import wormflow_version
from analysis import tsnet
from wormflow.core.errors import WormflowError
from pipeline.cluster import compute_with_progress, dask_client
from pipeline.storage import json_safe, write_zarr_atomic

TRACE_VARIABLES = {"calcium": "time", "roi_calcium": "time", "native_calcium": "frame"}


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
    store (path and its provenance), and, given ``worms``, the sha256 of each worm's raw file."""
    attrs = {"wormflow_analysis": analysis, "wormflow_version": wormflow_version(),
             **(stage_attrs(analysis, params) if params is not None else {}),
             "created": datetime.now(timezone.utc).isoformat(), "store": str(Path(store).resolve()),
             "store_provenance": json.dumps(json_safe(store_fact(ds, "provenance")), default=str)}
    if worms is not None:
        worms = [str(w) for w in worms]
        attrs["source_sha256"] = json.dumps(dict(zip(worms, map(str, ds.source_sha256.sel(worm=worms).values))))
    return attrs


def tsnet_on_store(store: str | Path, out: str | Path, *, constructions=("horizontal", "natural"),
                   variable: str = "calcium", workers: int | None = None, worms=None, datasets=None,
                   k_max: int = 40, chunk: int = 32, progress: bool = True, client=None, **options):
    """Network metrics of every trace in ``store`` through Dask (``client``, else a local
    cluster of ``workers``), written atomically to ``out``/tsnet.zarr with provenance.
    Returns the computed Dataset."""
    if variable not in TRACE_VARIABLES:
        raise WormflowError(f"--variable must be one of {', '.join(TRACE_VARIABLES)}, got {variable!r}")
    ds = select_worms(open_activity(store), worms, datasets)
    dim = TRACE_VARIABLES[variable]
    da = ds[variable]
    unit = next(d for d in da.dims if d not in ("worm", dim))
    da = da.chunk({"worm": 1, dim: -1, unit: chunk})
    lazy = tsnet.tsnet_metrics(da, constructions, dim=dim, k_max=k_max, **options)
    lazy["n_samples"] = da.count(dim).astype(np.int64)
    if client is not None:
        result = compute_with_progress(lazy, show=progress)
    else:
        with dask_client(workers):
            result = compute_with_progress(lazy, show=progress)
    result.attrs.update({
        **provenance_attrs("tsnet", store, ds, params=Tsnet(
            constructions=list(constructions), variable=variable,
            **({"max_gap": int(options["max_gap"])} if "max_gap" in options else {}))),
        "variable": variable,
        "store_homogenize_params": store_fact(ds, "homogenize_params"),
    })
    n = result["n_samples"].values.ravel()
    result.attrs["median_trace_length"] = int(np.median(n[n > 0])) if (n > 0).any() else 0
    out = Path(out)
    write_zarr_atomic(result, out / "tsnet.zarr")
    return result



def tsnet_figures(result, figures: str | Path, constructions, metric: str | None = None) -> list[Path]:
    """The degree distributions and a neuron-by-worm heatmap of ``metric`` (default: the HVG
    rate when horizontal graphs were made, else the mean path length)."""
    from pipeline.figures import degree_distributions, metric_heatmap

    figures = Path(figures)
    made = [degree_distributions(result, figures / "tsnet_degree_distributions.png")]
    shown = "horizontal" if "horizontal" in constructions else constructions[0]
    metric = metric or ("hvg_lambda" if shown == "horizontal" else "path_length")
    made.append(metric_heatmap(result, shown, metric, figures / f"tsnet_{shown}_{metric}.png"))
    return made
