"""The activity store on object storage: a real S3 server (moto's, on 127.0.0.1) takes the
same ingest, append, open, query, log and concurrent writers as a local folder."""

import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import pytest
from click.testing import CliRunner

from activity import open_activity
from pipeline.cli import main
from pipeline.ingest import ingest_activity
from wormflow.core import repository
from wormflow.core.errors import StoreError


@pytest.fixture
def s3(s3_server, monkeypatch):
    endpoint, bucket, env = s3_server
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return f"s3://{bucket}/{uuid.uuid4().hex}/activity.zarr", env


def test_ingest_append_open_query_and_log_on_s3(s3, flavell_files, tmp_path):
    url, _ = s3
    first = ingest_activity(flavell_files[:2], url)
    assert len(first.added) == 2 and not first.failed
    res = CliRunner().invoke(main, ["ingest", "activity", str(flavell_files[2]), "--store", url])
    assert res.exit_code == 0, res.output
    ds = open_activity(url)
    assert ds.sizes["worm"] == 3 and ds.encoding["wormflow_store"] == url
    aval = ds.calcium.sel(neuron="AVAL").values
    assert aval.shape == (3, ds.sizes["time"])
    assert np.isfinite(ds.roi_calcium.values).any()
    assert ds.where(ds.dataset == "Dag2023", drop=True).sizes["worm"] == 3
    log = repository.history(url)
    assert [len(c.metadata.get("worms_added", [])) for c in log[:2]] == [1, 2]
    assert flavell_files[2].name in log[0].message
    before = open_activity(url, version=log[1].id)
    assert before.sizes["worm"] == 2
    res = CliRunner().invoke(main, ["log", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "ingest 1 worm(s)" in res.output
    # the same values as a local store of the same files
    local = tmp_path / "a.zarr"
    ingest_activity(flavell_files[:3], local)
    np.testing.assert_array_equal(open_activity(local).calcium.values, ds.calcium.values)


def test_concurrent_writers_on_s3_lose_no_worm(s3, flavell_files):
    url, _ = s3
    ingest_activity(flavell_files[:1], url)
    outcome = {}

    def write(i):
        try:
            outcome[i] = ingest_activity([flavell_files[i]], url)
        except StoreError as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = open_activity(url).worm.values.tolist()
    committed = [o.added[0] for o in outcome.values() if not isinstance(o, StoreError)]
    for o in outcome.values():
        if isinstance(o, StoreError):                     # refused clearly, nothing of it written
            assert "nothing of this write was committed" in str(o)
    assert committed and sorted(stored[1:]) == sorted(committed) and len(stored) == 1 + len(committed)
    ds = open_activity(url)
    for w in ds.worm.values:                               # every stored worm is whole
        n = int(ds.n_rois.sel(worm=w))
        assert np.isfinite(ds.roi_calcium.sel(worm=w).values[:, :n]).any(axis=0).all()   # every ROI has data


def test_a_killed_ingest_on_s3_commits_nothing_and_a_rerun_completes(s3, flavell_files):
    url, env = s3
    ingest_activity(flavell_files[:1], url)
    script = textwrap.dedent(f"""
        import os
        from pipeline.ingest import ingest_activity
        import activity.store as store
        real = store.StoreWriter.append
        def append(self, *a, **k):
            real(self, *a, **k)
            os.kill(os.getpid(), 9)          # killed with a worm written but not committed
        store.StoreWriter.append = append
        ingest_activity([{str(flavell_files[1])!r}], {url!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, env={**__import__("os").environ, **env})
    assert proc.returncode == -9, proc.stderr
    assert open_activity(url).sizes["worm"] == 1
    again = ingest_activity(flavell_files[:2], url)
    assert len(again.added) == 1 and len(again.skipped) == 1
    assert open_activity(url).worm.values.tolist()[1] == again.added[0]
