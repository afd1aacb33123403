"""Crafted and broken input files, each made in the test: every reader's work is bounded by
the file, nothing outside the input is read, and each bad file fails alone with its cause."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from activity.homogenize import homogenize
from activity.raw import RawRecording
from activity.readers import read_recordings
from activity.readers._jld2 import _MESSAGE_HEAD, JLD2File
from wormflow.core.errors import FormatError
from tests.activity import layouts

BIN = Path(sys.executable).parent
T = 1000.0 + np.arange(100) * 0.6


def _ingest(tmp_path, *paths, timeout=120):
    """``wormflow ingest activity`` in its own process, bounded in time (a hang fails the test)."""
    store = tmp_path / "store.zarr"
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "wormflow"), "ingest", "activity", *map(str, paths), "--store", str(store)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "250"})
    return proc, store, time.perf_counter() - t0


def _stored_worms(store):
    from activity import open_activity

    return open_activity(store)["worm_id"].values.tolist() if store.exists() else []


def _looping_labels(src: Path, dst: Path) -> Path:
    """The lab's JLD2 labels file with one object-header message of the root group turned
    into a continuation whose block continues into itself."""
    f = JLD2File(src)
    buf = bytearray(f.buf)
    flags = buf[f.base + f._root + 5]
    head = 4 + (2 if flags & 0x04 else 0)
    _mtype, _mflags, pos, size = next(m for m in f._messages(f._root) if m[3] >= 16)
    start = len(buf)
    block_len = 4 + head + 16 + 4
    caddr = start - f.base
    buf[pos - head] = 0x10                                     # the message becomes a continuation...
    struct.pack_into("<2Q", buf, pos, caddr, block_len)        # ...into a new block
    block = b"OCHK" + _MESSAGE_HEAD.pack(0x10, 16, 0) + b"\0" * (head - 4) + struct.pack("<2Q", caddr, block_len)
    buf += block + b"\0\0\0\0"                                 # which continues into itself
    dst.write_bytes(bytes(buf))
    return dst


def test_a_jld2_continuation_loop_ends_in_seconds_and_the_batch_goes_on(tmp_path, mirror, flavell_files):
    bad_dir, good_dir = tmp_path / "bad", tmp_path / "good"
    bad_dir.mkdir(), good_dir.mkdir()
    recording = next(f for f in flavell_files if "2022-07-26-31" in f.name)
    shutil.copy(recording, bad_dir / recording.name)
    _looping_labels(mirror / "activity" / "Dag2023" / "NeuroPAL_labels_dict.jld2",
                    bad_dir / "NeuroPAL_labels_dict.jld2")
    good = next(f for f in flavell_files if "2022-01-16-01" in f.name)      # a worm without identities
    shutil.copy(good, good_dir / good.name)
    proc, store, seconds = _ingest(tmp_path, bad_dir, good_dir)
    assert proc.returncode == 1 and seconds < 60
    assert "continuation loop" in proc.stderr and "NeuroPAL_labels_dict.jld2" in proc.stderr
    assert str((bad_dir / recording.name).resolve()) in proc.stderr             # the full path of the failed file
    assert _stored_worms(store) == ["2022-01-16-01"]


def _secret(tmp_path) -> Path:
    secret = tmp_path / "elsewhere" / "credentials.env"
    secret.parent.mkdir()
    secret.write_bytes(b"HF_TOKEN=hf_notarealtoken\n".ljust(100 * 3 * 8, b"#"))
    return secret


def test_external_raw_storage_is_refused_before_anything_is_read(tmp_path):
    secret = _secret(tmp_path)
    path = tmp_path / "ext-data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gcamp/trace_array", shape=(100, 3), dtype="<f8", external=[(str(secret), 0, 2400)])
        f["timing/timestamp_confocal"] = T
    with pytest.raises(FormatError, match=r"ext-data.h5: refused: dataset 'gcamp/trace_array' keeps its data in "
                                          r"external file.*credentials.env.*nothing outside the input file"):
        read_recordings(path)
    (tmp_path / "good").mkdir()
    good = layouts.flavell_h5(tmp_path / "good" / "ok-data.h5", np.ones((100, 2)), T)
    proc, store, _ = _ingest(tmp_path, path, good)
    assert proc.returncode == 1 and "external file" in proc.stderr
    assert _stored_worms(store) == ["ok-data"]
    for chunk in store.rglob("*"):
        if chunk.is_file():
            assert b"hf_notarealtoken" not in chunk.read_bytes()


def test_an_external_link_is_refused(tmp_path):
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as f:
        f["t"] = T
    path = tmp_path / "link-data.h5"
    with h5py.File(path, "w") as f:
        f["gcamp/trace_array"] = np.ones((100, 2))
        f.create_group("timing")["timestamp_confocal"] = h5py.ExternalLink(str(other), "/t")
    with pytest.raises(FormatError, match=r"link-data.h5: refused: 'timing/timestamp_confocal' is an external "
                                          r"link to .*elsewhere.h5:/t"):
        read_recordings(path)


def test_a_virtual_dataset_is_refused(tmp_path):
    other = tmp_path / "source.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.ones((100, 2))
    layout = h5py.VirtualLayout(shape=(100, 2), dtype="f8")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(100, 2))
    path = tmp_path / "vds-data.h5"
    with h5py.File(path, "w") as f:
        f.create_group("gcamp").create_virtual_dataset("trace_array", layout)
        f["timing/timestamp_confocal"] = T
    with pytest.raises(FormatError, match=r"vds-data.h5: refused: dataset 'gcamp/trace_array' is a virtual dataset"):
        read_recordings(path)


def test_a_declared_huge_shape_is_refused_without_allocating_it(tmp_path):
    path = tmp_path / "huge-data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gcamp/trace_array", shape=(800, 2_000_000), dtype="<f8")     # never written
        f["timing/timestamp_confocal"] = 1000.0 + np.arange(800) * 0.6
    assert path.stat().st_size < 4_000_000
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match=r"huge-data.h5: dataset '/gcamp/trace_array' declares shape "
                                          r"\(800, 2000000\) of float64 \(12.8 GB\)"):
        read_recordings(path)
    assert time.perf_counter() - t0 < 5


def test_a_declared_shape_the_file_does_not_store_is_refused_even_within_the_budget(tmp_path):
    from activity.readers._hdf5 import read_array

    path = tmp_path / "hollow.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(1000, 1000), dtype="<f8")                       # 8 MB declared, 0 stored
    with h5py.File(path, "r") as f, pytest.raises(FormatError, match="stores only 0 bytes: never written"):
        read_array(f, path, "x", budget=1 << 30)


def test_a_truncated_hdf5_is_named_as_truncated(tmp_path, flavell_files):
    data = flavell_files[0].read_bytes()
    cut = tmp_path / "2022-01-16-01-data.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"2022-01-16-01-data.h5: truncated or corrupt HDF5"):
        read_recordings(cut)


def test_two_bad_files_of_one_name_are_told_apart_by_their_full_paths(tmp_path):
    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        p = tmp_path / folder / "2022-01-01-01-data.h5"
        p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        paths.append(p)
    proc, _, _ = _ingest(tmp_path, *paths)
    assert proc.returncode == 1
    for p in paths:
        assert str(p.resolve()) in proc.stderr
    assert proc.stderr.count("truncated or corrupt HDF5") == 2


def test_infinite_and_float32_overflowing_values_are_masked_counted_and_reported(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 3))
    x[5, 0], x[6, 1], x[7, 2] = np.inf, -np.inf, 1e39
    rec = RawRecording("inf.h5", "inf", "D", "f", T, x, ["AVAL", "AVAR", ""], signal="synthetic fixture",
                       units="a.u.")
    ds = homogenize(rec)
    assert ds.attrs["n_values_masked"] == 3
    assert np.isnan(ds["native_calcium"].values[[5, 6, 7], [0, 1, 2]]).all()
    assert np.isfinite(ds["roi_calcium"].values).sum() > 0 and not np.isinf(ds["roi_calcium"].values).any()
    assert "3 trace value(s) infinite or beyond float32's range; stored as NaN" in ds.attrs["label_notes"]
    path = layouts.flavell_h5(tmp_path / "inf-data.h5", x, T)
    proc, store, _ = _ingest(tmp_path, path)
    assert proc.returncode == 0 and "stored as NaN" in proc.stderr + proc.stdout
    from activity import open_activity

    assert open_activity(store)["n_values_masked"].values.tolist() == [3]


def test_a_behaviour_series_of_the_wrong_length_is_reported_not_silently_moved(tmp_path):
    path = layouts.flavell_h5(tmp_path / "beh-data.h5", np.ones((100, 2)), T,
                              behavior={"velocity": np.ones(90), "reversal_events": np.ones((2, 4))})
    (rec,) = read_recordings(path)
    assert "velocity" not in rec.behavior and "velocity" in rec.events
    assert rec.notes == ["beh-data.h5: behavior/velocity has shape (90,) for 100 frames; kept as an event array, "
                         "not as a time series"]
    assert "kept as an event array" in homogenize(rec).attrs["label_notes"]
