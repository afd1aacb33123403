"""`wormflow analyze hmmglm` on the real Flavell worms of the mirror, against reversals and
a real connectome."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from activity import open_activity
from pipeline.cli import main
from pipeline.storage import open_result
from tests.pipeline.checks import assert_provenance_and_figures


@pytest.fixture(scope="module")
def white_connectome(mirror, tmp_path_factory):
    store = tmp_path_factory.mktemp("c") / "connectome.zarr"
    csv = mirror / "connectome" / "White1986" / "aconnectome_white_1986_whole.csv"
    result = CliRunner().invoke(main, ["ingest", "connectome", str(csv), "--store", str(store)])
    assert result.exit_code == 0, result.output
    return store


@pytest.fixture(scope="module")
def hmmglm_run(mirror_store, white_connectome, tmp_path_factory):
    out = tmp_path_factory.mktemp("hmmglm")
    args = ["analyze", "hmmglm", "--store", str(mirror_store[0]), "--out", str(out), "--states", "2",
            "--max-neurons", "25", "--connectome", str(white_connectome), "--connectome-prior", "--restarts", "2"]
    return out, CliRunner().invoke(main, args)


def test_the_labelled_flavell_worms_get_states_scored_against_reversals(hmmglm_run):
    out, result = hmmglm_run
    assert result.exit_code == 0, result.output
    ds = open_result(out / "hmmglm.zarr")
    assert ds.sizes["worm"] == 5 and ds.sizes["state"] == 2 and ds.sizes["post"] == 25
    assert all(w.startswith("Dag2023/") for w in ds.worm.values)
    post = ds.posterior.values
    real = ds.states.values >= 0
    np.testing.assert_allclose(post[real].sum(-1), 1, atol=1e-5)
    summary = json.loads(ds.attrs["summary"])
    b = summary["behaviour"]
    assert b["variable"] == "behavior_reversal_vec" and len(b["held_out"]) == 5
    assert 0 <= b["held_out_mean"] <= 1
    assert "balanced accuracy" in result.output
    best = max(v["held_out_mean"] for v in b["baselines"].values() if v["held_out_mean"] is not None)
    assert ("--selection command" in result.output) == (b["held_out_mean"] <= best)


def test_the_learned_prior_is_compared_with_the_connectome_it_started_from(hmmglm_run):
    out, result = hmmglm_run
    ds = open_result(out / "hmmglm.zarr")
    c = json.loads(ds.attrs["summary"])["connectome"]
    assert c["used_as_prior"] and c["source"].startswith("white_1986")
    assert c["n_synapses"] > 0 and 0 <= c["auc"] <= 1
    assert ds["anatomical_synapse"].dtype == bool
    gp = ds.global_prior.values
    np.testing.assert_allclose(gp.sum(-1), 1, rtol=1e-6)
    assert "ROC AUC" in result.output


def test_output_carries_provenance_and_figures(hmmglm_run, mirror):
    out, _ = hmmglm_run
    ds = open_result(out / "hmmglm.zarr")
    params = assert_provenance_and_figures(
        ds, out, ds.worm.values, "hmmglm",
        ("hmmglm_states.png", "hmmglm_couplings.png", "hmmglm_prior_vs_connectome.png"))
    assert params["n_states"] == 2 and params["prior"] == "onehot" and params["connectome_prior"]


def test_impossible_requests_are_refused_with_the_reason(mirror_store, tmp_path):
    poisson = CliRunner().invoke(main, ["analyze", "hmmglm", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                        "--emission", "poisson"])
    assert poisson.exit_code == 2 and "holds calcium" in poisson.output
    no_conn = CliRunner().invoke(main, ["analyze", "hmmglm", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                        "--connectome-prior"])
    assert no_conn.exit_code == 2 and "--connectome" in no_conn.output
    unknown = CliRunner().invoke(main, ["analyze", "hmmglm", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                        "--neuron", "AVAL", "--neuron", "NOTANEURON"])
    assert unknown.exit_code == 2 and "NOTANEURON" in unknown.output
    assert not (tmp_path / "hmmglm.zarr").exists()


def test_states_are_on_the_stores_coordinates_so_align_pairs_the_same_moments(hmmglm_run, mirror_store):
    import xarray as xr

    out, _ = hmmglm_run
    states = open_result(out / "hmmglm.zarr").states
    store = open_activity(mirror_store[0])
    assert states.dims == ("worm", "time") and states.time.attrs["units"] == "s"
    np.testing.assert_allclose(states.time.values, store.time.values[:states.sizes["time"]])
    a, b = xr.align(states, store.behavior_reversal_vec, join="inner")
    assert a.sizes == b.sizes and a.sizes["worm"] == 5
    np.testing.assert_array_equal(a.time.values, b.time.values)


def test_on_the_command_neurons_the_states_find_reversals_in_unseen_worms_above_both_baselines(mirror_store):
    """The real Flavell worms, held out by worm: a 3-state one-hot HMM-GLM on the command
    neurons alone, fitted on the other worms, against a Gaussian HMM on 5 PCs (3 states,
    same protocol) and a logistic regression from the reversal neurons trained on the
    other worms' reversal labels, all measured here."""
    from analysis.hmmglm.baselines import compare_on_behaviour
    from analysis.sequences import COMMAND_CLASSES, REVERSAL_CLASSES, store_sequences

    ds = open_activity(mirror_store[0])
    ds = ds.sel(worm=[w for w in ds.worm.values if str(w).startswith("Dag2023/")])
    seqs, worms, names = store_sequences(ds, keep_only=True)
    assert {n[:3] for n in names} <= set(COMMAND_CLASSES) and len(worms) >= 4
    b = ds.behavior_reversal_vec.sel(worm=worms).values
    rev = [i for i, n in enumerate(names) if n[:3] in REVERSAL_CLASSES]
    out = compare_on_behaviour(seqs, [b[i, :len(s)] for i, s in enumerate(seqs)], rev, 3)
    assert out["hmmglm_mean"] > out["logistic_mean"] and out["hmmglm_mean"] > out["gaussian_hmm_mean"], out
    assert out["hmmglm_mean"] >= 0.75


def test_selection_command_fits_the_command_neurons_alone(mirror_store, tmp_path):
    result = CliRunner().invoke(main, ["analyze", "hmmglm", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                       "--selection", "command", "--states", "2", "--restarts", "1"])
    assert result.exit_code == 0, result.output
    ds = open_result(tmp_path / "hmmglm.zarr")
    assert {str(n)[:3] for n in ds.post.values} == {"AVA", "AVB", "AVE", "AIB", "RIB", "RIM"}
    assert json.loads(ds.attrs["parameters"])["selection"] == "command"
