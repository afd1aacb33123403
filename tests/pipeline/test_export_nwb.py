"""`wormflow export-nwb` on every worm of the real mirror: layout, validation, exact round trip."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from activity import open_activity
from activity.nwb import (ExportError, ExportParams, build_nwbfile, check_nwb, roundtrip_differences, worm_record,
                          write_nwb)
from activity.readers import read_recordings
from pipeline.cli import main
from pipeline.export import nwb_path
from tests.activity import layouts


# What this test states about the mirror's recordings for DANDI (the files do not say it):
# the test's own values, given the way a user gives them, not facts wormflow ships.
METADATA = """
[Dag2023]
age = "P3D"
age_reference = "birth"
growth_stage = "YA"
lab = "Flavell lab"
institution = "Massachusetts Institute of Technology"
related_publications = ["doi:10.1016/j.cell.2023.04.023"]
[Scholz2018]
age = "P3D"
growth_stage = "YA"
strain = "AML175"
"""


@pytest.fixture(scope="module")
def exported(mirror_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("nwb")
    table = out.parent / "metadata.toml"
    table.write_text(METADATA)
    result = CliRunner().invoke(main, ["export-nwb", str(mirror_store[0]), "--out", str(out), "--metadata", str(table)])
    return mirror_store[0], out, result


def test_every_worm_of_the_mirror_is_exported_and_passes_pynwb_and_nwbinspector(exported):
    store, out, result = exported
    assert result.exit_code == 0, result.output
    files = sorted(out.rglob("*.nwb"))
    assert len(files) == 8 and result.output.count(" pass ") == 8
    assert not list(out.rglob(".*partial*"))
    assert "not ready for DANDI" not in result.output
    for f in files:
        assert check_nwb(f) == [], f           # what the CLI's "pass" stands for: no CRITICAL, no BPV


def test_every_export_passes_dandi_validate_after_dandi_organize(exported, tmp_path):
    _, out, _ = exported
    dandiset = tmp_path / "000000"
    dandiset.mkdir()
    (dandiset / "dandiset.yaml").write_text("identifier: DANDI:000000\nname: wormflow export test\n")
    env = {**os.environ, "DANDI_NO_ET": "1"}
    dandi = str(Path(sys.executable).parent / "dandi")
    organized = subprocess.run([dandi, "organize", "-f", "copy", "-d", str(dandiset), str(out)], env=env,
                               capture_output=True, text=True, timeout=300)
    assert organized.returncode == 0, organized.stderr[-2000:]
    assert len(list(dandiset.rglob("sub-*/*.nwb"))) == 8
    validated = subprocess.run([dandi, "validate", str(dandiset)], env=env, capture_output=True, text=True,
                               timeout=300)
    assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-2000:]


def test_without_an_age_the_export_names_what_dandi_needs(mirror_store, tmp_path):
    worm = "Scholz2018/BrainScanner20180223_141721"
    result = CliRunner().invoke(main, ["export-nwb", str(mirror_store[0]), "--out", str(tmp_path), "--worm", worm])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"not ready for DANDI: {worm}: age unknown: give the subject's age as an ISO 8601 duration" in text
    problems = check_nwb(nwb_path(tmp_path, worm))          # nothing hides it: the inspector still says it
    assert [p for p in problems if "check_subject_age" in p]


def test_the_subject_and_neuron_ids_use_the_wormid_extension(exported):
    from pynwb import NWBHDF5IO

    store, out, _ = exported
    with NWBHDF5IO(str(nwb_path(out, "Dag2023/2022-07-26-31")), "r", load_namespaces=True) as io:
        nwb = io.read()
        assert type(nwb.subject).__name__ == "CElegansSubject"
        assert nwb.subject.species == "http://purl.obolibrary.org/obo/NCBITaxon_6239"
        assert nwb.subject.sex == "O" and "hermaphrodite (XX)" in nwb.subject.description
        assert nwb.subject.age == "P3D" and nwb.subject.growth_stage == "YA"
        assert nwb.institution == "Massachusetts Institute of Technology"
        assert nwb.related_publications == ("doi:10.1016/j.cell.2023.04.023",)
        ids = nwb.processing["CalciumActivity"]["NeuronIDs"]
        assert type(ids).__name__ == "SegmentationLabels"
        assert list(ids.labels[:]) == open_activity(store).roi_label.sel(worm="Dag2023/2022-07-26-31").values[
            :146].tolist()
    with NWBHDF5IO(str(nwb_path(out, "Scholz2018/BrainScanner20180223_141721")), "r", load_namespaces=True) as io:
        nwb = io.read()
        assert nwb.experimenter == ("Monika Scholz",) and nwb.subject.strain == "AML175"
        assert nwb.session_start_time.isoformat().startswith("2020-06-18T10:07:10")


def test_exports_open_in_pynapple(exported):
    import pynapple as nap

    _, out, _ = exported
    data = nap.load_file(str(nwb_path(out, "Dag2023/2022-07-26-31")))
    traces = data["SignalCalciumImResponseSeries"]
    assert traces.shape == (800, 146)


def test_every_export_reads_back_exactly_through_wormflows_reader(exported):
    store, out, _ = exported
    ds = open_activity(store)
    for worm in ds.worm.values.tolist():
        assert roundtrip_differences(worm_record(ds, worm), nwb_path(out, worm)) == [], worm


def test_reingesting_the_exports_rebuilds_the_same_store(exported, tmp_path):
    store, out, _ = exported
    again = tmp_path / "again.zarr"
    result = CliRunner().invoke(main, ["ingest", "activity", str(out), "--store", str(again)])
    assert "added 8 worm(s)" in result.output
    a, b = open_activity(store), open_activity(again)
    assert sorted(a.worm.values.tolist()) == sorted(b.worm.values.tolist())
    b = b.sel(worm=a.worm.values)
    for var in ("calcium", "roi_calcium", "roi_label", "roi_neuron", "behavior_velocity", "behavior_ss_2D",
                "native_time", "observed", "valid", "n_grid_dropped"):
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)
    assert a.signal.values.tolist() == b.signal.values.tolist() and a.units.values.tolist() == b.units.values.tolist()
    for worm in a.worm.values.tolist():
        before, after = (json.loads(str(x.metadata.sel(worm=worm).values)) for x in (a, b))
        for key in ("experimenter", "institution", "lab", "experiment_description", "related_publications"):
            assert after.get(key) == before.get(key) or not before.get(key), (worm, key)
    scholz = json.loads(str(b.metadata.sel(worm="Scholz2018/BrainScanner20180223_141721").values))
    assert scholz["experimenter"] == ["Monika Scholz"] and scholz["subject"]["strain"] == "AML175"


def test_the_files_follow_the_community_layout_and_carry_provenance(exported):
    store, out, _ = exported
    ds = open_activity(store)
    worm = "Dag2023/2022-07-26-31"
    with h5py.File(nwb_path(out, worm), "r") as f:
        table = f["processing/CalciumActivity/CalciumSeriesSegmentation/CalciumSeriesROIs"]
        labels = [v.decode() for v in table["ID_labels"][()]]
        series = f["processing/CalciumActivity/SignalRawFluor/SignalCalciumImResponseSeries"]
        assert series["data"].shape == (800, 146) and series["rois"].shape == (146,)
        assert f["general/subject/species"][()].decode() == "http://purl.obolibrary.org/obo/NCBITaxon_6239"
        assert f["general/subject/sex"][()].decode() == "O"        # DANDI's code for the hermaphrodite
        assert "processing/Behavior/velocity/velocity" in f
        notes = json.loads(f["general/notes"][()].decode())
    assert "SAAD?" in labels and "" in labels and "AVAR" in labels        # uncertain kept, unlabelled empty
    assert labels == ds.roi_label.sel(worm=worm).values[:146].tolist()
    assert notes["source_sha256"] == str(ds.source_sha256.sel(worm=worm).values)
    assert notes["wormflow_version"] and notes["source_format"] == "flavell_h5"
    assert json.loads(notes["homogenize_params"])["dt"] == 0.5


def test_an_existing_file_is_refused_unless_overwrite(exported):
    store, out, _ = exported
    worm = "Scholz2018/BrainScanner20180223_141721"
    path = nwb_path(out, worm)
    before = path.read_bytes()
    refused = CliRunner().invoke(main, ["export-nwb", str(store), "--out", str(out), "--worm", worm])
    assert refused.exit_code == 1 and "exists" in refused.output and "--overwrite" in refused.output
    assert path.read_bytes() == before
    ok = CliRunner().invoke(main, ["export-nwb", str(store), "--out", str(out), "--worm", worm, "--overwrite",
                                   "--no-validate"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, ["export-nwb", str(store), "--out", str(out), "--worm", "Nobody/1"])
    assert bad.exit_code == 2 and "Nobody/1" in bad.output


def test_grid_series_is_optional_and_the_reader_still_takes_the_native_traces(mirror_store, tmp_path):
    ds = open_activity(mirror_store[0])
    worm = "Dag2023/2022-07-27-45"
    rec = worm_record(ds, worm)
    path = write_nwb(build_nwbfile(rec, ExportParams(grid=True, metadata={"age": "P3D"}), "test"), tmp_path / "g.nwb")
    with h5py.File(path, "r") as f:
        grid = f["processing/CalciumActivity/HomogenizedFluor/HomogenizedCalciumResponseSeries"]
        assert grid["data"].shape == (962, int(ds.n_rois.sel(worm=worm)))
        assert grid["starting_time"].attrs["rate"] == pytest.approx(2.0)
    assert check_nwb(path) == []
    assert roundtrip_differences(rec, path) == []


def test_a_worm_with_no_observed_neurons_is_refused(mirror_store):
    ds = open_activity(mirror_store[0]).load()
    ds["native_calcium"][:] = np.nan
    with pytest.raises(ExportError, match="no observed neurons"):
        worm_record(ds, "Dag2023/2022-07-26-31")
    with pytest.raises(ExportError, match="not in the store"):
        worm_record(ds, "Nobody/1")


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_damaged_previous_one(mirror_store, tmp_path, monkeypatch):
    from pynwb import NWBHDF5IO

    ds = open_activity(mirror_store[0])
    rec = worm_record(ds, "Scholz2018/BrainScanner20180223_141721")
    path = write_nwb(build_nwbfile(rec, ExportParams(), "test"), tmp_path / "w.nwb")
    before = path.read_bytes()

    def explode(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(NWBHDF5IO, "write", explode)
    with pytest.raises(OSError, match="disk full"):
        write_nwb(build_nwbfile(rec, ExportParams(), "test"), path, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        write_nwb(build_nwbfile(rec, ExportParams(), "test"), tmp_path / "new.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.nwb"]
    assert path.read_bytes() == before


def test_community_files_with_extension_types_read_without_the_extension_package(tmp_path):
    """Fixture following DANDI 000776's layout: ndx-multichannel-volume types (ImagingVolume,
    CElegansSubject, SegmentationLabels) named in neurodata_type attributes, the extension's
    namespace cached under /specifications, ragged ID_labels as in 000692."""
    x = np.random.default_rng(0).normal(size=(40, 3))
    t = np.cumsum(np.full(40, 0.6))
    path = layouts.community_nwb(tmp_path / "sub-ext.nwb", x, t, ["AVAL", "", "SAAD?"])
    with h5py.File(path, "r+") as f:
        f["general/optophysiology/ImagingVolume"].attrs["neurodata_type"] = "ImagingVolume"
        f["general/optophysiology/ImagingVolume"].attrs["namespace"] = "ndx-multichannel-volume"
        f["general"].create_group("subject").attrs.update(neurodata_type="CElegansSubject",
                                                            namespace="ndx-multichannel-volume")
        f["general/subject/growth_stage"] = "YA"
        ids = f["processing/CalciumActivity"].create_group("NeuronIDs")
        ids.attrs.update(neurodata_type="SegmentationLabels", namespace="ndx-multichannel-volume")
        table = f["processing/CalciumActivity/CalciumSeriesSegmentation/NeuronSegmentation"]
        del table["ID_labels"]
        table["ID_labels"] = np.array([b"AVAL", b"AVAL?", b"", b"SAADL", b"SAADR"], dtype=object).astype("S")
        table["ID_labels_index"] = np.array([2, 3, 5])
        spec = f.require_group("specifications").require_group("ndx-multichannel-volume/0.1.12")
        if "namespace" not in spec:          # pynwb caches the namespace once an export loaded it
            spec["namespace"] = json.dumps({"namespaces": [{"name": "ndx-multichannel-volume"}]})
    rec = read_recordings(path)[0]
    np.testing.assert_array_equal(rec.traces, x)
    assert rec.roi_labels == ["AVAL/AVAL?", "", "SAADL/SAADR"]
