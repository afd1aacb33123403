"""`wormflow publish`: activity, connectome and analysis results as HuggingFace dataset folders.

Each collection becomes a folder in the Hub layout: Parquet files under ``data/<config>/``
(:mod:`.tables`) and a ``README.md`` dataset card with the Hub's metadata, counts,
sources, per-file sha256, a licence per config and citations with BibTeX (:mod:`.cards`).
The collections are the activity store and the connectome store (:mod:`.stores`) and the
analysis results of a workdir, one or more configs per analysis (:mod:`.results`).
Publishing twice gives the same bytes. With ``repo_id``, each folder is uploaded with
``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pipeline.publish.results import found_results, publish_analysis
from pipeline.publish.stores import publish_activity, publish_connectome
from pipeline.publish.tables import Collection
from wormflow.core.atomic import recover, swap_in
from wormflow.core.errors import WormflowError
from wormflow.core.provenance import wormflow_version
from wormflow.core.repository import store_kind

__all__ = ["Collection", "PublishError", "find_collections", "publish", "publish_activity", "publish_analysis",
           "publish_connectome"]


class PublishError(WormflowError):
    """Nothing to publish, or a bad target."""


def find_collections(path: Path) -> list[tuple[str, Path]]:
    """(collection, source) pairs: the stores of a workdir and its analysis folder, or the
    single store or analysis folder ``path`` is."""
    path = Path(path)
    kind = store_kind(path)
    if kind in ("activity", "connectome"):
        return [(kind, path)]
    if kind == "analysis":
        path = path.parent            # one result: publish the folder it is in
    if found_results(path):
        return [("analysis", path)]
    found = [(k, p) for k, p in (("activity", path / "activity.zarr"), ("connectome", path / "connectome.zarr"))
             if store_kind(p)]
    if found_results(path / "analysis"):
        found.append(("analysis", path / "analysis"))
    if not found:
        raise PublishError(f"{path}: neither a wormflow store nor a workdir holding activity.zarr, connectome.zarr "
                           "or analysis results (analysis/tsnet.zarr, hmmglm.zarr, ntf.zarr, langevin.zarr)")
    return found


MANIFEST = ".wormflow-publish.json"      # the files a publish wrote: the only ones a later one replaces


def _fresh_staging(folder: Path) -> Path:
    """An empty staging folder beside ``folder``; staging folders of killed publishes go."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    for stale in folder.parent.glob(f".{folder.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    staging.mkdir()
    return staging


def _written(folder: Path) -> set[str]:
    """Relative paths a publish wrote into ``folder`` before (its manifest), or none."""
    try:
        return set(json.loads((folder / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _swap_published(col: "Collection", staging: Path, folder: Path) -> None:
    """Replace ``folder`` by ``staging`` in one directory exchange. Files in ``folder`` that no
    publish wrote (a user's notes, their own data) are carried over first, so only what an
    earlier publish wrote is replaced; a kill at any point leaves the old folder or the new."""
    ours = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    (staging / MANIFEST).write_text(json.dumps({"wormflow_version": wormflow_version(), "files": ours}, indent=1))
    if folder.exists():
        before = _written(folder)
        for p in folder.rglob("*"):
            rel = str(p.relative_to(folder))
            if p.is_file() and rel != MANIFEST and rel not in before and not (staging / rel).exists():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(p, target)
                except OSError:
                    shutil.copy2(p, target)
    swap_in(staging, folder)


def publish(path: str | Path, to: str | Path, *, repo_id: str | None = None, private: bool = False,
            api=None) -> list[Collection]:
    """Build one Hub dataset folder per collection under ``to``; with ``repo_id`` push each one
    (ORG/NAME for a single store, ORG/NAME-<collection> for a workdir)."""
    to = Path(to)
    found = find_collections(Path(path))
    builders = {"activity": publish_activity, "connectome": publish_connectome, "analysis": publish_analysis}
    out = []
    for kind, store in found:
        folder = to / kind
        # the card's usage snippet loads from the Hub id, or, not pushed, from the folder by its
        # name beside the others (so the bytes do not depend on where the folder lies)
        repo = repo_id if (repo_id and len(found) == 1) else (f"{repo_id}-{kind}" if repo_id else kind)
        staging = _fresh_staging(folder)
        try:
            col = builders[kind](store, staging, repo)
            _swap_published(col, staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        col.folder = folder
        col.pushed_to = repo if repo_id else ""
        out.append(col)
    if repo_id:
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()       # token from HF_TOKEN or the user's login; never printed
        for col in out:
            api.create_repo(repo_id=col.pushed_to, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(col.folder), repo_id=col.pushed_to, repo_type="dataset",
                              ignore_patterns=[MANIFEST],
                              commit_message=f"wormflow {wormflow_version()} publish")
    return out
