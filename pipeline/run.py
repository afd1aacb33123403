"""`wormflow run`: every stage of a configuration as Dask tasks, resumable and idempotent.

Workdir layout::

    activity.zarr  connectome.zarr  nwb/<dataset>/<worm>.nwb  analysis/tsnet.zarr
    analysis/figures/*.png  report/index.html  failures.json  logs/run-*.log
    .wormflow/run.lock  .wormflow/cache/ingest/<key>/  .wormflow/done/<stage>/<key>.json

Every task's output is keyed by the sha256 of its inputs, its parameters and the wormflow
version. A task whose done-record exists is skipped, so a rerun reuses finished work and
a run killed at any point resumes to the same outputs: each output is written under a
temporary name and moved into place before its done-record is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from wormflow.core.provenance import wormflow_version
from pipeline.cluster import open_client, resolve
from pipeline.stages import STAGES as STAGE_REGISTRY
from wormflow.core.errors import WormflowError, failure_message
from pipeline.config import Config
from pipeline.registry import mirror_dir, resolve_sources
from pipeline.tasks import (connectome_task, export_task, hmmglm_task, langevin_task,
                            write_json_atomic)

log = logging.getLogger("wormflow.run")


class RunLocked(WormflowError):
    """Another run holds the workdir."""


@dataclass
class StageResult:
    name: str
    status: str = "done"            # done | cached | failed | skipped
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class RunResult:
    workdir: Path
    stages: list[StageResult] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)     # file, stage, error
    log_file: Path | None = None
    workers: int = 0
    scheduler: str = ""


def digest(*parts) -> str:
    """Stable key of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class Workdir:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.meta = self.root / ".wormflow"

    def done_path(self, stage: str, key: str) -> Path:
        return self.meta / "done" / stage / f"{key}.json"

    def done(self, stage: str, key: str) -> dict | None:
        p = self.done_path(stage, key)
        if not p.is_file():
            return None
        record = json.loads(p.read_text())
        return record if all(Path(o).exists() for o in record.get("outputs", [])) else None

    def mark_done(self, stage: str, key: str, record: dict) -> None:
        write_json_atomic(self.done_path(stage, key), record)

    @contextmanager
    def lock(self, wait: bool = False):
        self.meta.mkdir(parents=True, exist_ok=True)
        path = self.meta / "run.lock"
        fh = open(path, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise RunLocked(f"{self.root}: another wormflow run is using this workdir ({holder}); "
                                "wait for it to finish (or pass --wait), or stop it") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}, started {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


# ---------------------------------------------------------------- stages

class Runner:
    def __init__(self, config: Config, workdir: Workdir, client, mirror: Path | None,
                 progress: Callable[[str, int], Callable[[], None]] | None = None):
        self.config, self.wd, self.client, self.mirror = config, workdir, client, mirror
        self.progress = progress or (lambda name, total: (lambda: None))
        self.failures: list[dict] = []
        self.version = wormflow_version()
        self.store_key: str | None = None
        self.keys: dict[str, str] = {}

    def fail(self, stage: str, file: str, error: str) -> None:
        log.error("%s: %s: %s", stage, file, error)
        self.failures.append({"file": file, "stage": stage, "error": error})

    def _cached(self, stage: str, *parts):
        """(key, the cached StageResult or None): the stage's key from ``parts`` and this
        version, remembered for the stages after it."""
        key = digest(stage, *parts, self.version)
        self.keys[stage] = key
        record = self.wd.done(stage, key)
        hit = StageResult(stage, "cached", outputs=record["outputs"], detail=record.get("detail", "")) if record else None
        return key, hit

    def _finish(self, stage: str, key: str, outputs: list[str], detail: str = "") -> StageResult:
        self.wd.mark_done(stage, key, {"outputs": outputs, "detail": detail})
        return StageResult(stage, outputs=outputs, detail=detail)

    def _gather(self, stage: str, futures: list):
        from distributed import as_completed

        tick = self.progress(stage, len(futures))
        for _ in as_completed(futures):
            tick()
        return [f.result() for f in futures]

    def ingest_activity(self, params: dict) -> StageResult:
        """The run's store: every source's files read and homogenized on the cluster and
        appended by the driver (pipeline.ingest, the same path as `wormflow ingest`),
        one commit per source. Files already in the store are skipped; the store is
        rebuilt when its parameters or its set of files no longer match the config."""
        from activity.homogenize import HomogenizeParams
        from activity.readers import side_files
        from pipeline.ingest import discover, ingest_activity
        from wormflow.core import repository
        from wormflow.core.provenance import sha256_of

        hp = HomogenizeParams(**params)
        groups, keys, shas = [], [], {}
        for src in resolve_sources(self.config, "activity", self.wd.root / "raw", self.mirror):
            files = discover([src["path"]], src["format"])
            groups.append((src, files))
            for path in files:
                sides = side_files(path, src["format"]) if path.is_file() else []
                sha = sha256_of(path)
                shas[path] = sha
                keys.append(digest("ingest", sha, [sha256_of(s) for s in sides], src["format"],
                                   src["dataset"], hp.to_json(), self.version))
        store = self.wd.root / "activity.zarr"
        self.store_key = digest("store", keys, hp.to_json(), self.version)
        if self.wd.done("ingest_activity", self.store_key) and repository.exists(store):
            record = self.wd.done("ingest_activity", self.store_key)
            for f, err in record.get("failed", []):
                self.fail("ingest_activity", f, err)
            return StageResult("ingest_activity", "cached", outputs=[str(store)], detail=record.get("detail", ""))
        if repository.exists(store) and not self._store_matches(store, hp, set(shas.values())):
            shutil.rmtree(store)                    # the run owns its store: rebuilt from the config's files
        tick = self.progress("ingest activity", sum(len(f) for _, f in groups))
        failed, added = [], 0
        for src, files in groups:
            report = ingest_activity(files, store, format=src["format"], dataset=src["dataset"], params=hp,
                                     client=self.client, on_file=lambda _: tick(), checksums=shas)
            added += len(report.added)
            failed += report.failed
        for f, err in failed:
            self.fail("ingest_activity", f, err)
        if not repository.exists(store):
            return StageResult("ingest_activity", "failed", detail="no file could be read")
        detail = f"{len(keys) - len(failed)} file(s), {added} worm(s) added"
        self.wd.mark_done("ingest_activity", self.store_key, {"outputs": [str(store)], "failed": failed,
                                                              "detail": detail})
        return StageResult("ingest_activity", outputs=[str(store)], detail=detail)

    @staticmethod
    def _store_matches(store: Path, hp, shas: set) -> bool:
        """Whether the run's existing store was made with these parameters from files all
        still in the config (then only new files are appended)."""
        from activity.store import open_activity

        try:
            ds = open_activity(store)
        except WormflowError:
            return False
        return ds.attrs.get("homogenize_params") == hp.to_json() and set(map(str, ds.source_sha256.values)) <= shas

    def ingest_connectome(self, params: dict) -> StageResult:
        from pipeline.connectome_ingest import discover_connectomes
        from wormflow.core.provenance import sha256_of

        paths = [s["path"] for s in resolve_sources(self.config, "connectome", self.wd.root / "raw", self.mirror)]
        if not paths:
            return StageResult("ingest_connectome", "skipped", detail="no connectome sources")
        files, _ = discover_connectomes(paths)
        key = digest("connectome", sorted((str(f), sha256_of(f)) for f in files), self.version)
        self.keys["ingest_connectome"] = key
        store = self.wd.root / "connectome.zarr"
        record = self.wd.done("ingest_connectome", key)
        if record:
            for f, err in record.get("failed", []):
                self.fail("ingest_connectome", f, err)
            return StageResult("ingest_connectome", "cached", outputs=[str(store)])
        tick = self.progress("ingest connectome", 1)
        res = self.client.submit(connectome_task, [str(p) for p in paths], str(store), pure=False).result()
        tick()
        for f, err in res["failed"]:
            self.fail("ingest_connectome", f, err)
        if not res["built"]:
            return StageResult("ingest_connectome", "failed", detail="no connectome file could be read")
        self.wd.mark_done("ingest_connectome", key, {"outputs": [str(store)], "failed": res["failed"]})
        return StageResult("ingest_connectome", outputs=[str(store)], detail=f"{len(res['sources'])} source(s)")

    def export_nwb(self, params: dict) -> StageResult:
        from activity.store import open_activity
        from pipeline.export import nwb_paths

        store = self.wd.root / "activity.zarr"
        ds = open_activity(store)
        export = {k: params[k] for k in ("grid", "sex")}
        if params["metadata"]:
            from pipeline.export import load_metadata_table

            table_path = Path(params["metadata"])
            table_path = table_path if table_path.is_absolute() else self.config.base / table_path
            export["dataset_metadata"] = load_metadata_table(table_path)
        todo, outputs, cached = [], [], 0
        paths = nwb_paths(self.wd.root / "nwb", ds.worm.values.tolist())
        for worm, sha in zip(ds.worm.values.tolist(), ds.source_sha256.values.tolist()):
            key = digest("nwb", worm, sha, ds.attrs["homogenize_params"], export, params["validate"], self.version)
            path = paths[worm]
            if self.wd.done("export_nwb", key):
                cached += 1
                outputs.append(str(path))
            else:
                todo.append((worm, key, path))
        futures = [self.client.submit(export_task, str(store), w, str(p), export, params["validate"],
                                      key=f"nwb-{k}", pure=False) for w, k, p in todo]
        missing = []
        for (worm, key, path), res in zip(todo, self._gather("export NWB", futures)):
            if "error" in res:
                self.fail("export_nwb", worm, res["error"])
            elif res["problems"]:
                self.fail("export_nwb", worm, "; ".join(res["problems"]))
            else:
                outputs.append(str(path))
                missing += res.get("missing", [])
                self.wd.mark_done("export_nwb", key, {"outputs": [str(path)], "worm": worm,
                                                      "missing": res.get("missing", [])})
        for line in missing:
            log.warning("not ready for DANDI: %s", line)
        status = "cached" if not todo else "done"
        ready = "" if not missing else (f"; {len({m.split(':')[0] for m in missing})} not ready for DANDI "
                                        "(age unknown: set stages.export_nwb.metadata)")
        return StageResult("export_nwb", status, outputs=outputs,
                           detail=f"{len(outputs)} file(s), {cached} cached{ready}")

    def tsnet(self, params: dict) -> StageResult:
        from pipeline.tsnet import tsnet_figures, tsnet_on_store

        out = self.wd.root / "analysis"
        key, hit = self._cached("tsnet", self.store_key, params)
        if hit:
            return hit
        tick = self.progress("tsnet", 1)
        result = tsnet_on_store(self.wd.root / "activity.zarr", out, constructions=tuple(params["constructions"]),
                                variable=params["variable"], max_gap=params["max_gap"], client=self.client,
                                progress=False)
        figures = tsnet_figures(result, out / "figures", tuple(params["constructions"]))
        tick()
        return self._finish("tsnet", key, [str(out / "tsnet.zarr"), *map(str, figures)])

    def hmmglm(self, params: dict) -> StageResult:
        from pipeline.hmmglm import hmmglm_figures

        out = self.wd.root / "analysis"
        connectome = self.wd.root / "connectome.zarr"
        use_connectome = params["connectome"] and connectome.exists()
        key, hit = self._cached("hmmglm", self.store_key,
                                self.keys.get("ingest_connectome") if use_connectome else None, params)
        if hit:
            return hit
        if params["connectome_prior"] and not use_connectome:
            raise WormflowError("stages.hmmglm.connectome_prior needs the connectome store (ingest_connectome)")
        # one fit over every worm: a single task on the cluster, whose worker threads share it
        future = self.client.submit(hmmglm_task, str(self.wd.root / "activity.zarr"), str(out),
                                    str(connectome) if use_connectome else None, params, pure=False)
        summary = self._gather("hmmglm", [future])[0]
        if "error" in summary:
            raise WormflowError(summary["error"])
        from activity.store import open_activity
        from pipeline.storage import open_result

        figures = hmmglm_figures(open_result(out / "hmmglm.zarr"), open_activity(self.wd.root / "activity.zarr"),
                                 out / "figures")
        detail = ""
        if "behaviour" in summary:
            detail = f"states vs reversals: balanced accuracy {summary['behaviour']['held_out_mean']:.2f} (held out)"
        return self._finish("hmmglm", key, [str(out / "hmmglm.zarr"), *map(str, figures)], detail)

    def ntf(self, params: dict) -> StageResult:
        from activity.store import open_activity
        from pipeline.ntf import ntf_figures, ntf_on_store

        out = self.wd.root / "analysis"
        key, hit = self._cached("ntf", self.store_key, params)
        if hit:
            return hit
        tick = self.progress("ntf", 1)
        # the affinity tensor is built on the cluster, one worm per task; the fit runs here
        result, _, _ = ntf_on_store(self.wd.root / "activity.zarr", out, rank=params["rank"] or None,
                                    bin_s=params["bin_s"], min_worms=params["min_worms"],
                                    n_restarts=params["restarts"], seed=params["seed"], client=self.client,
                                    progress=False)
        figures = ntf_figures(result, open_activity(self.wd.root / "activity.zarr"), out / "figures")
        tick()
        detail = f"rank {result.attrs['rank']}, error {result.attrs['error']:.3f}"
        return self._finish("ntf", key, [str(out / "ntf.zarr"), *map(str, figures)], detail)

    def langevin(self, params: dict) -> StageResult:
        out = self.wd.root / "analysis"
        key, hit = self._cached("langevin", self.store_key, params)
        if hit:
            return hit
        # one fit: a single task on the cluster, as the HMM-GLM's
        future = self.client.submit(langevin_task, str(self.wd.root / "activity.zarr"), str(out), params, pure=False)
        summary = self._gather("langevin", [future])[0]
        if "error" in summary:
            raise WormflowError(summary["error"])
        from pipeline.langevin import langevin_figures
        from pipeline.storage import open_result

        figures = langevin_figures(open_result(out / "langevin.zarr"), out / "figures")
        m = summary["metrics"]
        detail = ("held-out R² " + ", ".join(f"{k} {v['heldout_r2']:.3f}" for k, v in m.items())
                  + "; velocity R² " + ", ".join(f"{k} {v['velocity_r2']:.3f}" for k, v in m.items()))
        return self._finish("langevin", key, [str(out / "langevin.zarr"), *map(str, figures)], detail)

    def publish(self, params: dict) -> StageResult:
        from pipeline.publish import publish

        to = Path(params["to"])
        to = to if to.is_absolute() else self.wd.root / to
        key, hit = self._cached("publish", self.store_key, dict(self.keys), params)
        if hit:
            return hit
        tick = self.progress("publish", 1)
        cols = publish(self.wd.root, to, repo_id=params["repo_id"] or None, private=params["private"])
        tick()
        return self._finish("publish", key, [str(c.folder) for c in cols],
                            ", ".join(f"{c.name} ({sum(c.rows.values())} rows)" for c in cols))


def _start_log(wd: Workdir) -> tuple[Path, logging.Handler]:
    logs = wd.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("wormflow")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return path, handler


def run_pipeline(config: Config, workdir: str | Path, *, scheduler: str | None = None, workers: int | None = None,
                 mirror: str | Path | None = None, wait: bool = False,
                 progress: Callable[[str, int], Callable[[], None]] | None = None) -> RunResult:
    """Run every enabled stage of ``config`` in ``workdir``; see the module doc."""
    wd = Workdir(workdir)
    wd.root.mkdir(parents=True, exist_ok=True)
    with wd.lock(wait=wait):
        log_file, handler = _start_log(wd)
        result = RunResult(wd.root, log_file=log_file)
        with open_client(resolve(config.cluster, scheduler, workers)) as client:
            result.scheduler = client.scheduler.address
            result.workers = len(client.scheduler_info()["workers"])
            log.info("run of %s in %s on %s (%d workers), wormflow %s", config.origin, wd.root,
                     result.scheduler, result.workers, wormflow_version())
            log.info("configuration: %s", config.to_json())
            runner = Runner(config, wd, client, mirror_dir(mirror), progress)
            for name, spec in STAGE_REGISTRY.items():          # run order; the report comes last, below
                if name not in config.stages or name == "report":
                    continue
                if spec.reads_activity and not (wd.root / "activity.zarr").exists():
                    result.stages.append(StageResult(name, "skipped", detail="no activity store"))
                    continue
                t0 = time.perf_counter()
                try:
                    stage = getattr(runner, name)(config.stages[name])
                except Exception as exc:  # a stage's crash must not lose the others
                    if not isinstance(exc, WormflowError):
                        log.exception("stage %s crashed", name)
                    runner.fail(name, "", failure_message(name, exc))
                    stage = StageResult(name, "failed", detail=failure_message(name, exc))
                stage.seconds = time.perf_counter() - t0
                log.info("stage %s: %s in %.1f s %s", name, stage.status, stage.seconds, stage.detail)
                result.stages.append(stage)
            result.failures = runner.failures
        write_json_atomic(wd.root / "failures.json", result.failures)
        if "report" in config.stages:
            from pipeline.report import write_report

            t0 = time.perf_counter()
            path = write_report(wd.root, config, result)
            result.stages.append(StageResult("report", outputs=[str(path)], seconds=time.perf_counter() - t0))
        logging.getLogger("wormflow").removeHandler(handler)
        handler.close()
    return result
