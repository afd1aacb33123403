"""Batch ingest of raw activity files into a store: discovery, checksums, failure isolation."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from activity.homogenize import HomogenizeParams, homogenize_worm
from activity.readers import detect, read_recordings
from activity.store import StoreWriter
from wormflow.core.errors import StoreWriteError, failure_message
from wormflow.core.provenance import sha256_of, wormflow_version

_DATASET_DIR = re.compile(r"^[A-Z][A-Za-z]+\d{4}[a-z]?$")     # Dag2023, Scholz2018, Kato2015


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)           # already in the store (same sha256)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)             # label renames, uncertain and duplicate labels

    @property
    def ok(self) -> bool:
        return not self.failed


# Files with these extensions under a folder are taken even when no reader recognises
# them, so that a damaged recording fails with its cause instead of being passed over.
RECORDING_SUFFIXES = {".h5", ".hdf5", ".nwb", ".mat"}


def discover(paths: Iterable[str | Path], format: str | None = None,
             detected: dict[Path, list[str]] | None = None) -> list[Path]:
    """Files named directly, plus every file under named folders that a reader recognises
    (or that looks like a recording by its extension). ``detected`` collects the formats
    found for each file, so that callers need not sniff it again."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                names = detect(f)
                if detected is not None:
                    detected[f] = names
                if (names and (format is None or format in names)) or (
                        not names and f.suffix.lower() in RECORDING_SUFFIXES):
                    out.append(f)
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def dataset_name(path: Path, default: str) -> str:
    """The nearest parent folder named like a paper (``Dag2023``), else the reader's default."""
    for parent in path.resolve().parents:
        if _DATASET_DIR.match(parent.name):
            return parent.name
    return default


def read_and_homogenize(path: str, format: str | None, claimed: list[str] | None, options: dict,
                        params_json: str, dataset: str | None) -> list:
    """One file's worms, read and homogenized: [(worm_id, dataset, extra source paths,
    Worm)]. The work a Dask worker does for a parallel ingest, and the driver for a serial one."""
    params = HomogenizeParams(**json.loads(params_json))
    out = []
    for rec in read_recordings(Path(path), format=format, claimed=claimed, **options):
        rec.dataset = dataset or dataset_name(Path(path), rec.dataset)
        out.append((rec.worm_id, rec.dataset, list(rec.extra_sources), homogenize_worm(rec, params)))
    return out


def ingest_activity(paths: Iterable[str | Path], store: str | Path, *, format: str | None = None,
                    dataset: str | None = None, labels: str | None = None,
                    params: HomogenizeParams = HomogenizeParams(),
                    on_file: Callable[[Path], None] | None = None, client=None,
                    endpoint_url: str | None = None, checksums: dict[Path, str] | None = None) -> IngestReport:
    """Read, homogenize and append every worm of ``paths``; a bad file fails alone.

    With a Dask ``client`` every file is read, homogenized and written on a worker, each
    worker into its own fork of the store's session, and the driver merges the forks and
    commits once (:meth:`activity.store.StoreWriter.append_on_workers`); the worms keep
    the files' order. Without a client the driver does it all. Either way the worms are
    one commit of the store (see :class:`activity.store.StoreWriter`). Re-ingesting a file
    already in the store (same sha256 and worm) is a no-op. The store changes only if at
    least one worm was added. ``checksums``: the files' sha256 where the caller has them
    already (``wormflow run`` computes them for its cache keys), so no file is hashed twice.
    """
    detected: dict[Path, list[str]] = {}
    files = discover(paths, format, detected)
    report = IngestReport()
    options = {"labels": labels} if labels else {}
    inputs = []
    # checksums are computed ahead on a thread (hashlib releases the GIL), which also
    # brings each file into the page cache before its reader opens it
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wormflow-sha256")
    known = checksums or {}
    ahead = {f: hasher.submit(sha256_of, f) for f in files if f.is_file() and f not in known}

    def sha_of(path: Path) -> str:
        return known.get(path) or (ahead[path].result() if path in ahead else "")

    side_files: dict[str, str] = {}
    args = [(str(f), format, detected.get(f), options, params.to_json(), dataset) for f in files]
    try:
        with StoreWriter(store, params, provenance={}, endpoint_url=endpoint_url) as writer:
            existing, names = writer.existing()
            if client is not None:
                inputs = _ingest_on_workers(client, writer, files, args, sha_of, existing, names, side_files,
                                            report, on_file)
            for path, worms in ([] if client is not None else _worms_in_order(files, args)):
                try:
                    if isinstance(worms, BaseException):
                        raise worms
                    sha = sha_of(path)
                    for worm_id, worm_dataset, extra_sources, worm in worms:
                        claimed = _claim(path, sha, worm_id, worm_dataset, extra_sources, existing, names,
                                         side_files, report)
                        if claimed is None:
                            continue
                        writer.append(worm, sha, *claimed)
                        report.added.append(claimed[0])
                        report.notes.extend(json.loads(worm.attrs["label_notes"]))
                    inputs.append({"file": str(path.resolve()), "sha256": sha})
                except StoreWriteError:   # the store cannot be written: every file would fail, nothing is committed
                    raise
                except Exception as exc:  # any other failure, expected or not, fails only this file
                    report.failed.append((str(path), failure_message(path.name, exc)))
                if on_file is not None:
                    on_file(path)
            writer.provenance = {"last_ingest": {"inputs": inputs, "wormflow_version": wormflow_version(),
                                                 "params": params.to_json()}}
    finally:          # a refused or failed ingest does not wait for the remaining checksums
        hasher.shutdown(wait=False, cancel_futures=True)
    return report


def _claim(path, sha, worm_id, dataset, extra_sources, existing, names, side_files, report):
    """(store name, side files' sha256) for a worm to add, or None (and a skip noted) when
    the store has it already (same file sha256 and worm id). A name taken by another
    file's worm gets the file's sha256 prefix."""
    if (sha, worm_id) in existing:
        report.skipped.append(f"{path.name} [{worm_id}]")
        return None
    name = f"{dataset}/{worm_id}"
    if name in names:
        name = f"{name}~{sha[:8]}"
    extra = {}
    for side in extra_sources:          # e.g. the JLD2 labels, shared by many worms
        if side not in side_files:
            side_files[side] = sha256_of(Path(side))
        extra[Path(side).name] = side_files[side]
    names.add(name)
    existing.add((sha, worm_id))
    return name, extra


def _worms_in_order(files, args):
    """(path, its worms or the exception reading it raised), in file order."""
    for path, a in zip(files, args):
        try:
            yield path, read_and_homogenize(*a)
        except Exception as exc:  # handed to the caller, which fails this file alone
            yield path, exc


def _layouts(worms) -> list:
    """On a worker: the small description of each worm of a file (its data stays there)."""
    from activity.store import worm_layout

    return [(worm_id, dataset, extra, worm_layout(worm)) for worm_id, dataset, extra, worm in worms]


def _pick(worms, j):
    return worms[j][3]


def _ingest_on_workers(client, writer, files, args, sha_of, existing, names, side_files, report, on_file) -> list:
    """Read and homogenize every file on the cluster, then write its worms there too
    (see ingest_activity); returns the inputs that made it."""
    from distributed import wait

    read = [client.submit(read_and_homogenize, *a, pure=False, key=f"read-{i}-{path.name}")
            for i, (path, a) in enumerate(zip(files, args))]
    described = [client.submit(_layouts, f, pure=False) for f in read]
    wait(described)
    entries, inputs = [], []
    for path, fut, desc in zip(files, read, described):
        try:
            if desc.status == "error":
                raise desc.exception()
            sha = sha_of(path)
            worms = desc.result()
            for *_, layout in worms:                      # a worm that does not fit fails its file alone
                writer.check_layout(layout)
            for j, (worm_id, worm_dataset, extra_sources, layout) in enumerate(worms):
                claimed = _claim(path, sha, worm_id, worm_dataset, extra_sources, existing, names, side_files,
                                 report)
                if claimed is None:
                    continue
                entries.append((client.submit(_pick, fut, j, pure=False), layout, sha, *claimed))
                report.added.append(claimed[0])
                report.notes.extend(json.loads(layout["attrs"]["label_notes"]))
            inputs.append({"file": str(path.resolve()), "sha256": sha})
        except Exception as exc:  # any failure, expected or not, fails only this file
            report.failed.append((str(path), failure_message(path.name, exc)))
        if on_file is not None:
            on_file(path)
    try:
        writer.append_on_workers(client, entries)
    finally:
        for f in read + described + [e[0] for e in entries]:
            f.release()
    return inputs
