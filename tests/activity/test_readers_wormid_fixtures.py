"""Fixture tests: NWB files written field by field as NWBelegans' NWB_convert.py (DANDI 000692 /
000776) and the Zimmer lab's wbfm exporter write them (no such real file is in the mirror).
Labels must come through the references the file holds, never by row position."""

from __future__ import annotations

import numpy as np
import pytest

from activity.homogenize import homogenize
from activity.readers import read_recordings
from wormflow.core.errors import FormatError
from tests.activity import layouts

RNG = np.random.default_rng(3)


def test_dandi_000692_style_names_come_from_neuron_ids_not_the_neuropal_table(tmp_path):
    # 5 calcium ROIs named in NeuronIDs; the NeuroPAL segmentation has 6 other ROIs with
    # their own ID_labels: row counts differ, and the old reader refused the file for it
    x = RNG.normal(size=(50, 5))
    names = ["AVAL", "", "RIMR", "SMDVL?", "AIBL"]
    path = layouts.nwbelegans_nwb(tmp_path / "sub-1_ses-1_ophys.nwb", x, 3.3, names,
                                  ["ADAL", "ADAR", "AVAL", "AVAR", "RIMR", "AIBL"])
    (rec,) = read_recordings(path)
    assert rec.roi_labels == names
    np.testing.assert_array_equal(rec.traces, x)
    assert rec.signal.startswith("dF/F") and rec.units == "Percentage"
    assert not rec.notes
    ds = homogenize(rec)
    assert bool(ds.observed.sel(neuron="AVAL")) and bool(ds.observed.sel(neuron="RIMR"))
    assert not bool(ds.observed.sel(neuron="ADAL"))           # a NeuroPAL-only name never lands on a trace
    meta = rec.metadata
    assert meta["experimenter"] == ["Fixture Person"] and meta["institution"] == "UCSF"
    assert meta["subject"]["growth_stage"] == "YA" and meta["subject"]["strain"] == "OH16230"
    assert meta["subject"]["growth_stage_time"] == "PT2H30M"


def test_wbfm_style_manual_names_in_neuron_ids_win_over_the_trackers_names(tmp_path):
    g = RNG.normal(size=(40, 4))
    tracker = ["neuron_001", "AVAR", "neuron_003", "neuron_004"]
    manual = ["AVAL", "AVAR", "", "RIML"]
    path = layouts.wbfm_nwb(tmp_path / "zim.nwb", g + 5, g, g / 5, 1.7, tracker, manual)
    (rec,) = read_recordings(path)
    assert rec.roi_labels == manual
    np.testing.assert_array_equal(rec.traces, g / 5)             # the ratio (SignalDFoF) series
    assert rec.metadata["series"].endswith("SignalDFoF/SignalCalciumImResponseSeries")
    assert sorted(np.flatnonzero(homogenize(rec).observed.values)) == sorted(
        [list(homogenize(rec).neuron.values).index(n) for n in ("AVAL", "AVAR", "RIML")])


def test_a_file_whose_labels_cannot_be_linked_ingests_unlabelled_with_a_warning(tmp_path):
    g = RNG.normal(size=(40, 3))
    path = layouts.wbfm_nwb(tmp_path / "nolink.nwb", g, g, g, 1.7, None, ["AVAL", "AVAR", "RIML"],
                            link_labels=False)
    (rec,) = read_recordings(path)
    assert rec.roi_labels == ["", "", ""]
    assert len(rec.notes) == 1 and "kept unlabelled" in rec.notes[0] and "NeuronIDs labels" in rec.notes[0]
    assert "kept unlabelled" in homogenize(rec).attrs["label_notes"]


def test_neuron_ids_of_another_length_than_the_linked_table_is_refused(tmp_path):
    import h5py

    x = RNG.normal(size=(20, 3))
    path = layouts.nwbelegans_nwb(tmp_path / "bad.nwb", x, 3.3, ["AVAL", "AVAR", "RIML"], ["AVAL"])
    with h5py.File(path, "r+") as f:
        del f["processing/CalciumActivity/NeuronIDs/labels"]
        f["processing/CalciumActivity/NeuronIDs/labels"] = np.array([b"AVAL", b"AVAR"])
    with pytest.raises(FormatError, match=r"bad.nwb: NeuronIDs has 2 labels for the 3 ROIs of"):
        read_recordings(path)


def test_wormid_fixtures_open_in_pynwb_and_pynapple(tmp_path):
    import pynapple as nap
    from pynwb import NWBHDF5IO

    x = RNG.normal(size=(30, 2))
    path = layouts.nwbelegans_nwb(tmp_path / "p.nwb", x, 3.3, ["AVAL", "AVAR"], ["AVAL"])
    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        nwb = io.read()
        assert nwb.subject.growth_stage == "YA"
        assert list(nwb.processing["CalciumActivity"]["NeuronIDs"].labels[:]) == ["AVAL", "AVAR"]
    data = nap.load_file(str(path))
    assert "SignalCalciumImResponseSeries" in data.keys()
