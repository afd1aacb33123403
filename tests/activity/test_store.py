import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from activity import open_activity
from activity.homogenize import HomogenizeParams, homogenize
from activity.raw import RawRecording, Series
from activity.store import StoreWriter
from connectome import neuron_names
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
    assert ds["calcium"].dtype == np.float32 and ds["calcium"].chunks[0] == (1, 1)
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
    assert not list(tmp_path.glob("a.zarr.staging-*"))


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
    _write(store, [_rec("w3", 100, ["AVAL"], 3)])                    # the next writer cleans up
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1", "Fix2024/w3"]
    assert not list(tmp_path.glob("a.zarr.staging-*"))


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


def test_opening_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not an activity store"):
        open_activity(tmp_path)


def test_store_is_plain_zarr_readable_by_xarray(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    raw = xr.open_zarr(store, zarr_format=3)
    assert raw.attrs["wormflow_store"] == "wormflow-activity/1"


def test_a_worm_that_conflicts_with_the_store_fails_the_transaction_and_changes_nothing(tmp_path):
    # the writes run on the writer thread; its failure must surface from the with-block
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"], 1)])
    bad = _rec("w2", 100, ["AVAR"], 2, behavior=False)
    bad.behavior = {"velocity": Series(bad.timestamps, np.ones((100, 3)))}    # stored as (worm, time)
    with pytest.raises(StoreError, match="behavior_velocity is stored with dims"):
        _write(store, [bad])
    assert list(open_activity(store)["worm"].values) == ["Fix2024/w1"]
    assert not list(tmp_path.glob("a.zarr.staging-*"))


def test_more_worms_than_one_block_and_dask_sees_one_chunk_per_worm(tmp_path):
    import activity.zarr_layout as store_module

    store = tmp_path / "a.zarr"
    recs = [_rec(f"w{i:02d}", 60 + i, ["AVAL", "AVAR"][: 1 + i % 2], i) for i in range(7)]
    old = store_module.WORM_BLOCK
    store_module.WORM_BLOCK = 3             # cross block boundaries with few worms
    try:
        _write(store, recs[:4])
        _write(store, recs[4:])
    finally:
        store_module.WORM_BLOCK = old
    ds = open_activity(store)
    assert ds.sizes["worm"] == 7 and ds.attrs["n_worms"] == 7
    assert ds.chunks["worm"] == (1,) * 7                      # consistent across variables
    assert list(ds["worm"].values) == [f"Fix2024/{r.worm_id}" for r in recs]
    for i, r in enumerate(recs):
        ref = homogenize(r)
        np.testing.assert_array_equal(ds["roi_label"].values[i, : r.n_rois], r.roi_labels)
        np.testing.assert_allclose(ds["calcium"].values[i, : ref.sizes["time"]], ref["calcium"].values)
        assert int(ds["n_frames"].values[i]) == r.n_frames
    raw = xr.open_zarr(store, zarr_format=3)
    assert raw.sizes["worm"] % 3 == 0 and raw.sizes["worm"] >= 7     # the worm axis grows by blocks


def test_ingest_imports_neither_xarray_pandas_dask_nor_zarr(tmp_path):
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from activity.homogenize import homogenize_worm
        from activity.raw import RawRecording, Series
        from activity.store import StoreWriter
        from activity.homogenize import HomogenizeParams
        import pipeline.ingest
        t = np.arange(200) * 0.6
        rec = RawRecording("k.h5", "k", "Fix2024", "f", t, np.ones((200, 2)), ["AVAR", "AVAL"],
                           behavior={{"velocity": Series(t, np.ones(200))}}, signal="synthetic fixture", units="a.u.")
        with StoreWriter({str(tmp_path / "a.zarr")!r}, HomogenizeParams()) as w:
            w.append(homogenize_worm(rec), "c" * 64, "Fix2024/k")
        print(sorted(m for m in ("xarray", "pandas", "pyarrow", "dask", "zarr") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert list(open_activity(tmp_path / "a.zarr")["worm"].values) == ["Fix2024/k"]


def test_a_store_written_through_xarray_with_zarr_defaults_still_appends(tmp_path):
    # what earlier wormflow versions wrote: xarray.to_zarr, zstd, nested chunk folders,
    # one chunk per worm everywhere, and no worm capacity in the attrs
    new, old = tmp_path / "new.zarr", tmp_path / "old.zarr"
    recs = [_rec("w1", 100, ["AVAL", ""], 1), _rec("w2", 300, ["AVAR"], 2)]
    _write(new, recs[:1])
    ds = open_activity(new, trim=False).load()
    for v in ds.variables.values():
        v.encoding = {}
    ds.attrs["capacity"] = {k: v for k, v in ds.attrs["capacity"].items() if k != "worm"}
    ds.to_zarr(old, zarr_format=3, consolidated=True)
    meta = json.loads((old / "calcium" / "zarr.json").read_text())
    assert meta["codecs"][-1]["name"] == "zstd" and meta["chunk_key_encoding"]["configuration"]["separator"] == "/"
    _write(old, recs[1:])
    got = open_activity(old)
    assert list(got["worm"].values) == ["Fix2024/w1", "Fix2024/w2"]
    for i, r in enumerate(recs):
        ref = homogenize(r)
        np.testing.assert_array_equal(got["calcium"].values[i, : ref.sizes["time"]], ref["calcium"].values)
        assert got["roi_label"].values[i, : r.n_rois].tolist() == r.roi_labels
        assert int(got["n_frames"].values[i]) == r.n_frames


def test_a_store_missing_one_of_its_facts_is_refused_naming_the_store_and_the_fact(tmp_path):
    store = tmp_path / "a.zarr"
    _write(store, [_rec("w1", 100, ["AVAL"])])
    meta = json.loads((store / "zarr.json").read_text())
    del meta["attributes"]["dt"]
    (store / "zarr.json").write_text(json.dumps(meta))
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
