"""The CLI on the real mirror: batch ingest with bad files, idempotency, info, validate."""

import json
import shutil

import numpy as np
from click.testing import CliRunner

from activity import open_activity
from pipeline.cli import main


def test_ingesting_the_whole_mirror_adds_every_worm_and_names_the_bad_files(mirror_store):
    store, result = mirror_store
    assert result.exit_code == 1                       # the two Kato files carry no calcium
    assert "added 8 worm(s)" in result.output and "2 file(s) failed" in result.output
    assert "KatoEtAl2018.WT_Stim.0.nwb" in result.output and "no calcium traces" in result.output
    ds = open_activity(store)
    assert sorted(ds["dataset"].values.tolist()) == ["Dag2023"] * 7 + ["Scholz2018"]
    assert "Dag2023/2022-07-27-45" in ds["worm"].values.tolist()
    labelled = dict(zip(ds["worm_id"].values.tolist(), ds["observed"].sum("neuron").values.tolist()))
    assert labelled["2022-07-27-38"] == 86 and labelled["BrainScanner20180223_141721"] == 0
    assert all(len(s) == 64 for s in ds["source_sha256"].values)
    assert "NeuroPAL_labels_dict.jld2" in ds["extra_sources"].values[2]


def test_query_one_neuron_across_every_worm(mirror_store):
    ds = open_activity(mirror_store[0])
    aval = ds["calcium"].sel(neuron="AVAL").values
    assert aval.shape[0] == 8 and np.isfinite(aval).any(axis=1).sum() == 5


def test_reingesting_the_same_files_changes_nothing(mirror_store, mirror):
    store = mirror_store[0]
    before = sorted(p.stat().st_ino for p in store.rglob("*") if p.is_file())
    result = CliRunner().invoke(main, ["ingest", "activity", str(mirror / "activity" / "Dag2023"), "--store", str(store)])
    assert result.exit_code == 0 and "added 0 worm(s), skipped 7" in result.output
    assert sorted(p.stat().st_ino for p in store.rglob("*") if p.is_file()) == before


def test_info_and_validate(mirror_store):
    store = mirror_store[0]
    info = CliRunner().invoke(main, ["info", str(store)])
    assert info.exit_code == 0 and "Dag2023" in info.output and "Scholz2018" in info.output
    text = " ".join(info.output.split())                 # rich wraps long lines
    assert "Scholz2018 signal [units]: not stated in the file" in text
    assert "Dag2023 signal [units]: z-scored F/F20" in text
    assert "gaps in Scholz2018/BrainScanner20180223_141721: 125 grid points dropped (longest frame gap 41.2 s)" in text
    ok = CliRunner().invoke(main, ["validate", str(store)])
    assert ok.exit_code == 0 and "valid" in ok.output


def test_a_bad_file_in_a_batch_fails_alone_and_leaves_the_store_unchanged_by_it(tmp_path, flavell_files):
    good = flavell_files[2]
    bad = tmp_path / "2022-09-09-09-data.h5"
    bad.write_bytes(good.read_bytes()[:100_000])
    empty = tmp_path / "empty.nwb"
    empty.write_bytes(b"")
    store = tmp_path / "b.zarr"
    result = CliRunner().invoke(main, ["ingest", "activity", str(bad), str(good), str(empty), "--store", str(store)])
    assert result.exit_code == 1
    assert "added 1 worm(s)" in result.output and "2 file(s) failed" in result.output
    assert "empty.nwb" in result.output and "2022-09-09-09-data.h5" in result.output
    assert open_activity(store)["worm_id"].values.tolist() == [good.name.replace("-data.h5", "")]


def test_validate_reports_a_broken_store(tmp_path, flavell_files):
    store = tmp_path / "c.zarr"
    CliRunner().invoke(main, ["ingest", "activity", str(flavell_files[2]), "--store", str(store)])
    shutil.rmtree(store / "chunks")                    # every chunk of the repository lost
    result = CliRunner().invoke(main, ["validate", str(store)])
    assert result.exit_code == 1, result.output


def test_cli_ingests_connectomes_and_info_lists_each_source(tmp_path, mirror):
    store = tmp_path / "c.zarr"
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", "connectome", str(mirror / "connectome/White1986"), "--store", str(store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["info", str(store)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "white_1986_whole/tsv" in res.output and "6509" in res.output


def test_every_mirror_worm_states_signal_units_and_gaps(mirror_store):
    ds = open_activity(mirror_store[0])
    signal = dict(zip(ds["worm_id"].values.tolist(), ds["signal"].values.tolist()))
    units = dict(zip(ds["worm_id"].values.tolist(), ds["units"].values.tolist()))
    assert all(signal.values()) and all(units.values())
    assert signal["2022-07-26-31"] == "z-scored F/F20 (per ROI over the recording)" and units["2022-07-26-31"] == "1"
    assert units["BrainScanner20180223_141721"] == "none"
    assert ds["calcium"].attrs["signal"].startswith("differs between worms")
    dropped = dict(zip(ds["worm_id"].values.tolist(), ds["n_grid_dropped"].values.tolist()))
    assert dropped["BrainScanner20180223_141721"] == 125 and sum(dropped.values()) == 125
    meta = json.loads(str(ds["metadata"].sel(worm="Scholz2018/BrainScanner20180223_141721").values))
    assert meta["experimenter"] == ["Monika Scholz"] and meta["institution"] == "Princeton University"
