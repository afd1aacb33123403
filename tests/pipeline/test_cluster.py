"""One cluster configuration for every command: --scheduler, DASK_SCHEDULER_ADDRESS, the
[cluster] table (local, address, slurm), a local TLS cluster otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cluster import ClusterSpec, cluster_spec, resolve, slurm_cluster
from pipeline.config import ConfigError, parse

BIN = Path(sys.executable).parent


def test_the_cluster_table_is_validated_and_the_address_wins_in_order(monkeypatch):
    cfg = parse({"cluster": {"kind": "slurm", "queue": "short", "cores": 4, "jobs": 2}}, origin="c.toml")
    assert cfg.cluster == ClusterSpec(kind="slurm", queue="short", cores=4, jobs=2)
    with pytest.raises(ConfigError, match=r"c.toml: cluster.nodes: unknown key"):
        parse({"cluster": {"nodes": 3}}, origin="c.toml")
    with pytest.raises(ConfigError, match=r"c.toml: cluster.kind: must be one of 'local', 'address', 'slurm'"):
        parse({"cluster": {"kind": "kubernetes"}}, origin="c.toml")
    with pytest.raises(ConfigError, match=r"cluster.address: kind = 'address' needs"):
        parse({"cluster": {"kind": "address"}}, origin="c.toml")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    assert resolve(cfg.cluster).kind == "slurm"
    assert resolve(None, workers=3) == ClusterSpec(workers=3)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.9:8786")
    assert resolve(cfg.cluster) == ClusterSpec(kind="address", address="tcp://10.0.0.9:8786")
    assert resolve(cfg.cluster, scheduler="tcp://127.0.0.1:1").address == "tcp://127.0.0.1:1"


def test_the_slurm_job_script_says_what_the_table_asks():
    spec = cluster_spec({"kind": "slurm", "queue": "short", "cores": 4, "memory": "16GB", "walltime": "00:30:00",
                         "job_extra_directives": ["--account=wormlab"], "scheduler_host": "127.0.0.1"})
    cluster = slurm_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4", "#SBATCH -t 00:30:00",
                 "#SBATCH --account=wormlab"):
        assert line in script, script
    assert "--nworkers 4" in script and "--memory-limit 3.73GiB" in script     # 16 GB over 4 workers
    assert "tcp://127.0.0.1:" in script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_scheduler_runs_the_tasks_of_analyze_commands(mirror_store, tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(3)
    procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(1, timeout=60)
        store = str(mirror_store[0])
        tsnet = subprocess.run([str(BIN / "wormflow"), "analyze", "tsnet", "--store", store, "--out",
                                str(tmp_path / "t"), "--construction", "horizontal", "--scheduler", address],
                               capture_output=True, text=True, timeout=600)
        assert tsnet.returncode == 0, tsnet.stderr[-2000:]
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
        hmm = subprocess.run([str(BIN / "wormflow"), "analyze", "hmmglm", "--store", store, "--out",
                              str(tmp_path / "h"), "--states", "2", "--max-neurons", "12", "--restarts", "1"],
                             capture_output=True, text=True, timeout=600, env=env)
        assert hmm.returncode == 0, hmm.stderr[-2000:]
        with Client(address, timeout=30) as c:
            prefixes = set(c.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
        assert "summary_task" in prefixes                        # the HMM-GLM fit ran as a task there
        assert len(prefixes - {"summary_task"}) >= 1             # and so did tsnet's per-trace tasks
        assert (tmp_path / "t" / "tsnet.zarr").exists() and (tmp_path / "h" / "hmmglm.zarr").exists()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_the_local_cluster_serves_nothing_over_plain_http():
    """distributed opens an HTTP port on the scheduler and each worker whatever the dashboard
    setting; wormflow's local cluster gives them no routes, so nothing is shown there."""
    import urllib.error
    import urllib.request

    from distributed import Client

    from pipeline.cluster import local_cluster

    cluster, security = local_cluster(1)
    with cluster, Client(cluster, security=security) as client:
        ports = [client.scheduler_info()["services"]["dashboard"],
                 *client.run(lambda dask_worker: dask_worker.http_server.port).values()]
        assert len(ports) == 2
        for port in ports:
            for path in ("/status", "/health", "/metrics", "/info/main/workers.html", "/json/counts.json"):
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
                assert err.value.code == 404
        assert client.submit(sum, [40, 2]).result() == 42
