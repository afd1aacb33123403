"""The work of ``wormflow run`` that runs on Dask workers, one task per file, worm or
analysis. Each task catches its own failure and returns it as ``{"error": ...}``, so a
bad input fails alone and the run lists it in ``failures.json``."""

from __future__ import annotations

import json
from pathlib import Path

from wormflow.core.provenance import wormflow_version
from wormflow.core.atomic import write_bytes_atomic
from wormflow.core.errors import WormflowError, failure_message


def write_json_atomic(path: Path, value) -> None:
    """Write ``value`` as JSON to ``path`` by a rename: readers never see half a file."""
    write_bytes_atomic(path, json.dumps(value, indent=1, sort_keys=True, default=str).encode())


def connectome_task(paths: list[str], store: str) -> dict:
    from pipeline.connectome_ingest import ingest_connectomes
    from wormflow.core import repository

    report = ingest_connectomes(paths, store)
    return {"sources": report.sources, "failed": report.failed, "built": repository.exists(store)}


def export_task(store: str, worm: str, path: str, params: dict, validate: bool) -> dict:
    from activity.nwb import ExportParams
    from activity.store import open_activity
    from pipeline.export import export_one

    try:
        return export_one(open_activity(store), worm, Path(path), ExportParams(**params), wormflow_version(),
                          validate=validate, overwrite=True)
    except Exception as exc:  # a bad worm fails alone
        return {"error": failure_message(worm, exc)}


def hmmglm_task(store: str, out: str, connectome: str | None, params: dict) -> dict:
    from pipeline.hmmglm import hmmglm_on_store

    try:
        _, summary, _ = hmmglm_on_store(store, out, n_states=params["n_states"], prior=params["prior"],
                                        max_neurons=params["max_neurons"], selection=params["selection"],
                                        connectome=connectome,
                                        connectome_prior=params["connectome_prior"], n_restarts=params["restarts"],
                                        detrend_s=params["detrend_s"],
                                        seed=params["seed"])
        return summary
    except WormflowError as exc:
        return {"error": failure_message("hmmglm", exc)}


def langevin_task(store: str, out: str, params: dict) -> dict:
    from pipeline.langevin import langevin_on_store

    try:
        _, summary, _ = langevin_on_store(store, out, **params)
        return summary
    except WormflowError as exc:
        return {"error": failure_message("langevin", exc)}


def summary_task(fn, store: str, out: str, options: dict) -> dict:
    """An analyze command's fit as one task on the user's cluster: its outputs go to ``out``;
    only the summary comes back."""
    _, summary, _ = fn(store, out, **options)
    return summary
