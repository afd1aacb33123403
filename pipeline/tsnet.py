"""The tsnet stage: network metrics of every trace of a store on the Dask cluster, written
atomically with provenance, and its figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from analysis import tsnet
from pipeline.analyze import provenance_attrs, select_worms
from pipeline.cluster import compute_with_progress, dask_client
from pipeline.stages import Tsnet
from pipeline.storage import write_zarr_atomic
from wormflow.core.errors import WormflowError

TRACE_VARIABLES = {"calcium": "time", "roi_calcium": "time", "native_calcium": "frame"}


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
    from pipeline.figures import degree_distributions, exponent_vs_null, metric_heatmap

    figures = Path(figures)
    made = [degree_distributions(result, figures / "tsnet_degree_distributions.png")]
    shown = "horizontal" if "horizontal" in constructions else constructions[0]
    metric = metric or ("hvg_lambda" if shown == "horizontal" else "path_length")
    made.append(metric_heatmap(result, shown, metric, figures / f"tsnet_{shown}_{metric}.png"))
    for c in constructions:
        if c in ("horizontal", "natural"):
            null = exponent_vs_null(result, c, figures / f"tsnet_{c}_exponent_vs_null.png")
            if null is not None:
                made.append(null)
    return made
