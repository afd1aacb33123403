"""Readers of lab formats with no real file in the mirror, on fixtures in their documented layouts."""

import numpy as np
import pytest

from activity.readers import detect, read_recordings
from activity.homogenize import homogenize
from tests.activity import layouts

RNG = np.random.default_rng(0)


def _worm(t_len, n):
    return RNG.normal(size=(t_len, n))


def test_zimmer_mat_v5_fixture_reads_every_worm_with_candidate_ids(tmp_path):
    x1, x2 = _worm(50, 3), _worm(40, 2)
    t1, t2 = np.arange(50) / 3.0, np.arange(40) / 3.0
    path = layouts.zimmer_v5(tmp_path / "WT_Stim.mat", [x1, x2],
                             [["AVAL", np.array([]), ["SMDVL", "SMDVR"]], ["RIS", "VB02"]], [t1, t2])
    assert detect(path) == ["zimmer_mat"]
    recs = read_recordings(path)
    assert [r.worm_id for r in recs] == ["WT_Stim/0", "WT_Stim/1"]
    np.testing.assert_array_equal(recs[0].traces, x1)
    np.testing.assert_array_equal(recs[1].timestamps, t2)
    assert recs[0].roi_labels == ["AVAL", "", "SMDVL/SMDVR"]
    ds = homogenize(recs[0])
    assert list(ds["roi_status"].values) == ["labelled", "unlabelled", "uncertain"]
    assert bool(homogenize(recs[1])["observed"].sel(neuron="VB2"))


def test_zimmer_mat_v73_fixture_reads_hdf5_cells(tmp_path):
    x = _worm(30, 2)
    t = np.arange(30) / 2.5
    path = layouts.zimmer_v73(tmp_path / "n2_let.mat", [x], [["AVAR", ""]], [t])
    assert detect(path) == ["zimmer_mat"]
    (rec,) = read_recordings(path)
    np.testing.assert_allclose(rec.traces, x)
    np.testing.assert_allclose(rec.timestamps, t)
    assert rec.roi_labels == ["AVAR", ""]


def test_zimmer_mat_fixture_with_mismatched_ids_is_refused(tmp_path):
    path = layouts.zimmer_v5(tmp_path / "bad.mat", [_worm(20, 3)], [["AVAL"]], [np.arange(20.0)])
    with pytest.raises(Exception, match=r"bad.mat:WT_Stim\[0\]: IDs has 1 entries for 3 trace columns"):
        read_recordings(path)


def test_yemini_mat_fixture_splits_worms_and_sides(tmp_path):
    a = np.arange(20.0)
    path = layouts.yemini_v5(tmp_path / "Head_Activity_OH15500.mat", fps=4.0, files=["w1", "w2"],
                             neurons=["AVA", "RIS"],
                             is_l=[[1, 1, 0, 0], [np.nan, np.nan]],
                             norm_traces=[[a, a + 1, a + 2, np.array([])], [a + 3, a + 4]])
    assert detect(path) == ["yemini_mat"]
    w1, w2 = read_recordings(path)
    assert w1.roi_labels == ["AVAL", "AVAR", "RIS"] and w2.roi_labels == ["AVAL", "RIS"]
    np.testing.assert_array_equal(w1.traces[:, 1], a + 2)
    np.testing.assert_allclose(w1.timestamps[:3], [0, 0.25, 0.5])


def test_lin_mat_fixture_keeps_flagged_rois(tmp_path):
    f = RNG.normal(size=(3, 25))
    path = layouts.lin_v5(tmp_path / "worm7.mat", f, ["AWCL", "ASEL", "AWAL"], [1, 0, 1], np.arange(25) * 0.2)
    assert detect(path) == ["lin_mat"]
    (rec,) = read_recordings(path)
    assert rec.roi_labels == ["AWCL", "AWAL"] and rec.metadata["rois_set_aside_by_use_flag"] == 1
    np.testing.assert_allclose(rec.traces, f[[0, 2]].T)


def test_leifer_text_fixture_reads_triplet(tmp_path):
    x = _worm(30, 3)
    x[:5, 1] = np.nan
    path = layouts.leifer_text(tmp_path / "Leifer2023", 0, x, ["AVAL", "", "RID"], np.arange(30) * 0.6)
    assert detect(path) == ["leifer_text"]
    (rec,) = read_recordings(path)
    assert rec.roi_labels == ["AVAL", "", "RID"]
    np.testing.assert_allclose(rec.traces, x, equal_nan=True)


def test_leifer_text_fixture_with_missing_companion_is_refused(tmp_path):
    path = layouts.leifer_text(tmp_path, 3, _worm(10, 2), ["A", "B"], np.arange(10.0))
    (tmp_path / "3_t.txt").unlink()
    with pytest.raises(Exception, match="3_gcamp.txt: companion file 3_t.txt is missing"):
        read_recordings(path)


def test_venkatachalam_csv_fixture_reads_time_columns(tmp_path):
    x = _worm(12, 2)
    t = np.arange(12) * 0.25
    path = layouts.venkatachalam_csv(tmp_path / "worm3.csv", x, ["AVAL", "URXL"], t)
    assert detect(path) == ["venkatachalam_csv"]
    (rec,) = read_recordings(path)
    np.testing.assert_allclose(rec.timestamps, t)
    np.testing.assert_allclose(rec.traces, x, rtol=1e-12)
    assert rec.metadata["descriptive_columns"] == ["neuron", "cell_type"]


def test_community_layout_nwb_fixture_reads_traces_labels_behaviour(tmp_path):
    x = _worm(40, 3)
    t = 5.0 + np.arange(40) * 0.5
    path = layouts.community_nwb(tmp_path / "sub-1.nwb", x, t, ["AVAL", "", "SAAD?"],
                                 behavior={"velocity": np.sin(t)})
    assert detect(path) == ["nwb"]
    (rec,) = read_recordings(path)
    np.testing.assert_allclose(rec.traces, x)
    np.testing.assert_allclose(rec.timestamps, t)
    assert rec.roi_labels == ["AVAL", "", "SAAD?"]
    assert rec.metadata["layout"] == "community"
    np.testing.assert_allclose(rec.behavior["velocity"].values, np.sin(t))
