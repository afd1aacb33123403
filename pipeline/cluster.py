"""The Dask cluster every pipeline stage computes on."""

from __future__ import annotations

import contextlib
import os
import sys


def local_cluster(workers: int | None = None, *, threads_per_worker: int = 1, memory_limit: str = "auto",
                  silence_logs: int = 40):
    """A local distributed cluster only this process can use: mutual TLS on 127.0.0.1 with a
    certificate made for it (``Security.temporary()``), so another local process, which
    lacks the key, can neither submit tasks nor read results. Returns (cluster, security)."""
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    n = workers or os.cpu_count() or 1
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
