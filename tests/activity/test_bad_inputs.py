"""Every bad input gets one clear error naming the file and the cause."""

import shutil

import numpy as np
import pytest

from activity.homogenize import HomogenizeParams, homogenize
from activity.raw import RawRecording
from activity.readers import read_recordings
from wormflow.core.errors import FormatError, LabelError, RecordingError, UnknownFormatError
from tests.activity import layouts

T = np.arange(100) * 0.5


def test_empty_file(tmp_path):
    p = tmp_path / "empty-data.h5"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="empty-data.h5: the file is empty"):
        read_recordings(p)


def test_truncated_hdf5(tmp_path, flavell_files):
    p = tmp_path / "2022-07-26-31-data.h5"
    p.write_bytes(flavell_files[2].read_bytes()[:200_000])
    with pytest.raises(FormatError, match=r"2022-07-26-31-data.h5: .*(truncated|not a recognised)"):
        read_recordings(p, format="flavell_h5")


def test_file_of_another_format_lists_known_formats(tmp_path, mirror):
    p = tmp_path / "notes.txt"
    shutil.copy(mirror / "README.md", p)
    with pytest.raises(UnknownFormatError, match=r"notes.txt: not a recognised activity file; known formats: flavell_h5"):
        read_recordings(p)


def test_missing_required_dataset(tmp_path):
    p = layouts.flavell_h5(tmp_path / "x-data.h5", np.ones((100, 2)), T, drop=("timestamps",))
    with pytest.raises(FormatError, match="x-data.h5: missing required dataset 'timing/timestamp_confocal'"):
        read_recordings(p)


def test_timestamps_not_increasing(tmp_path):
    t = T.copy()
    t[41] = t[40] - 0.2
    p = layouts.flavell_h5(tmp_path / "back-data.h5", np.ones((100, 2)), t)
    with pytest.raises(RecordingError, match=r"back-data.h5: timestamps is not increasing at index 41 \(t=19.800 s after t=20.000 s\)"):
        read_recordings(p)


def test_timestamps_duplicated(tmp_path):
    t = T.copy()
    t[10] = t[9]
    p = layouts.flavell_h5(tmp_path / "dup-data.h5", np.ones((100, 2)), t)
    with pytest.raises(RecordingError, match=r"dup-data.h5: timestamps is duplicated at index 10"):
        read_recordings(p)


def test_trace_timestamp_length_mismatch(tmp_path):
    p = layouts.flavell_h5(tmp_path / "len-data.h5", np.ones((90, 2)), T)
    with pytest.raises(RecordingError, match="len-data.h5: trace/timestamp length mismatch: 90 frames of traces but 100 timestamps"):
        read_recordings(p)


def test_all_nan_traces(tmp_path):
    p = layouts.flavell_h5(tmp_path / "nan-data.h5", np.full((100, 3), np.nan), T)
    with pytest.raises(RecordingError, match="nan-data.h5: every trace is NaN"):
        read_recordings(p)


def test_absurd_sampling_rate(tmp_path):
    p = layouts.flavell_h5(tmp_path / "ms-data.h5", np.ones((100, 2)), T * 1000)   # ms read as s
    with pytest.raises(RecordingError, match=r"ms-data.h5: timestamps implies an absurd sampling rate"):
        read_recordings(p)


def _rec(labels):
    return RawRecording(source_file="w.h5", worm_id="w", dataset="D", format="f", timestamps=T,
                        traces=np.random.default_rng(0).normal(size=(100, len(labels))), roi_labels=labels,
                        signal="synthetic fixture", units="a.u.")


def test_duplicate_labels_in_one_worm_are_flagged_or_refused_when_strict():
    ds = homogenize(_rec(["AVAL", "AVAL", "AVAR"]))
    assert list(ds["roi_status"].values) == ["duplicate", "duplicate", "labelled"]
    assert not bool(ds["observed"].sel(neuron="AVAL")) and bool(ds["observed"].sel(neuron="AVAR"))
    with pytest.raises(LabelError, match=r"w.h5: duplicate labels \['AVAL'\] within one worm"):
        homogenize(_rec(["AVAL", "AVAL"]), HomogenizeParams(strict_labels=True))


def test_unmappable_labels_are_kept_unlabelled_with_a_note():
    ds = homogenize(_rec(["AVAX", "AVAL"]))
    assert list(ds["roi_status"].values) == ["unmapped", "labelled"]
    assert "'AVAX' is not a hermaphrodite neuron name" in ds.attrs["label_notes"]


@pytest.mark.parametrize("content", [b"not an hdf5 file at all", b"\x00" * 512 + b"\x89HDF\r\n\x1a\n\x02\x08\x08\x00" + b"\xff" * 40],
                         ids=["not-hdf5", "truncated-superblock"])
def test_a_broken_labels_file_is_refused_with_its_name(tmp_path, content):
    from activity.readers.flavell_h5 import load_labels
    bad = tmp_path / "NeuroPAL_labels_dict.jld2"
    bad.write_bytes(content)
    with pytest.raises(FormatError, match=r"NeuroPAL_labels_dict\.jld2: not a JLD2 file this reader understands"):
        load_labels(bad, "2022-07-26-31")
