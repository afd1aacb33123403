"""`wormflow analyze ntf`: the dynamic functional connectome of a store's worms (issue 9).
Builds the differential-affinity tensor on a Dask cluster one worm per task, chooses the
rank (unless given), factorizes, finds communities, and writes ntf.zarr atomically with
provenance, plus figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from analysis import ntf
from analysis.ntf import affinity
from wormflow.core.errors import WormflowError
from pipeline.analyze import provenance_attrs, select_worms
from pipeline.cluster import dask_client
from pipeline.storage import write_zarr_atomic


def build_tensor(lazy, *, client=None, progress: bool = True):
    """The lazy affinity tensor computed worm by worm on the Dask client (each task holds
    one worm's slab), assembled here into a numpy-backed DataArray."""
    from distributed import as_completed

    out = np.empty(lazy.shape, dtype=lazy.dtype)
    slabs = [lazy.data[:, :, w] for w in range(lazy.sizes["worm"])]
    futures = client.compute(slabs)
    where = {f.key: w for w, f in enumerate(futures)}
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("affinity tensor (worms)", total=len(futures))
        for f in as_completed(futures):
            out[:, :, where[f.key]] = f.result()
            f.release()
            bar.advance(task)
    return lazy.copy(data=out)


def ntf_on_store(store: str | Path, out: str | Path, *, rank: int | None = None, ranks=range(2, 7),
                 bin_s: float = 5.0, min_worms: int = 2, smooth_s: float = 1.0, saturation: float = 1.0,
                 neurons=None, worms=None, datasets=None, n_restarts: int = 3, seed: int = 0,
                 workers: int | None = None, client=None, progress: bool = True):
    """Fit the dynamic functional connectome of ``store`` and write ``out``/ntf.zarr.
    Returns (result Dataset, rank-selection Dataset or None, the activity Dataset)."""
    ds = select_worms(open_activity(store), worms, datasets)
    dt = store_fact(ds, "dt")
    bin_size = max(1, int(round(bin_s / dt)))
    try:
        lazy = affinity.affinity_tensor(ds, neurons=list(neurons) if neurons else None, min_worms=min_worms,
                                        bin_size=bin_size, smooth_s=smooth_s, saturation=saturation)
    except ValueError as exc:
        raise WormflowError(f"{store}: {exc}") from exc
    # the null: the same tensor built from traces each shifted by its own random offset
    lazy_null = affinity.affinity_tensor(ntf.circular_shift_null(ds.isel(worm=_worm_positions(ds, lazy)), seed=seed),
                                         neurons=list(neurons) if neurons else None, min_worms=min_worms,
                                         bin_size=bin_size, smooth_s=smooth_s, saturation=saturation)
    if client is not None:
        tensor = build_tensor(lazy, client=client, progress=progress)
        null = build_tensor(_same_pairs(lazy_null, lazy), client=client, progress=progress)
    else:
        with dask_client(workers) as c:
            tensor = build_tensor(lazy, client=c, progress=progress)
            null = build_tensor(_same_pairs(lazy_null, lazy), client=c, progress=progress)
    selection = None
    if rank is None:
        selection = ntf.select_rank(tensor, ranks, n_restarts=n_restarts, seed=seed, null=null)
        rank = int(selection.attrs["chosen_rank"])
    result = ntf.fit(tensor, rank, n_restarts=n_restarts, seed=seed)
    null_fit = ntf.fit(null, rank, n_restarts=n_restarts, seed=seed, communities=False)
    result.attrs["null_error"] = float(null_fit.attrs["error"])
    result.attrs["null"] = "the tensor of circularly shifted traces (each worm and neuron its own random offset)"
    if selection is not None:
        result["rank_error"] = selection["error"].rename(rank="candidate_rank")
        result["rank_stability"] = selection["stability"].rename(rank="candidate_rank")
        result["rank_null_error"] = selection["null_error"].rename(rank="candidate_rank")
        result.attrs["rank_rule"] = selection.attrs["rank_rule"]
    result.attrs.update({
        **provenance_attrs("ntf", store, ds, tensor.worm.values),
        "parameters": json.dumps({"rank": rank,
                                  "rank_chosen_by": selection.attrs["rank_rule"] if selection is not None else "user",
                                  "bin_s": bin_s, "bin_size": bin_size, "min_worms": min_worms, "smooth_s": smooth_s,
                                  "saturation": saturation, "n_restarts": n_restarts, "seed": seed,
                                  "neurons": list(neurons) if neurons else None}),
        "tensor_shape": json.dumps(result.attrs["tensor_shape"]),
    })
    write_zarr_atomic(result, Path(out) / "ntf.zarr")
    return result, selection, ds


def _worm_positions(ds, lazy):
    """Positions in ``ds`` of the worms the tensor kept."""
    index = {w: k for k, w in enumerate(ds.worm.values.tolist())}
    return [index[w] for w in lazy.worm.values.tolist()]


def _same_pairs(null, lazy):
    """The null tensor on exactly the data tensor's pairs and bins (its neurons are
    observed in the same worms, so the pairs agree; checked, not assumed)."""
    if null.sizes != lazy.sizes or not (np.array_equal(null.neuron_a.values, lazy.neuron_a.values)
                                        and np.array_equal(null.neuron_b.values, lazy.neuron_b.values)):
        raise WormflowError("the circular-shift null's tensor does not match the data's pairs")
    return null


def ntf_figures(result, ds, figures: str | Path) -> list[Path]:
    from pipeline.figures import community_matrices, ntf_loadings, rank_selection

    figures = Path(figures)
    made = [ntf_loadings(result, ds, figures / "ntf_loadings.png"),
            community_matrices(result, figures / "ntf_communities.png")]
    if "rank_error" in result:
        made.append(rank_selection(result, figures / "ntf_rank_selection.png"))
    return made
