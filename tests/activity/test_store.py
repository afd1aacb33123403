import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
import zarr

from activity import open_activity
from activity.homogenize import HomogenizeParams, homogenize
from activity.raw import RawRecording, Series
from activity.store import StoreWriter
from connectome import neuron_names
from wormflow.core import repository
from wormflow.core.errors import StoreError


def _rec(worm_id, n_frames, labels, seed=0, behavior=True):
    rng = np.random.default_rng(seed)
    t = 1000.0 + np.arange(n_frames) * 0.6
    beh = {"velocity": Series(t, rng.normal(size=n_frames))} if behavior else {}
    return RawRecording(f"{worm_id}.h5", worm_id, "Fix2024", "fixture", t,
                        rng.normal(size=(n_frames, len(labels))), labels, behavior=beh,
                        signal="synthetic fixture", units="a.u.")


def _write(store, recs, params=HomogenizeParams()):
    with StoreWriter(store, params) as w:
        for i, r in enumerate(recs):
            w.append(homogenize(r, params), f"{i:064x}" if len(r.worm_id) < 3 else r.worm_id.ljust(64, "0"),
                     f"Fix2024/{r.worm_id}")


def test_round_trip_equals_homogenized_values(tmp_path):
    store = tmp_path / "a.zarr"
    recs = [_rec("w1", 300, ["AVAL", "", "RIS?"], 1), _rec("w2", 500, ["AVAR", "AVAL"], 2)]
    _write(store, recs)
    ds = open_activity(store)
    assert ds.sizes["worm"] == 2 and tuple(ds["neuron"].values) == neuron_names()
    assert ds["calcium"].dtype == np.float32 and ds["calcium"].chunks[0] == (2,)
    assert open_activity(store, worms_per_chunk=1)["calcium"].chunks[0] == (1, 1)
    assert ds["dataset"].data.__class__ is np.ndarray                     # per-worm coords are eager
    for w, r in enumerate(recs):
        ref = homogenize(r)
        n = ref.sizes["time"]
        np.testing.assert_array_equal(ds["calcium"].isel(worm=w, time=slice(0, n)).values, ref["calcium"].values)
        assert np.isnan(ds["calcium"].isel(worm=w, time=slice(n, None)).values).all()
        np.testing.assert_array_equal(ds["native_time"].isel(worm=w).values[: r.n_frames], ref["native_time"].values)
        np.testing.assert_array_equal(ds["roi_label"].isel(worm=w).values[: r.n_rois], r.roi_labels)
    assert ds.attrs["dt"] == 0.5 and ds.attrs["wormflow_version"]
    assert list(ds["dataset"].values) == ["Fix2024", "Fix2024"]
    assert ds.sizes["time"] == homogenize(recs[1]).sizes["time"]     # trimmed to the longest worm


def test_appending_a_longer_worm_grows_time_without_losing_earlier_worms(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    before = open_activity(store)["calcium"].isel(worm=0).values.copy()
    _write(store, [_rec("w2", 9000, ["AVAL"], 2, behavior=False)])     # > one 4096 block on the grid
    ds = open_activity(store)
    assert ds.sizes["worm"] == 2 and ds.sizes["time"] == homogenize(_rec("w2", 9000, ["AVAL"], 2)).sizes["time"]
    np.testing.assert_array_equal(ds["calcium"].isel(worm=0, time=slice(0, before.shape[0])).values, before)
    assert np.isnan(ds["behavior_velocity"].isel(worm=1).values).all()       # worm 2 had no velocity


def test_new_behaviour_variable_is_backfilled_for_earlier_worms(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1, behavior=False)])
    _write(store, [_rec("w2", 100, ["AVAL"], 2)])
    v = open_activity(store)["behavior_velocity"].values
    assert np.isnan(v[0]).all() and np.isfinite(v[1, :50]).all()


def test_a_failed_ingest_leaves_the_previous_store_valid(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    with pytest.raises(RuntimeError):
        with StoreWriter(store, HomogenizeParams()) as w:
            w.append(homogenize(_rec("w2", 100, ["AVAR"], 2)), "b" * 64, "Fix2024/w2")
            raise RuntimeError("disk full")
    ds = open_activity(store)
    assert list(ds["worm"].values) == ["Fix2024/w1"]


def test_a_killed_ingest_leaves_the_previous_store_valid(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    script = textwrap.dedent(f"""
        import os, numpy as np
        from activity.homogenize import homogenize, HomogenizeParams
        from activity.raw import RawRecording
        from activity.store import StoreWriter
        t = np.arange(100) * 0.6
        rec = RawRecording("k.h5", "k", "Fix2024", "f", t, np.ones((100, 1)), ["AVAR"], signal="synthetic fixture", units="a.u.")
        with StoreWriter({str(store)!r}, HomogenizeParams()) as w:
            w.append(homogenize(rec), "c" * 64, "Fix2024/k")
            os.kill(os.getpid(), 9)          # SIGKILL in the middle of the transaction
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1"]
    _write(store, [_rec("w3", 100, ["AVAL"], 3)])                    # the next writer goes on
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1", "Fix2024/w3"]


def test_a_second_writer_is_refused_while_one_holds_the_store(tmp_path):
    store = tmp_path / "a.zarr"
    with StoreWriter(store, HomogenizeParams()):
        with pytest.raises(StoreError, match="another wormflow process is writing to this store"):
            with StoreWriter(store, HomogenizeParams()):
                pass


def test_appending_with_other_parameters_is_refused(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    with pytest.raises(StoreError, match="store was built with parameters"):
        _write(store, [_rec("w2", 100, ["AVAL"], 2)], HomogenizeParams(dt=0.25))


def test_a_worm_that_conflicts_with_the_store_fails_the_transaction_and_changes_nothing(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    bad = _rec("w2", 100, ["AVAR"], 2, behavior=False)
    bad.behavior = {"velocity": Series(bad.timestamps, np.ones((100, 3)))}    # stored as (worm, time)
    with pytest.raises(StoreError, match="behavior_velocity is stored with dims"):
        _write(store, [bad])
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1"]


def test_a_store_missing_one_of_its_facts_is_refused_naming_the_store_and_the_fact(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"])])
    repo = repository.open_repository(store)
    session = repo.writable_session("main")
    group = zarr.open_group(store=session.store, mode="r+")
    group.attrs.put({k: v for k, v in group.attrs.items() if k != "dt"})
    session.commit("drop dt")
    with pytest.raises(StoreError, match=rf"{store}.*'dt'"):
        open_activity(store)


def test_store_fact_names_the_fact_a_dataset_lacks(tmp_path):
    from activity.store import store_fact

    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"])])
    ds = open_activity(store)
    assert store_fact(ds, "dt") == 0.5
    del ds.attrs["dt"]
    with pytest.raises(StoreError, match=rf"{store}.*'dt'"):
        store_fact(ds, "dt")


def test_signal_units_and_gap_counts_are_per_worm_facts_of_the_store(tmp_path):
    store = tmp_path / "a.zarr"
    t = np.arange(0, 60, 0.5)
    t = t[(t < 20) | (t > 30)]                           # 10 s the lab did not record
    gappy = RawRecording("g.h5", "g", "Fix2024", "fixture", 100 + t, np.ones((t.size, 1)), ["AVAL"],
                         signal="dF/F0", units="1")
    _write(store, [_rec("w1", 100, ["AVAL"]), gappy])
    ds = open_activity(store)
    assert ds["signal"].values.tolist() == ["synthetic fixture", "dF/F0"]
    assert ds["units"].values.tolist() == ["a.u.", "1"]
    assert "differs between worms" in ds["calcium"].attrs["units"]
    assert ds["n_grid_dropped"].values.tolist() == [0, 19]      # 20.5 ... 29.5 s
    assert not ds["valid"].sel(worm="Fix2024/g").sel(time=slice(20.25, 29.75)).values.any()
    assert np.isnan(ds["calcium"].sel(worm="Fix2024/g", neuron="AVAL").sel(time=slice(20.25, 29.75))).all()
    one = open_activity(store).isel(worm=[0])
    assert one["signal"].values.tolist() == ["synthetic fixture"]


def test_many_worms_exact_shapes_and_one_chunk_per_worm(tmp_path):
    store = tmp_path / "a.zarr"
    recs = [_rec(f"w{i:02d}", 60 + i, ["AVAL", "AVAR"][: 1 + i % 2], i) for i in range(7)]
    _write(store, recs[:4])
    _write(store, recs[4:])
    ds = open_activity(store)
    assert ds.sizes["worm"] == 7 and ds.attrs["n_worms"] == 7
    assert ds.chunks["worm"] == (7,)                          # consistent across variables
    assert open_activity(store, worms_per_chunk=3).chunks["worm"] == (3, 3, 1)
    assert list(ds["worm"].values) == [f"Fix2024/{r.worm_id}" for r in recs]
    for i, r in enumerate(recs):
        ref = homogenize(r)
        np.testing.assert_array_equal(ds["roi_label"].values[i, : r.n_rois], r.roi_labels)
        np.testing.assert_allclose(ds["calcium"].values[i, : ref.sizes["time"]], ref["calcium"].values)
        assert int(ds["n_frames"].values[i]) == r.n_frames
    # plain zarr through Icechunk sees exactly the dims open_activity presents: no padding
    raw = xr.open_zarr(repository.open_repository(store).readonly_session("main").store, zarr_format=3,
                       consolidated=False)
    assert dict(raw.sizes) == dict(ds.sizes)
    # selections on per-worm coordinates work (they are numpy, not dask)
    assert ds.where(ds.dataset == "Fix2024", drop=True).sizes["worm"] == 7
    assert set(dict(ds.groupby("dataset").groups)) == {"Fix2024"}
    calcium = zarr.open_group(store=repository.open_repository(store).readonly_session("main").store, mode="r")["calcium"]
    assert calcium.shards == (1, 4096, 320) and calcium.chunks == (1, 2048, 16)


def test_each_ingest_is_one_commit_that_names_its_files_and_earlier_ones_stay_readable(tmp_path, flavell_files):
    from pipeline.ingest import ingest_activity

    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    first = open_activity(store).attrs["store_snapshot"]
    _write(store, [_rec("w2", 100, ["AVAR"], 2)])
    log = repository.history(store)
    assert log[0].metadata["worms_added"] == ["Fix2024/w2"] and log[1].metadata["worms_added"] == ["Fix2024/w1"]
    assert list(open_activity(store, version=first)["worm"].values) == ["Fix2024/w1"]
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1", "Fix2024/w2"]
    assert open_activity(store).attrs["store_snapshot"] == log[0].id
    with pytest.raises(StoreError, match="no tag, snapshot or branch named 'nope'"):
        open_activity(store, version="nope")
    report = ingest_activity([flavell_files[0]], store)
    assert len(report.added) == 1
    newest = repository.history(store)[0]
    assert flavell_files[0].name in newest.message and "wormflow" in newest.message
    assert newest.metadata["inputs"][0]["sha256"] == open_activity(store)["source_sha256"].values[-1]


def test_stores_of_the_earlier_layout_and_foreign_folders_are_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old.zarr"
    old.mkdir()
    (old / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                               "attributes": {"wormflow_store": "wormflow-activity/1"}}))
    with pytest.raises(StoreError, match="earlier plain-Zarr layout.*wormflow ingest activity"):
        open_activity(old)
    with pytest.raises(StoreError, match="earlier plain-Zarr layout"):
        _write(old, [_rec("w1", 100, ["AVAL"], 1)])
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not a wormflow store"):
        open_activity(other)
    with pytest.raises(StoreError, match="no store here"):
        open_activity(tmp_path / "absent.zarr")


@pytest.mark.parametrize("url, reason", [
    ("http://example.org/a.zarr", "not http://"),
    ("s3:/bucket/a", "not a valid s3 URL"),
    ("s3://ab/a", "not a valid S3 bucket name"),
    ("s3://bucket", "give the store a prefix"),
    ("ftp://host/x", "not ftp://"),
])
def test_urls_that_are_not_supported_are_refused_and_nothing_is_written_locally(tmp_path, monkeypatch, url, reason):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=reason):
        _write(url, [_rec("w1", 100, ["AVAL"], 1)])
    assert list(tmp_path.iterdir()) == []               # no folder named "s3:" or "http:"


def test_a_reader_keeps_its_snapshot_while_a_writer_commits(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    reader = open_activity(store)
    _write(store, [_rec("w2", 9000, ["AVAR"], 2)])           # grows time and worm
    assert reader.sizes["worm"] == 1
    np.testing.assert_array_equal(reader["calcium"].values, open_activity(store)["calcium"].isel(
        worm=[0], time=slice(0, reader.sizes["time"])).values)


def test_sigkill_at_random_points_of_an_ingest_leaves_the_store_before_or_after(tmp_path, flavell_files):
    # bench/faults.py runs 50 such points, local and on S3; here 6, drawn fresh each run
    import signal
    import time

    from pipeline.ingest import ingest_activity

    files = [str(f) for f in flavell_files[2:5]]
    def child(store):
        script = (f"from pipeline.ingest import ingest_activity\nprint('ready', flush=True)\n"
                  f"ingest_activity({files[1:]!r}, {str(store)!r})\n")
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"           # imports done: the ingest starts
        return proc

    ref = tmp_path / "ref.zarr"
    ingest_activity(files[:1], ref)
    t0 = time.perf_counter()
    child(ref).wait()                                              # uninterrupted: its span
    span = time.perf_counter() - t0
    want = open_activity(ref).load()
    rng = np.random.default_rng()
    for k in range(6):
        store = tmp_path / f"k{k}.zarr"
        ingest_activity(files[:1], store)
        proc = child(store)
        time.sleep(rng.uniform(0, span))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = open_activity(store)
        assert got.sizes["worm"] in (1, 3)                           # before or after, nothing between
        n = got.sizes["worm"]
        np.testing.assert_array_equal(got.roi_calcium.values[:, : want.sizes["time"]][:n],
                                      want.roi_calcium.values[:n, : got.sizes["time"]])
        ingest_activity(files[1:], store)                            # the rerun completes it
        xr.testing.assert_identical(open_activity(store).load().drop_attrs(), want.drop_attrs())


def test_an_ingest_written_on_dask_workers_equals_a_serial_one_and_a_bad_file_fails_alone(tmp_path, flavell_files):
    from distributed import Client, LocalCluster

    from pipeline.ingest import ingest_activity

    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not an HDF5 file")
    files = [*flavell_files[2:5], bad]
    serial = ingest_activity(files, tmp_path / "serial.zarr")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        parallel = ingest_activity(files, tmp_path / "parallel.zarr", client=client)
    assert parallel.added == serial.added and len(parallel.added) == 3
    assert [f for f, _ in parallel.failed] == [str(bad)] and "broken.h5" in parallel.failed[0][1]
    xr.testing.assert_identical(open_activity(tmp_path / "parallel.zarr").load().drop_attrs(),
                                open_activity(tmp_path / "serial.zarr").load().drop_attrs())
    log = repository.history(tmp_path / "parallel.zarr")
    assert log[0].metadata["worms_added"] == parallel.added          # main moved once, to the whole ingest
    assert not [b for b in repository.open_repository(tmp_path / "parallel.zarr").list_branches()
                if b.startswith(repository.PRIVATE_PREFIX)]          # the private branch is gone
