"""``wormflow analyze``: the four analyses over an activity store, from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline import stages
from pipeline._console import StoreLocation, _or_exit, console
from pipeline.cluster import open_client, resolve


@click.group()
def analyze() -> None:
    """Run an analysis over an activity store (on --scheduler, DASK_SCHEDULER_ADDRESS or a local cluster)."""


def _fit_where(scheduler, fn, store, out, output: str, options: dict, progress=None):
    """``fn(store, out, **options)`` here, or as one task on the user's cluster when
    ``--scheduler`` or DASK_SCHEDULER_ADDRESS names one (the output is then read back from
    ``out``/``output``, which must be on a filesystem the workers share)."""
    spec = resolve(None, scheduler)
    if spec.kind != "address":
        return fn(store, out, **options, **({"progress": progress} if progress else {}))
    from activity.store import open_activity
    from pipeline.storage import open_result
    from pipeline.tasks import summary_task

    with open_client(spec) as client:
        summary = client.submit(summary_task, fn, str(store), str(out), options, pure=False).result()
    return open_result(Path(out) / output), summary, open_activity(store)


@analyze.command("tsnet")
@click.option("--store", required=True, type=StoreLocation(exists=True), help="Activity store (folder or URL).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (tsnet.zarr, figures/).")
@stages.click_options(stages.Tsnet)
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--workers", type=int, help="Dask worker processes (default: CPU count).")
@click.option("--metric", default=None, help="Metric of the heatmap (default: hvg_lambda, else path_length).")
@click.option("--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a local cluster).")
def analyze_tsnet_cmd(store, out, constructions, variable, max_gap, worms, datasets, workers, metric,
                      scheduler) -> None:
    """Visibility, cycle and recurrence networks of every trace, their metrics and figures."""
    from analysis.tsnet import METRICS
    from pipeline.tsnet import tsnet_figures, tsnet_on_store

    if metric is not None and metric not in METRICS:
        raise click.BadParameter(f"{metric!r} is not one of {', '.join(METRICS)}", param_hint="--metric")
    def work():
        with open_client(resolve(None, scheduler, workers)) as client:
            return tsnet_on_store(store, out, constructions=constructions, variable=variable, client=client,
                                  worms=worms, datasets=datasets, max_gap=max_gap)
    result = _or_exit(work, prefix="error", code=2)
    made = tsnet_figures(result, Path(out) / "figures", constructions, metric)
    _tsnet_table(result, constructions)
    for p in made:
        Console().print(f"figure: {p}")
    Console().print(f"metrics: {Path(out) / 'tsnet.zarr'}")


@analyze.command("hmmglm")
@click.option("--store", required=True, type=StoreLocation(exists=True), help="Activity store (folder or URL).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (hmmglm.zarr, figures/).")
@stages.click_options(stages.Hmmglm, only=("n_states", "prior", "max_neurons", "selection", "connectome_prior", "restarts",
                                                      "detrend_s", "seed"))
@click.option("--emission", default="gaussian", show_default=True, type=click.Choice(["gaussian", "poisson"]),
              help="gaussian: autoregressive GLM on calcium (the store holds calcium).")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--neuron", "neurons", multiple=True, help="These neurons (default: the most widely labelled).")
@click.option("--min-worm-fraction", default=0.5, show_default=True, type=float,
              help="Default neurons: labelled in at least this share of the labelled worms.")
@click.option("--connectome", type=click.Path(exists=True, path_type=Path),
              help="Connectome store: compare the learned prior with anatomy (and --connectome-prior).")
@click.option("--connectome-source", default=None,
              help="Source in the connectome store (default: cook_2019_herm/si5 if present, else the first).")
@click.option("--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a local cluster).")
def analyze_hmmglm_cmd(store, out, n_states, prior, max_neurons, selection, connectome_prior, seed, emission, worms, datasets,
                       neurons, min_worm_fraction, connectome, connectome_source, restarts, detrend_s,
                       scheduler) -> None:
    """Brain states by a state-switching GLM (HMM-GLM), against reversals and the connectome."""
    from pipeline.hmmglm import hmmglm_figures, hmmglm_on_store

    options = dict(n_states=n_states, prior=prior, emission=emission, worms=worms, datasets=datasets,
                   neurons=neurons, max_neurons=max_neurons, selection=selection, min_worm_fraction=min_worm_fraction, connectome=connectome,
                   connectome_source=connectome_source, connectome_prior=connectome_prior, n_restarts=restarts,
                   detrend_s=detrend_s, seed=seed)
    with console.status(f"fitting a {n_states}-state HMM-GLM ({prior} prior, {restarts} restarts)…"):
        result, summary, ds = _or_exit(lambda: _fit_where(scheduler, hmmglm_on_store, store, out, "hmmglm.zarr",
                                                          options), prefix="error", code=2)
    made = hmmglm_figures(result, ds, Path(out) / "figures")
    console.print(f"{summary['n_worms']} worms x {summary['n_neurons']} neurons, {n_states} states, "
                  f"{summary['n_iter']} EM iterations ({'converged' if summary['converged'] else 'not converged'}), "
                  f"log-likelihood {summary['log_likelihood_per_bin']:.3f} per bin")
    if "behaviour" in summary:
        b = summary["behaviour"]
        console.print(f"states vs {b['variable']}: balanced accuracy {b['held_out_mean']:.3f} held out per worm "
                      f"({b['in_sample_mean']:.3f} in sample); share 'on' per state "
                      + ", ".join(f"{x:.2f}" for x in b["state_on_fraction"]))
        for name, v in b.get("baselines", {}).items():
            if v.get("held_out_mean") is not None:
                console.print(f"  baseline {name.replace('_', ' ')}: balanced accuracy {v['held_out_mean']:.3f}")
        best = max((v["held_out_mean"] for v in b.get("baselines", {}).values() if v.get("held_out_mean") is not None),
                   default=None)
        if best is not None and b["held_out_mean"] <= best:
            console.print("  the states do not beat the best baseline"
                          + ("; for reversal states fit the command neurons alone: --selection command --states 3"
                             if selection == "brain" and not neurons else ""))
    if "connectome" in summary:
        c = summary["connectome"]
        extra = (f", P(connection) {c['p_connection_synapse']:.3f} with a synapse vs {c['p_connection_none']:.3f} without"
                 if "p_connection_synapse" in c else "")
        console.print(f"learned couplings vs {c['source']}: ROC AUC {c['auc']:.3f}{extra}")
    for p in made:
        console.print(f"figure: {p}")
    console.print(f"model: {Path(out) / 'hmmglm.zarr'}")


@analyze.command("ntf")
@click.option("--store", required=True, type=StoreLocation(exists=True), help="Activity store (folder or URL).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (ntf.zarr, figures/).")
@click.option("--rank", type=click.IntRange(1, 50), help="Components (default: chosen by stability over --ranks).")
@click.option("--ranks", default="2-6", show_default=True, help="Candidate ranks for the choice, as LO-HI.")
@stages.click_options(stages.Ntf, only=("bin_s", "min_worms", "restarts", "seed"))
@click.option("--smooth-s", default=1.0, show_default=True, type=float, help="Gaussian smoothing before d/dt, s.")
@click.option("--neuron", "neurons", multiple=True, help="Only these neurons (repeatable).")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--workers", type=int, help="Dask worker processes for the tensor (default: CPU count).")
@click.option("--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a local cluster).")
def analyze_ntf_cmd(store, out, rank, ranks, bin_s, min_worms, smooth_s, neurons, worms, datasets, restarts,
                    seed, workers, scheduler) -> None:
    """Dynamic functional connectome: affinity tensor, NTF, communities (SBM and Leiden)."""
    from pipeline.ntf import ntf_figures, ntf_on_store

    try:
        lo, hi = (int(v) for v in ranks.split("-"))
        candidates = range(lo, hi + 1)
        assert 1 <= lo <= hi
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{ranks!r} is not LO-HI with 1 <= LO <= HI", param_hint="--ranks")
    what = f"rank {rank}" if rank else f"ranks {ranks} (choosing against the circular-shift null, then by stability)"
    with console.status(f"affinity tensor, then NTF at {what} with {restarts} restarts each, then communities…"):
        def work():
            with open_client(resolve(None, scheduler, workers)) as client:
                return ntf_on_store(store, out, rank=rank, ranks=candidates, bin_s=bin_s, min_worms=min_worms,
                                    smooth_s=smooth_s, neurons=neurons, worms=worms, datasets=datasets,
                                    n_restarts=restarts, seed=seed, client=client, progress=False)
        result, selection, ds = _or_exit(work, prefix="error", code=2)
    made = ntf_figures(result, ds, Path(out) / "figures")
    shape = json.loads(result.attrs["tensor_shape"])
    console.print(f"tensor {shape[0]} pairs x {shape[1]} time bins x {shape[2]} worms "
                  f"({result.attrs['observed_fraction']:.0%} observed)")
    if selection is not None:
        console.print("rank: " + ", ".join(f"{r}: error {e:.3f} (null {n:.3f}) stability {s:.2f}" for r, e, n, s in zip(
            selection["rank"].values, selection.error.values, selection.null_error.values,
            selection.stability.values)) + f" -> {result.attrs['rank']}")
    console.print(f"rank {result.attrs['rank']}: relative error {result.attrs['error']:.3f} "
                  f"(circular-shift null {result.attrs['null_error']:.3f}), "
                  f"stability {result.attrs['stability']:.2f} over {restarts} restarts")
    for k in result.component.values:
        core = [str(n) for n, c in zip(result.neuron.values, result.core.sel(component=k).values) if c]
        console.print(f"component {k}: {int(result.n_blocks.sel(component=k))} SBM blocks "
                      f"({int(result.n_blocks_null.sel(component=k))} on its degree-preserving null), "
                      f"{len(set(result.leiden.sel(component=k).values.tolist()))} Leiden communities; "
                      f"core: {', '.join(core[:12])}{'…' if len(core) > 12 else ''}")
    for p in made:
        console.print(f"figure: {p}")
    console.print(f"result: {Path(out) / 'ntf.zarr'}")


@analyze.command("langevin")
@click.option("--store", required=True, type=StoreLocation(exists=True), help="Activity store (folder or URL).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder (langevin.zarr, langevin_model.npz, figures/).")
@click.option("--window-s", default=30.0, show_default=True, type=float, help="Trial windows, seconds.")
@click.option("--held-out", default=0.2, show_default=True, type=float, help="Share of neurons held out.")
@click.option("--max-neurons", default=60, show_default=True, type=int)
@click.option("--epochs", default=150, show_default=True, type=click.IntRange(1, 10000))
@click.option("--latent", default=8, show_default=True, type=click.IntRange(1, 512))
@click.option("--hidden", default=64, show_default=True, type=click.IntRange(4, 4096))
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a local cluster).")
def analyze_langevin_cmd(store, out, window_s, held_out, max_neurons, epochs, latent, hidden, device, worms,
                         datasets, seed, scheduler) -> None:
    """LangevinFlow latent dynamics of the calcium, against a GRU VAE and smoothing."""
    from pipeline.langevin import langevin_figures, langevin_on_store

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[loss]}"), console=console, transient=True) as bar:
        tasks = {}

        def progress(model, epoch, train, val):
            if model not in tasks:
                tasks[model] = bar.add_task(f"{model} epochs", total=epochs, loss="")
            bar.update(tasks[model], completed=epoch + 1, loss=f"validation {val:.1f}")

        options = dict(window_s=window_s, held_out=held_out, max_neurons=max_neurons, epochs=epochs, latent=latent,
                       hidden=hidden, device=device, worms=worms, datasets=datasets, seed=seed)
        result, summary, _ = _or_exit(lambda: _fit_where(scheduler, langevin_on_store, store, out, "langevin.zarr",
                                                         options, progress=progress), prefix="error", code=2)
    made = langevin_figures(result, Path(out) / "figures")
    console.print(f"{summary['n_worms']} worms, {summary['n_neurons']} neurons "
                  f"({len(summary['held_out_neurons'])} held out), {summary['n_windows']} windows of "
                  f"{summary['window_bins']} bins")
    table = Table(box=None)
    for col in ("model", "held-out neuron R²", "… from the latent alone", "velocity decoding R²"):
        table.add_column(col)
    for m, v in summary["metrics"].items():
        alone = f"{v['heldout_r2_latent_only']:.3f}" if "heldout_r2_latent_only" in v else ""
        table.add_row(m, f"{v['heldout_r2']:.3f}", alone, f"{v['velocity_r2']:.3f}")
    console.print(table)
    for p in made:
        console.print(f"figure: {p}")
    console.print(f"result: {Path(out) / 'langevin.zarr'}")


def _tsnet_table(result, constructions) -> None:
    import numpy as np

    def median(v):
        v = v[np.isfinite(v)]
        return f"{np.median(v):.2f}" if v.size else ""

    cols = {"<k>": "mean_degree", "C": "clustering", "L": "path_length", "Q": "modularity",
            "λ": "hvg_lambda", "γ": "nvg_gamma"}
    from rich import box

    table = Table(title="median over traces", box=box.SIMPLE_HEAD, caption="n traces, <k> mean degree, C clustering, L mean path, "
                  "Q modularity, λ HVG rate (iid: 0.405), γ NVG tail exponent")
    for col in ("graph", "dataset", "n", *cols):
        table.add_column(col, justify="left" if col in ("graph", "dataset") else "right",
                         no_wrap=col in ("graph", "dataset"))
    empty = []
    for c in constructions:
        for name in np.unique(result.dataset.values):
            sub = result[c].isel(worm=result.dataset.values == name)
            n = int(np.isfinite(sub.sel(metric="n_nodes")).sum())
            if n == 0:
                empty.append(str(name))
                continue
            table.add_row(c, str(name), str(n), *(median(sub.sel(metric=m).values.ravel()) for m in cols.values()))
    Console().print(table)
    if empty:
        console.print(f"no traces in {', '.join(sorted(set(empty)))} (no labelled neurons? "
                      "try --variable roi_calcium)")
