"""The Dask cluster every command computes on, and how a user says which.

One resolution for ``wormflow run`` and every ``wormflow analyze``: ``--scheduler ADDR``,
else ``DASK_SCHEDULER_ADDRESS``, else the configuration's ``[cluster]`` table, else a local
cluster. ``[cluster]``::

    [cluster]
    kind = "local"                 # local | address | slurm
    workers = 4                    # local: processes (default: the CPU count)
    threads_per_worker = 1
    memory_limit = "auto"
    address = "tcp://host:8786"    # address: a running scheduler
    queue = "normal"               # slurm (dask-jobqueue's SLURMCluster): partition,
    cores = 8                      #   cores, memory and walltime of one job,
    memory = "32GB"
    walltime = "02:00:00"
    jobs = 4                       #   how many jobs to start,
    job_extra_directives = ["--account=mylab"]   # and extra #SBATCH lines
    scheduler_host = "10.1.2.3"    #   where the nodes reach the scheduler (default: dask-jobqueue's)
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field, fields, replace

from wormflow.core.errors import WormflowError

KINDS = ("local", "address", "slurm")


@dataclass(frozen=True)
class ClusterSpec:
    kind: str = "local"
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    address: str = ""
    queue: str = ""
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    jobs: int = 1
    job_extra_directives: list = field(default_factory=list)
    scheduler_host: str = ""          # slurm: the address the compute nodes reach this scheduler at


_TYPES = {"scheduler_host": str, "kind": str, "workers": int, "threads_per_worker": int, "memory_limit": str, "address": str, "queue": str,
          "cores": int, "memory": str, "walltime": str, "jobs": int, "job_extra_directives": list}


def cluster_spec(table: dict | None, origin: str = "<config>") -> ClusterSpec:
    """The ``[cluster]`` table as a :class:`ClusterSpec`; errors name ``origin`` and the key."""
    if table is None:
        return ClusterSpec()
    if not isinstance(table, dict):
        raise WormflowError(f"{origin}: cluster: must be a table")
    known = [f.name for f in fields(ClusterSpec)]
    for key, value in table.items():
        if key not in known:
            raise WormflowError(f"{origin}: cluster.{key}: unknown key (known: {', '.join(known)})")
        kind = _TYPES[key]
        if isinstance(value, bool) or not isinstance(value, kind) or (kind is int and value < 1):
            what = {int: "a positive integer", str: "a string", list: "a list of strings"}[kind]
            raise WormflowError(f"{origin}: cluster.{key}: must be {what}, got {value!r}")
    spec = ClusterSpec(**table)
    if spec.kind not in KINDS:
        raise WormflowError(f"{origin}: cluster.kind: must be one of {', '.join(map(repr, KINDS))}, got {spec.kind!r}")
    if spec.kind == "address" and not spec.address:
        raise WormflowError(f"{origin}: cluster.address: kind = 'address' needs the scheduler's address")
    return spec


def resolve(spec: ClusterSpec | None = None, scheduler: str | None = None, workers: int | None = None) -> ClusterSpec:
    """Which cluster to use: ``scheduler``, else DASK_SCHEDULER_ADDRESS, else ``spec``, else local."""
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        return ClusterSpec(kind="address", address=address)
    spec = spec or ClusterSpec()
    if workers and spec.kind == "local":
        spec = replace(spec, workers=workers)
    return spec


def slurm_cluster(spec: ClusterSpec):
    """dask-jobqueue's SLURMCluster for ``spec`` (no job is submitted until it is scaled)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise WormflowError("cluster.kind = 'slurm' needs dask-jobqueue: pip install dask-jobqueue") from exc
    return SLURMCluster(queue=spec.queue or None, cores=spec.cores, processes=spec.cores, memory=spec.memory,
                        walltime=spec.walltime, job_extra_directives=list(spec.job_extra_directives),
                        scheduler_options={"dashboard_address": None,
                                           **({"host": spec.scheduler_host} if spec.scheduler_host else {})})


@contextlib.contextmanager
def open_client(spec: ClusterSpec):
    """A distributed Client on the cluster ``spec`` names; what it started is closed on exit."""
    from distributed import Client

    if spec.kind == "address":
        with Client(spec.address) as client:
            yield client
        return
    if spec.kind == "slurm":
        cluster = slurm_cluster(spec)
        cluster.scale(jobs=spec.jobs)
        with cluster, Client(cluster) as client:
            yield client
        return
    cluster, security = local_cluster(spec.workers, threads_per_worker=spec.threads_per_worker,
                                      memory_limit=spec.memory_limit)
    with cluster, Client(cluster, security=security) as client:
        yield client


def local_cluster(workers: int | None = None, *, threads_per_worker: int = 1, memory_limit: str = "auto",
                  silence_logs: int = 50):
    """A local distributed cluster only this process can use: mutual TLS on 127.0.0.1 with a
    certificate made for it (``Security.temporary()``), so another local process, which
    lacks the key, can neither submit tasks nor read results. Returns (cluster, security)."""
    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    n = workers or os.cpu_count() or 1
    # logs below CRITICAL stay silent: a task's error reaches the caller as its exception, and
    # workers shutting down with the driver otherwise print heartbeat tracebacks to the user
    # distributed always opens an HTTP server on the scheduler and on each worker, even with
    # dashboard_address=None; with no routes it serves nothing (every path is 404), so the
    # cluster shows no task, worker or data over plain HTTP. Nannies hand this config on to
    # the worker processes they start.
    with dask.config.set({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                               memory_limit=memory_limit, dashboard_address=None, silence_logs=silence_logs,
                               host="127.0.0.1", security=security)
    return cluster, security


@contextlib.contextmanager
def dask_client(workers: int | None = None, *, threads_per_worker: int = 1, memory_limit: str = "auto"):
    """A local distributed cluster of ``workers`` processes (default: the CPU count), closed on exit.

    Processes, not threads: the graph constructions hold the GIL in Python code. The
    cluster is reachable only with its own temporary certificate (:func:`local_cluster`).
    """
    from distributed import Client

    cluster, security = local_cluster(workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit)
    with cluster:
        with Client(cluster, security=security) as client:
            yield client


def compute_with_progress(collection, *, show: bool = True):
    """Compute a dask-backed collection on the current client, with a progress bar on a terminal.

    ``dask.diagnostics.ProgressBar`` prints nothing under a distributed client, so this uses
    ``distributed.progress`` on the persisted collection.
    """
    from distributed import progress

    persisted = collection.persist()
    if show and sys.stderr.isatty():
        progress(persisted)
        print(file=sys.stderr)
    return persisted.compute()
