"""The ``wormflow`` command line."""

from __future__ import annotations

import json

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from activity.homogenize import NORMALIZATION, SMOOTHING, HomogenizeParams
from activity.readers import READERS
from connectome.errors import WormflowError

console = Console(stderr=True)


def _or_exit(fn, *args, prefix: str, code: int):
    """Run ``fn``; a WormflowError becomes one red line and exit ``code`` instead of a traceback."""
    try:
        return fn(*args)
    except WormflowError as exc:
        console.print(f"[red]{prefix}:[/red] {exc}", soft_wrap=True)
        sys.exit(code)


def _exit_if_failed(failed: list[tuple[str, str]]) -> None:
    """List the files that failed, with their cause, and exit 1 (nothing when none failed)."""
    if not failed:
        return
    table = Table(title="failed files")
    table.add_column("file")
    table.add_column("cause")
    for f, err in failed:
        table.add_row(Path(f).name, err)
    console.print(table)
    sys.exit(1)


@click.group()
@click.version_option(package_name="wormflow")
def main() -> None:
    """wormflow: C. elegans whole-brain activity and connectomes in one store."""


@main.group()
def ingest() -> None:
    """Add raw files to a store."""


@ingest.command("activity")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Activity store (Zarr folder).")
@click.option("--format", "fmt", type=click.Choice(sorted(READERS)), help="Reader to use (default: detect).")
@click.option("--dataset", help="Dataset name for these worms (default: folder name like Dag2023).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Flavell NeuroPAL_labels_dict.jld2.")
@click.option("--dt", default=0.5, show_default=True, type=float, help="Grid step in seconds (a store parameter).")
@click.option("--smoothing", type=click.Choice(SMOOTHING), default="none", show_default=True)
@click.option("--smoothing-s", default=1.0, show_default=True, type=float)
@click.option("--normalization", type=click.Choice(NORMALIZATION), default="none", show_default=True)
@click.option("--strict-labels", is_flag=True, help="Fail a worm with duplicate labels instead of flagging them.")
@click.option("-v", "--verbose", is_flag=True, help="Print every label rename and warning.")
def ingest_activity_cmd(paths, store, fmt, dataset, labels, dt, smoothing, smoothing_s, normalization,
                        strict_labels, verbose) -> None:
    """Read, homogenize and append the worms in PATHS (files or folders) to STORE."""
    from pipeline.ingest import discover, ingest_activity
    try:
        params = HomogenizeParams(dt=dt, smoothing=smoothing, smoothing_s=smoothing_s,
                                  normalization=normalization, strict_labels=strict_labels)
    except ValueError as exc:
        raise click.BadParameter(str(exc))
    files = discover(paths, fmt)
    if not files:
        console.print("[red]no input files found[/red]")
        sys.exit(2)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("ingesting", total=len(files))
        try:
            report = ingest_activity(files, store, format=fmt, dataset=dataset, labels=labels, params=params,
                                     on_file=lambda p: progress.update(task, advance=1, description=p.name))
        except WormflowError as exc:
            console.print(f"[red]error:[/red] {exc}")
            sys.exit(2)
    uncertain = sum("uncertain" in n for n in report.notes)
    duplicated = [n for n in report.notes if "is given to ROIs" in n]
    console.print(f"added {len(report.added)} worm(s), skipped {len(report.skipped)} already stored, "
                  f"{len(report.failed)} file(s) failed; {uncertain} uncertain label(s) kept unassigned")
    for n in duplicated + (report.notes if verbose else []):
        console.print(f"  [yellow]warning[/yellow] {n}")
    _exit_if_failed(report.failed)


class _LazyChoice(click.ParamType):
    """A choice whose options are imported only when used: the connectome readers pull in
    pandas, which ``wormflow ingest activity`` must not pay for (memory)."""

    name = "choice"

    def __init__(self, load):
        self._load = load

    def choices(self) -> list[str]:
        return sorted(self._load())

    def convert(self, value, param, ctx):
        if value in self.choices():
            return value
        self.fail(f"{value!r} is not one of {', '.join(self.choices())}.", param, ctx)

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.choices()) + "]"


@ingest.command("connectome")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Connectome store (Zarr folder).")
@click.option("--format", "fmt", type=_LazyChoice(lambda: __import__("connectome.readers").readers.READERS),
              help="Reader (default: detect).")
@click.option("-v", "--verbose", is_flag=True, help="Print the unknown cell names of every source.")
def ingest_connectome_cmd(paths, store, fmt, verbose) -> None:
    """Read the wiring diagrams, atlases and layers in PATHS into STORE (sources are replaced by name)."""
    from pipeline.connectome_ingest import discover_connectomes, ingest_connectomes
    files, _ = discover_connectomes(paths)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("reading", total=len(files))
        report = _or_exit(lambda: ingest_connectomes(paths, store, fmt, on_file=lambda p: progress.update(
            task, advance=1, description=p.name)), prefix="error", code=2)
    console.print(f"stored {len(report.sources)} source(s) from {len(files) - len(report.failed)} file(s); "
                  f"{len(report.skipped)} companion file(s) skipped; {len(report.failed)} failed")
    for note in report.notes if verbose else []:
        console.print(f"  [yellow]note[/yellow] {note}")
    _exit_if_failed(report.failed)


def _store_kind(store: Path) -> str:
    import json
    try:
        return json.loads((store / "zarr.json").read_text()).get("attributes", {}).get("wormflow_store", "")
    except (OSError, ValueError):
        return ""


def _connectome_info(store: Path) -> None:
    from pipeline.connectome_ingest import connectome_summary
    rows = _or_exit(connectome_summary, store, prefix="error", code=2)
    table = Table(title=f"{store}: {len(rows)} sources")
    for col in ("source", "neurons", "chem edges", "chem total", "gap pairs", "gap total", "other layers"):
        table.add_column(col, justify="left" if col in ("source", "other layers") else "right",
                         no_wrap=col == "source")
    for r in rows:
        table.add_row(r["source"], str(r["neurons"]), str(r["chemical"][0]), f"{r['chemical'][1]:.0f}",
                      str(r["electrical"][0]), f"{r['electrical'][1]:.0f}", ", ".join(r["other_layers"]))
    Console().print(table)


@main.command()
@click.argument("store", type=click.Path(exists=True, path_type=Path))
def info(store) -> None:
    """A readable summary of STORE (activity: worms per dataset and coverage; connectome: per source)."""
    from pipeline.summary import activity_summary
    if _store_kind(store).startswith("wormflow-connectome"):
        _connectome_info(store)
        return
    summary = _or_exit(activity_summary, store, prefix="error", code=2)
    out = Console()
    out.print(f"[bold]{store}[/bold]: {summary['n_worms']} worms, dt = {summary['dt']} s, "
              f"wormflow {summary['version']}")
    table = Table()
    for col in ("dataset", "worms", "minutes", "labelled/worm (median)", "neurons seen", "unlabelled ROIs"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for row in summary["datasets"]:
        table.add_row(row["dataset"], str(row["worms"]), f"{row['minutes']:.1f}", f"{row['labelled_median']:.0f}",
                      f"{row['neurons_seen']}/302", str(row["unlabelled_rois"]))
    out.print(table)
    out.print(f"neurons observed in at least one worm: {summary['neurons_seen']}/302; most covered: "
              + ", ".join(f"{n} ({c})" for n, c in summary["top_neurons"]))


@main.command()
@click.argument("store", type=click.Path(exists=True, path_type=Path))
def validate(store) -> None:
    """Check STORE's invariants; exit non-zero and list every problem found."""
    from pipeline.summary import validate_activity
    problems = _or_exit(validate_activity, store, prefix="invalid", code=1)
    if problems:
        for p in problems:
            console.print(f"[red]problem:[/red] {p}")
        sys.exit(1)
    Console().print(f"{store}: valid")


@main.command("export-nwb")
@click.argument("store", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for OUT/<dataset>/<worm>.nwb.")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable; default: every worm).")
@click.option("--grid", is_flag=True, help="Also write the ROIs on the store's homogenized grid.")
@click.option("--sex", type=click.Choice(["XX", "XO"]), default="XX", show_default=True,
              help="Subject sex where the source does not record it.")
@click.option("--overwrite", is_flag=True, help="Replace files that exist.")
@click.option("--no-validate", is_flag=True, help="Skip pynwb validation and nwbinspector.")
def export_nwb_cmd(store, out, worms, grid, sex, overwrite, no_validate) -> None:
    """Write every worm of STORE as an NWB file in the C. elegans community layout."""
    from activity.nwb import IGNORED_CHECKS, ExportParams
    from pipeline.export import export_store

    from activity.store import open_activity

    n = len(worms) or int(_or_exit(open_activity, store, prefix="error", code=2).sizes["worm"])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("exporting", total=n)
        report = _or_exit(lambda: export_store(store, out, worms=worms, params=ExportParams(grid=grid, sex=sex),
                                               overwrite=overwrite, validate=not no_validate,
                                               on_worm=lambda w: progress.advance(task)),
                          prefix="error", code=2)
    table = Table(title=f"NWB files in {out}")
    for col in ("worm", "file", "MB", "s", "checks"):
        table.add_column(col, justify="right" if col in ("MB", "s") else "left")
    bad = 0
    for e in report.exported:
        checks = "skipped" if no_validate else ("pass" if not e["problems"] else f"{len(e['problems'])} problem(s)")
        bad += bool(e["problems"])
        table.add_row(e["worm"], Path(e["path"]).name, f"{e['bytes'] / 1e6:.1f}", f"{e['seconds']:.1f}", checks)
    Console().print(table)
    if not no_validate:
        Console().print("nwbinspector checks ignored on purpose: " + "; ".join(
            f"{k} ({v})" for k, v in IGNORED_CHECKS.items()))
    for e in report.exported:
        for p in e["problems"]:
            console.print(f"[red]{e['worm']}:[/red] {p}")
    if report.failed:
        _exit_if_failed(report.failed)
    if bad:
        sys.exit(1)


@main.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--dest", type=click.Path(path_type=Path), help="Folder to put the files in (same relative names).")
@click.option("--mirror", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Local mirror to copy from (default: WORMFLOW_MIRROR; without one, files are downloaded).")
@click.option("--list", "list_only", is_flag=True, help="List the registry (or the NAMES) and exit.")
def fetch_cmd(names, dest, mirror, list_only) -> None:
    """Fetch public raw files by registry NAME (a file or a folder such as activity/Dag2023; default: all)."""
    from pipeline.registry import fetch, mirror_dir, select

    entries = _or_exit(select, names, prefix="error", code=2)
    if list_only:
        table = Table(title=f"{len(entries)} registered file(s)")
        for col in ("name", "MB", "licence", "source"):
            table.add_column(col, justify="right" if col == "MB" else "left")
        for e in entries:
            table.add_row(e.name, f"{e.bytes / 1e6:.1f}", e.license, f"{e.source_repo}@{e.commit[:8]}")
        Console().print(table)
        return
    if dest is None:
        raise click.UsageError("--dest is required (or pass --list)")
    where = mirror_dir(mirror)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("from mirror" if where else "downloading", total=len(entries))
        done, failed = fetch(entries, dest, mirror=where, on_file=lambda e: progress.advance(task))
    Console().print(f"{len(done)} file(s) in {dest}")
    if failed:
        for name, err in failed:
            console.print(f"[red]failed:[/red] {err}")
        sys.exit(1)


@main.command("run")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workdir", type=click.Path(path_type=Path), help="Output folder (default: the config's, else out).")
@click.option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS, "
                                  "else a local cluster).")
@click.option("--workers", type=int, help="Workers of the local cluster (default: CPU count).")
@click.option("--mirror", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Local mirror for registry sources (default: WORMFLOW_MIRROR; else they are downloaded).")
@click.option("--wait", is_flag=True, help="If another run holds the workdir, wait for it instead of stopping.")
def run_cmd(config, workdir, scheduler, workers, mirror, wait) -> None:
    """Run every stage of CONFIG (default: the built-in run on the mirror's sample data)."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    cfg = _or_exit(load_config, config, prefix="config error", code=2)
    workdir = workdir or Path(cfg.workdir or "out")
    if cfg.workdir and config and not Path(cfg.workdir).is_absolute() and workdir == Path(cfg.workdir):
        workdir = cfg.base / cfg.workdir
    with Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        def stage_bar(name, total):
            task = progress.add_task(name, total=total)
            return lambda: progress.advance(task)

        result = _or_exit(lambda: run_pipeline(cfg, workdir, scheduler=scheduler, workers=workers, mirror=mirror,
                                               wait=wait, progress=stage_bar), prefix="error", code=2)
    out = Console()
    out.print(f"wormflow run in {result.workdir} ({result.workers} worker(s) at {result.scheduler})", soft_wrap=True)
    table = Table()
    for col in ("stage", "status", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in result.stages:
        colour = {"failed": "red", "cached": "cyan", "skipped": "yellow"}.get(s.status, "green")
        table.add_row(s.name, f"[{colour}]{s.status}[/{colour}]", f"{s.seconds:.1f}", s.detail)
    out.print(table)
    report = result.workdir / "report" / "index.html"
    if report.exists():
        out.print(f"report: {report}", soft_wrap=True)
    out.print(f"log: {result.log_file}", soft_wrap=True)
    if result.failures:
        _exit_if_failed([(f["file"] or f["stage"], f"[{f['stage']}] {f['error']}") for f in result.failures])


@main.command("publish")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "to", required=True, type=click.Path(path_type=Path), help="Folder for the dataset folders.")
@click.option("--repo-id", help="Push to the Hub: ORG/NAME (a workdir's collections go to ORG/NAME-<collection>).")
@click.option("--private", is_flag=True, help="Create the Hub repositories as private.")
def publish_cmd(path, to, repo_id, private) -> None:
    """Build HuggingFace dataset folders (Parquet + card) from a workdir or a store; optionally push them."""
    from pipeline.publish import publish

    cols = _or_exit(lambda: publish(path, to, repo_id=repo_id, private=private), prefix="error", code=2)
    table = Table(title=f"published to {to}")
    for col in ("collection", "configs (rows)", "MB", "pushed to"):
        table.add_column(col)
    for c in cols:
        size = sum(p.stat().st_size for p in c.folder.rglob("*") if p.is_file()) / 1e6
        table.add_row(c.name, ", ".join(f"{k} ({n})" for k, n in c.rows.items()), f"{size:.1f}", c.pushed_to or "-")
    Console().print(table)


@main.group()
def analyze() -> None:
    """Run an analysis over an activity store (on a local Dask cluster)."""


@analyze.command("tsnet")
@click.option("--store", required=True, type=click.Path(exists=True, path_type=Path), help="Activity store.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (tsnet.zarr, figures/).")
@click.option("--construction", "constructions", multiple=True, default=("horizontal", "natural"),
              show_default=True, type=click.Choice(["natural", "horizontal", "cycle", "recurrence"]))
@click.option("--variable", default="calcium", show_default=True,
              type=click.Choice(["calcium", "roi_calcium", "native_calcium"]),
              help="calcium: labelled neurons on the grid; roi_calcium: every ROI, labelled or not.")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--workers", type=int, help="Dask worker processes (default: CPU count).")
@click.option("--max-gap", default=0, show_default=True, type=int,
              help="NaN runs up to this many samples are bridged linearly; longer ones split the trace.")
@click.option("--metric", default=None, help="Metric of the heatmap (default: hvg_lambda, else path_length).")
def analyze_tsnet_cmd(store, out, constructions, variable, worms, datasets, workers, max_gap, metric) -> None:
    """Visibility, cycle and recurrence networks of every trace, their metrics and figures."""
    from analysis.tsnet import METRICS
    from pipeline.analyze import tsnet_figures, tsnet_on_store

    if metric is not None and metric not in METRICS:
        raise click.BadParameter(f"{metric!r} is not one of {', '.join(METRICS)}", param_hint="--metric")
    result = _or_exit(lambda: tsnet_on_store(store, out, constructions=constructions, variable=variable,
                                             workers=workers, worms=worms, datasets=datasets, max_gap=max_gap),
                      prefix="error", code=2)
    made = tsnet_figures(result, Path(out) / "figures", constructions, metric)
    _tsnet_table(result, constructions)
    for p in made:
        Console().print(f"figure: {p}")
    Console().print(f"metrics: {Path(out) / 'tsnet.zarr'}")


@analyze.command("hmmglm")
@click.option("--store", required=True, type=click.Path(exists=True, path_type=Path), help="Activity store.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (hmmglm.zarr, figures/).")
@click.option("--states", "n_states", default=3, show_default=True, type=click.IntRange(1, 20), help="Hidden states.")
@click.option("--prior", default="onehot", show_default=True, type=click.Choice(["onehot", "gaussian", "none"]),
              help="How the states' couplings are tied together.")
@click.option("--emission", default="gaussian", show_default=True, type=click.Choice(["gaussian", "poisson"]),
              help="gaussian: autoregressive GLM on calcium (the store holds calcium).")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--neuron", "neurons", multiple=True, help="These neurons (default: the most widely labelled).")
@click.option("--max-neurons", default=60, show_default=True, type=int)
@click.option("--min-worm-fraction", default=0.5, show_default=True, type=float,
              help="Default neurons: labelled in at least this share of the labelled worms.")
@click.option("--connectome", type=click.Path(exists=True, path_type=Path),
              help="Connectome store: compare the learned prior with anatomy (and --connectome-prior).")
@click.option("--connectome-source", default=None,
              help="Source in the connectome store (default: cook_2019_herm/si5 if present, else the first).")
@click.option("--connectome-prior", is_flag=True,
              help="Start the one-hot prior from the connectome's synapses and signs, and keep it as its hyperprior.")
@click.option("--restarts", default=4, show_default=True, type=click.IntRange(1, 100))
@click.option("--seed", default=0, show_default=True, type=int)
def analyze_hmmglm_cmd(store, out, n_states, prior, emission, worms, datasets, neurons, max_neurons,
                       min_worm_fraction, connectome, connectome_source, connectome_prior, restarts, seed) -> None:
    """Brain states by a state-switching GLM (HMM-GLM), against reversals and the connectome."""
    from pipeline.brainstates import hmmglm_figures, hmmglm_on_store

    with console.status(f"fitting a {n_states}-state HMM-GLM ({prior} prior, {restarts} restarts)…"):
        result, summary, ds = _or_exit(lambda: hmmglm_on_store(
            store, out, n_states=n_states, prior=prior, emission=emission, worms=worms, datasets=datasets,
            neurons=neurons, max_neurons=max_neurons, min_worm_fraction=min_worm_fraction, connectome=connectome,
            connectome_source=connectome_source, connectome_prior=connectome_prior, n_restarts=restarts,
            seed=seed), prefix="error", code=2)
    made = hmmglm_figures(result, ds, Path(out) / "figures")
    console.print(f"{summary['n_worms']} worms x {summary['n_neurons']} neurons, {n_states} states, "
                  f"{summary['n_iter']} EM iterations ({'converged' if summary['converged'] else 'not converged'}), "
                  f"log-likelihood {summary['log_likelihood_per_bin']:.3f} per bin")
    if "behaviour" in summary:
        b = summary["behaviour"]
        console.print(f"states vs {b['variable']}: balanced accuracy {b['held_out_mean']:.3f} held out per worm "
                      f"({b['in_sample_mean']:.3f} in sample); share 'on' per state "
                      + ", ".join(f"{x:.2f}" for x in b["state_on_fraction"]))
    if "connectome" in summary:
        c = summary["connectome"]
        extra = (f", P(connection) {c['p_connection_synapse']:.3f} with a synapse vs {c['p_connection_none']:.3f} without"
                 if "p_connection_synapse" in c else "")
        console.print(f"learned couplings vs {c['source']}: ROC AUC {c['auc']:.3f}{extra}")
    for p in made:
        console.print(f"figure: {p}")
    console.print(f"model: {Path(out) / 'hmmglm.zarr'}")


@analyze.command("ntf")
@click.option("--store", required=True, type=click.Path(exists=True, path_type=Path), help="Activity store.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (ntf.zarr, figures/).")
@click.option("--rank", type=click.IntRange(1, 50), help="Components (default: chosen by stability over --ranks).")
@click.option("--ranks", default="2-6", show_default=True, help="Candidate ranks for the choice, as LO-HI.")
@click.option("--bin-s", default=5.0, show_default=True, type=float, help="Time bin of the tensor, seconds.")
@click.option("--min-worms", default=2, show_default=True, type=int,
              help="Pairs observed together in at least this many worms.")
@click.option("--smooth-s", default=1.0, show_default=True, type=float, help="Gaussian smoothing before d/dt, s.")
@click.option("--neuron", "neurons", multiple=True, help="Only these neurons (repeatable).")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--restarts", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", type=int, help="Dask worker processes for the tensor (default: CPU count).")
def analyze_ntf_cmd(store, out, rank, ranks, bin_s, min_worms, smooth_s, neurons, worms, datasets, restarts,
                    seed, workers) -> None:
    """Dynamic functional connectome: affinity tensor, NTF, communities (SBM and Leiden)."""
    from pipeline.dynamic_connectome import ntf_figures, ntf_on_store

    try:
        lo, hi = (int(v) for v in ranks.split("-"))
        candidates = range(lo, hi + 1)
        assert 1 <= lo <= hi
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{ranks!r} is not LO-HI with 1 <= LO <= HI", param_hint="--ranks")
    what = f"rank {rank}" if rank else f"ranks {ranks} (choosing by stability)"
    with console.status(f"affinity tensor, then NTF at {what} with {restarts} restarts each, then communities…"):
        result, selection, ds = _or_exit(lambda: ntf_on_store(
            store, out, rank=rank, ranks=candidates, bin_s=bin_s, min_worms=min_worms, smooth_s=smooth_s,
            neurons=neurons, worms=worms, datasets=datasets, n_restarts=restarts, seed=seed, workers=workers,
            progress=False), prefix="error", code=2)
    made = ntf_figures(result, ds, Path(out) / "figures")
    shape = json.loads(result.attrs["tensor_shape"])
    console.print(f"tensor {shape[0]} pairs x {shape[1]} time bins x {shape[2]} worms "
                  f"({result.attrs['observed_fraction']:.0%} observed)")
    if selection is not None:
        console.print("rank: " + ", ".join(f"{r}: error {e:.3f} stability {s:.2f}" for r, e, s in zip(
            selection["rank"].values, selection.error.values, selection.stability.values))
            + f" -> {result.attrs['rank']}")
    console.print(f"rank {result.attrs['rank']}: relative error {result.attrs['error']:.3f}, "
                  f"stability {result.attrs['stability']:.2f} over {restarts} restarts")
    for k in result.component.values:
        core = [str(n) for n, c in zip(result.neuron.values, result.core.sel(component=k).values) if c]
        console.print(f"component {k}: {int(result.n_blocks.sel(component=k))} SBM blocks, "
                      f"{len(set(result.leiden.sel(component=k).values.tolist()))} Leiden communities; "
                      f"core: {', '.join(core[:12])}{'…' if len(core) > 12 else ''}")
    for p in made:
        console.print(f"figure: {p}")
    console.print(f"result: {Path(out) / 'ntf.zarr'}")


@analyze.command("langevin")
@click.option("--store", required=True, type=click.Path(exists=True, path_type=Path), help="Activity store.")
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
def analyze_langevin_cmd(store, out, window_s, held_out, max_neurons, epochs, latent, hidden, device, worms,
                         datasets, seed) -> None:
    """LangevinFlow latent dynamics of the calcium, against a GRU VAE and smoothing."""
    from pipeline.latent_dynamics import langevin_figures, langevin_on_store

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[loss]}"), console=console, transient=True) as bar:
        tasks = {}

        def progress(model, epoch, train, val):
            if model not in tasks:
                tasks[model] = bar.add_task(f"{model} epochs", total=epochs, loss="")
            bar.update(tasks[model], completed=epoch + 1, loss=f"validation {val:.1f}")

        result, summary, _ = _or_exit(lambda: langevin_on_store(
            store, out, window_s=window_s, held_out=held_out, max_neurons=max_neurons, epochs=epochs, latent=latent,
            hidden=hidden, device=device, worms=worms, datasets=datasets, seed=seed, progress=progress),
            prefix="error", code=2)
    made = langevin_figures(result, Path(out) / "figures")
    console.print(f"{summary['n_worms']} worms, {summary['n_neurons']} neurons "
                  f"({len(summary['held_out_neurons'])} held out), {summary['n_windows']} windows of "
                  f"{summary['window_bins']} bins")
    table = Table(box=None)
    for col in ("model", "held-out neuron R²", "velocity decoding R²"):
        table.add_column(col)
    for m, v in summary["metrics"].items():
        table.add_row(m, f"{v['heldout_r2']:.3f}", f"{v['velocity_r2']:.3f}")
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

if __name__ == "__main__":
    main()
