"""Readers on the real files of the local mirror, pinning what the reference gets wrong."""

import h5py
import numpy as np
import pytest

from activity.homogenize import homogenize
from activity.readers import detect, read_recordings
from wormflow.core.errors import FormatError

# Certain, unique identities per worm in NeuroPAL_labels_dict.jld2: its entries minus the
# '?' labels (kept uncertain) and the two ROIs both labelled URADL in 2022-07-27-38.
LABELLED = {"2022-07-26-31": 99, "2022-07-26-38": 87, "2022-07-27-31": 100, "2022-07-27-38": 86,
            "2022-07-27-45": 107}
JLD2_ENTRIES = {"2022-07-26-31": 100, "2022-07-26-38": 87, "2022-07-27-31": 104, "2022-07-27-38": 94,
                "2022-07-27-45": 109}


@pytest.fixture(scope="module")
def flavell(flavell_files):
    return {r.worm_id: r for f in flavell_files for r in read_recordings(f)}


def test_every_flavell_recording_reads_including_2022_07_27_45(flavell):
    assert set(flavell) == set(LABELLED) | {"2022-01-16-01", "2022-05-02-01"}


def test_flavell_labels_match_the_jld2_identities(flavell):
    for uid, n in JLD2_ENTRIES.items():
        assert sum(1 for lab in flavell[uid].roi_labels if lab) == n
    for uid, n in LABELLED.items():
        assert int(homogenize(flavell[uid])["observed"].sum()) == n


def test_worms_without_identities_read_as_unlabelled(flavell):
    for uid in ("2022-01-16-01", "2022-05-02-01"):
        assert not any(flavell[uid].roi_labels)


def test_duplicate_uradl_is_flagged_not_renamed(flavell):
    ds = homogenize(flavell["2022-07-27-38"])
    status = ds["roi_status"].values
    labels = ds["roi_label"].values
    assert list(status[labels == "URADL"]) == ["duplicate", "duplicate"]
    assert not bool(ds["observed"].sel(neuron="URADL"))
    uradr = np.flatnonzero(labels == "URADR")
    assert ds["roi_neuron"].values[uradr].tolist() == ["URADR"] * len(uradr)
    assert bool(ds["observed"].sel(neuron="URADR")) == (len(uradr) == 1)


def test_vb02_becomes_vb2_and_question_marks_stay_uncertain(flavell):
    ds = homogenize(flavell["2022-07-27-31"])
    assert "VB02" in ds["roi_label"].values.tolist()
    assert bool(ds["observed"].sel(neuron="VB2")) and not bool(ds["observed"].sel(neuron="VA12"))
    q = ds["roi_label"].values == "SIBV?"
    assert q.sum() == 2 and set(ds["roi_status"].values[q]) == {"uncertain"}
    assert not ds["observed"].sel(neuron=["SIBVL", "SIBVR"]).values.any()


def test_labels_land_on_the_trace_column_roi_match_names(flavell_files, flavell, mirror):
    path = next(f for f in flavell_files if "2022-07-26-31" in f.name)
    rec = flavell["2022-07-26-31"]
    with h5py.File(path) as f:
        roi_match = f["neuropal_registration/roi_match"][()]
    from activity.readers.flavell_h5 import load_labels
    table = load_labels(mirror / "activity" / "Dag2023" / "NeuroPAL_labels_dict.jld2", "2022-07-26-31")
    for column, record in table.items():
        assert roi_match[record["roi_id"][0] - 1] == column
        assert rec.roi_labels[column - 1] == record["label"]


def test_flavell_time_is_exact_float64(flavell_files):
    path = next(f for f in flavell_files if "2022-07-26-31" in f.name)
    with h5py.File(path) as f:
        t = f["timing/timestamp_confocal"][()]
    ds = homogenize(read_recordings(path)[0])
    assert ds["native_time"].dtype == np.float64
    np.testing.assert_array_equal(ds["native_time"].values, t - t[0])
    assert ds.attrs["native_t0"] == t[0] and t[0] > 1e6
    assert abs(np.median(np.diff(ds["native_time"].values)) - 0.600) < 0.001   # not float32's 0.625


def test_flavell_file_with_more_clock_entries_uses_idx_splits(flavell):
    rec = flavell["2022-05-02-01"]
    assert rec.n_frames == 1137 and rec.timestamps.size == 1137
    assert rec.metadata["timestamps_not_in_idx_splits"] == 463


def test_flavell_behaviour_series_are_all_read(flavell):
    rec = flavell["2022-07-26-31"]
    assert {"velocity", "head_angle", "angular_velocity", "pumping", "reversal_vec", "body_angle"} <= set(rec.behavior)
    assert rec.behavior["body_angle"].values.shape == (800, 30)
    assert "reversal_events" in rec.events


def test_scholz_legacy_nwb_reads_as_62_unlabelled_neurons(mirror):
    path = next((mirror / "activity" / "Scholz2018").glob("*.nwb"))
    assert detect(path) == ["nwb"]
    (rec,) = read_recordings(path)
    assert rec.traces.shape == (2244, 62) and not any(rec.roi_labels)
    assert rec.metadata["layout"] == "legacy"
    assert "ss_2D" in rec.behavior
    assert int(homogenize(rec)["observed"].sum()) == 0


def test_kato_nwb_without_calcium_is_refused_with_what_it_holds(mirror):
    for path in sorted((mirror / "activity" / "Kato2015").glob("*.nwb")):
        with pytest.raises(FormatError, match=rf"{path.name}: no calcium traces.*acquisition/States"):
            read_recordings(path)


def test_scholz_dropped_frames_are_gaps_on_the_grid_not_interpolated(mirror):
    # the Leifer-lab file has 7 frame intervals longer than 1.5 median intervals (0.166 s),
    # the longest 41.2 s: the 125 grid points farther than 0.249 s from every frame are NaN
    path = next((mirror / "activity" / "Scholz2018").glob("*.nwb"))
    (rec,) = read_recordings(path)
    native = rec.traces.copy()
    ds = homogenize(rec)
    valid = ds["valid"].values
    assert ds.attrs["n_grid_dropped"] == 125 == int((~valid).sum())
    assert abs(ds.attrs["max_frame_gap_s"] - 41.165) < 1e-3
    assert np.isnan(ds["roi_calcium"].values[~valid]).all()
    assert np.isnan(ds["behavior_ss_2D"].values[~valid]).all()
    assert np.isfinite(ds["roi_calcium"].values[valid]).all()
    grid, t = ds["time"].values, ds["native_time"].values
    nearest = np.abs(grid[:, None] - t[None, :]).min(axis=1)
    np.testing.assert_array_equal(~valid, nearest > 1.5 * np.median(np.diff(t)) + 1e-9)
    np.testing.assert_array_equal(ds["native_calcium"].values, native)       # frames untouched
    with h5py.File(path) as f:
        np.testing.assert_array_equal(ds["native_calcium"].values[:, 0], f["acquisition/Activity_0000/data"][()])


def test_flavell_recordings_have_no_gap_on_the_grid(flavell):
    for rec in flavell.values():
        ds = homogenize(rec)
        assert ds.attrs["n_grid_dropped"] == 0 and bool(ds["valid"].all()), rec.worm_id


def test_readers_state_signal_units_and_the_files_own_metadata(flavell, mirror):
    rec = flavell["2022-07-26-31"]
    assert (rec.signal, rec.units) == ("z-scored F/F20 (per ROI over the recording)", "1")
    with h5py.File(rec.source_file) as f:                # what the lab's trace_array is, checked on the file
        f20, z = f["gcamp/traces_array_F_F20"][()], f["gcamp/trace_array"][()]
    np.testing.assert_allclose((f20 - np.nanmean(f20, 0)) / np.nanstd(f20, 0), z, atol=0.01)
    (scholz,) = read_recordings(next((mirror / "activity" / "Scholz2018").glob("*.nwb")))
    assert scholz.units == "none"                        # the file's own unit attribute
    assert scholz.signal.startswith("not stated in the file")
    meta = scholz.metadata
    assert meta["experimenter"] == ["Monika Scholz"] and meta["institution"] == "Princeton University"
    assert meta["lab"].startswith("Leifer lab")
    assert "10.1101/445643" in meta["related_publications"][0]
    assert meta["experiment_description"] == "Whole-brain neural recordings of freely moving C. elegans"
    assert meta["session_start_time"].startswith("2020-06-18T10:07:10")
    assert meta["position_reference_frame"] == {"ss_2D": "Zero is origin"}
