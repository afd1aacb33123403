"""The ``wormflow`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from activity.homogenize import NORMALIZATION, SMOOTHING, HomogenizeParams
from activity.readers import READERS
from wormflow.core.errors import WormflowError
from pipeline._console import StoreLocation, WormflowGroup, _exit_if_failed, _or_exit, console
from pipeline.cli_analyze import analyze


@click.group(cls=WormflowGroup)
@click.version_option(package_name="wormflow")
def main() -> None:
    """wormflow: C. elegans whole-brain activity and connectomes in one store."""


main.add_command(analyze)


@main.group()
def ingest() -> None:
    """Add raw files to a store."""


@ingest.command("activity")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--store", required=True, type=StoreLocation(), help="Activity store: a folder or an s3://, gs://, az:// URL.")
@click.option("--format", "fmt", type=click.Choice(sorted(READERS)), help="Reader to use (default: detect).")
@click.option("--dataset", help="Dataset name for these worms (default: folder name like Dag2023).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Flavell NeuroPAL_labels_dict.jld2.")
@click.option("--dt", default=0.5, show_default=True, type=float, help="Grid step in seconds (a store parameter).")
@click.option("--smoothing", type=click.Choice(SMOOTHING), default="none", show_default=True)
@click.option("--smoothing-s", default=1.0, show_default=True, type=float)
@click.option("--normalization", type=click.Choice(NORMALIZATION), default="none", show_default=True)
@click.option("--strict-labels", is_flag=True, help="Fail a worm with duplicate labels instead of flagging them.")
@click.option("--gap-tolerance", default=1.5, show_default=True, type=float,
              help="Grid points farther than this many median frame intervals from every recorded frame are "
                   "NaN and not valid (a store parameter).")
@click.option("--workers", type=int, help="Read and homogenize on a local Dask cluster of this many workers "
                                          "(default: in this process).")
@click.option("--scheduler", help="Read and homogenize on this Dask scheduler's workers (or DASK_SCHEDULER_ADDRESS "
                                  "when --workers is not given).")
@click.option("-v", "--verbose", is_flag=True, help="Print every label rename and warning.")
def ingest_activity_cmd(paths, store, fmt, dataset, labels, dt, smoothing, smoothing_s, normalization,
                        strict_labels, gap_tolerance, workers, scheduler, verbose) -> None:
    """Read, homogenize and append the worms in PATHS (files or folders) to STORE, as one commit."""
    from pipeline.ingest import discover, ingest_activity
    try:
        params = HomogenizeParams(dt=dt, smoothing=smoothing, smoothing_s=smoothing_s,
                                  normalization=normalization, strict_labels=strict_labels,
                                  gap_tolerance=gap_tolerance)
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
            with _ingest_client(workers, scheduler) as client:
                report = ingest_activity(files, store, format=fmt, dataset=dataset, labels=labels, params=params,
                                         on_file=lambda p: progress.update(task, advance=1, description=p.name),
                                         client=client)
        except WormflowError as exc:
            console.print(f"[red]error:[/red] {exc}")
            sys.exit(2)
    uncertain = sum("uncertain" in n for n in report.notes)
    duplicated = [n for n in report.notes if any(k in n for k in ("is given to ROIs", "stored as NaN",
                                                                   "kept as an event array",
                                                                   "kept unlabelled"))]
    console.print(f"added {len(report.added)} worm(s), skipped {len(report.skipped)} already stored, "
                  f"{len(report.failed)} file(s) failed; {uncertain} uncertain label(s) kept unassigned")
    for n in duplicated + (report.notes if verbose else []):
        console.print(f"  [yellow]warning[/yellow] {n}")
    _exit_if_failed(report.failed)


def _ingest_client(workers, scheduler):
    """A Dask client for a parallel ingest when asked for (--workers, --scheduler, or
    DASK_SCHEDULER_ADDRESS), else none: a serial ingest in this process."""
    import contextlib
    import os

    if workers is None and scheduler is None and not os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return contextlib.nullcontext(None)
    from pipeline.cluster import open_client, resolve

    return open_client(resolve(None, scheduler, workers))


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
@click.option("--store", required=True, type=StoreLocation(), help="Connectome store: a folder or an s3://, gs://, az:// URL.")
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
    from wormflow.core.repository import root_attrs

    return str(root_attrs(store).get("wormflow_store", ""))


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
@click.argument("store", type=StoreLocation(exists=True))
def info(store) -> None:
    """A readable summary of STORE (activity: worms per dataset and coverage; connectome: per source)."""
    from pipeline.summary import activity_summary
    if _store_kind(store).startswith("wormflow-connectome"):
        _connectome_info(store)
        return
    summary = _or_exit(activity_summary, store, prefix="error", code=2)
    out = Console()
    out.print(f"[bold]{store}[/bold]: {summary['n_worms']} worms, dt = {summary['dt']} s, "
              f"gap tolerance {summary['gap_tolerance']} median frame intervals, wormflow {summary['version']}")
    table = Table()
    for col in ("dataset", "worms", "min", "labelled", "neurons", "unlabelled ROIs", "gap points"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for row in summary["datasets"]:
        table.add_row(row["dataset"], str(row["worms"]), f"{row['minutes']:.1f}", f"{row['labelled_median']:.0f}",
                      f"{row['neurons_seen']}/302", str(row["unlabelled_rois"]), str(row["grid_dropped"]))
    out.print(table)
    out.print("labelled: median per worm; gap points: grid points with no recorded frame within the gap tolerance "
              "(NaN, valid = False)")
    for row in summary["datasets"]:
        out.print(escape(f"{row['dataset']} signal [units]: {row['signal']}"))
    for g in summary["gaps"]:
        out.print(escape(f"gaps in {g['worm']}: {g['grid_dropped']} grid points dropped "
                         f"(longest frame gap {g['max_frame_gap_s']:.1f} s)"), soft_wrap=True)
    out.print(f"neurons observed in at least one worm: {summary['neurons_seen']}/302; most covered: "
              + ", ".join(f"{n} ({c})" for n, c in summary["top_neurons"]))


@main.command()
@click.argument("store", type=StoreLocation(exists=True))
def validate(store) -> None:
    """Check STORE's invariants; exit non-zero and list every problem found."""
    from pipeline.summary import validate_activity
    problems = _or_exit(validate_activity, store, prefix="invalid", code=1)
    if problems:
        for p in problems:
            console.print(f"[red]problem:[/red] {p}")
        sys.exit(1)
    Console().print(f"{store}: valid")


@main.command("log")
@click.argument("store", type=StoreLocation(exists=True))
def log_cmd(store) -> None:
    """The commits of STORE, newest first: time, snapshot id, message and worms added."""
    from wormflow.core.repository import history

    commits = _or_exit(history, store, prefix="error", code=2)
    table = Table(title=f"{store}: {len(commits)} commit(s)")
    for col in ("written (UTC)", "snapshot", "message", "worms added"):
        table.add_column(col)
    for c in commits:
        added = c.metadata.get("worms_added")
        table.add_row(c.written_at.strftime("%Y-%m-%d %H:%M:%S"), c.id, escape(c.message),
                      str(len(added)) if isinstance(added, list) else "")
    Console().print(table)


@main.command("export-zarr")
@click.argument("store", type=StoreLocation(exists=True))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--version", help="A tag or snapshot id to export (default: the latest commit).")
def export_zarr_cmd(store, dest, version) -> None:
    """Write STORE (any wormflow store) as a plain Zarr v3 folder DEST, for tools that do not read Icechunk."""
    from pipeline.storage import export_plain_zarr

    path = _or_exit(export_plain_zarr, store, dest, version, prefix="error", code=2)
    console.print(f"wrote {path}")


@main.command("export-nwb")
@click.argument("store", type=StoreLocation(exists=True))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for OUT/<dataset>/<worm>.nwb.")
@click.option("--worm", "worms", multiple=True, help="Only these worm ids (repeatable; default: every worm).")
@click.option("--grid", is_flag=True, help="Also write the ROIs on the store's homogenized grid.")
@click.option("--sex", type=click.Choice(["XX", "XO"]), default="XX", show_default=True,
              help="Subject sex where the source does not record it.")
@click.option("--metadata", "metadata_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML table of metadata per dataset: [Dag2023] age, age_reference, strain, growth_stage, ...")
@click.option("--age", help="Subject age as an ISO 8601 duration (P3D) where neither source nor table says.")
@click.option("--age-reference", type=click.Choice(["birth", "gestational"]), help="What --age counts from.")
@click.option("--strain", help="Strain where neither source nor table says.")
@click.option("--growth-stage", help="Growth stage (L4, YA, ...) where neither source nor table says.")
@click.option("--experimenter", multiple=True, help="Experimenter (repeatable) where the source names none.")
@click.option("--institution", help="Institution where the source names none.")
@click.option("--lab", help="Lab where the source names none.")
@click.option("--publication", "publications", multiple=True, help="Related publication, e.g. doi:10.1101/445643.")
@click.option("--overwrite", is_flag=True, help="Replace files that exist.")
@click.option("--no-validate", is_flag=True, help="Skip pynwb validation and nwbinspector.")
def export_nwb_cmd(store, out, worms, grid, sex, metadata_file, age, age_reference, strain, growth_stage,
                   experimenter, institution, lab, publications, overwrite, no_validate) -> None:
    """Write every worm of STORE as an NWB file in the WormID layout (DANDI 000692/000776)."""
    from activity.nwb import IGNORED_CHECKS, ExportParams
    from pipeline.export import export_store, load_metadata_table

    given = {"age": age, "age_reference": age_reference, "strain": strain, "growth_stage": growth_stage,
             "experimenter": list(experimenter), "institution": institution, "lab": lab,
             "related_publications": list(publications)}
    table = _or_exit(load_metadata_table, metadata_file, prefix="error", code=2) if metadata_file else {}
    params = _or_exit(lambda: ExportParams(grid=grid, sex=sex, metadata={k: v for k, v in given.items() if v},
                                           dataset_metadata=table), prefix="error", code=2)

    from activity.store import open_activity

    n = len(worms) or int(_or_exit(open_activity, store, prefix="error", code=2).sizes["worm"])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("exporting", total=n)
        report = _or_exit(lambda: export_store(store, out, worms=worms, params=params,
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
            console.print(f"[red]{e['worm']}:[/red] {escape(p)}")
    missing = [m for e in report.exported for m in e.get("missing", [])]
    for m in missing:
        console.print(f"[yellow]not ready for DANDI:[/yellow] {escape(m)}", soft_wrap=True)
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
    if list_only and not sys.stdout.isatty():      # a pipe or a file: whole names, one tab-separated line each
        click.echo("name\tbytes\tlicence\tsource")
        for e in entries:
            click.echo(f"{e.name}\t{e.bytes}\t{e.license}\t{e.source_repo}@{e.commit}")
        return
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



if __name__ == "__main__":
    main()
