"""The Dask cluster every pipeline stage computes on."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def dask_client(workers: int | None = None, *, threads_per_worker: int = 1, memory_limit: str = "auto"):
    """A local distributed cluster of ``workers`` processes (default: the CPU count), closed on exit.

    Processes, not threads: the graph constructions hold the GIL in Python code.
    """
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                      memory_limit=memory_limit, dashboard_address=None, silence_logs=40) as cluster:
        with Client(cluster) as client:
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
