"""`wormflow analyze langevin` on the real Flavell worms of the mirror (a tiny, short
training: the checks are of plumbing, metrics and provenance, not of model quality)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.storage import load_checkpoint, open_result
from tests.pipeline.checks import assert_provenance_and_figures


@pytest.fixture(scope="module")
def langevin_run(mirror_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("langevin")
    args = ["analyze", "langevin", "--store", str(mirror_store[0]), "--out", str(out), "--epochs", "3",
            "--latent", "4", "--hidden", "16", "--max-neurons", "30", "--device", "cpu"]
    return out, CliRunner().invoke(main, args)


def test_the_networks_and_both_baselines_are_scored_on_held_out_neurons_and_velocity(langevin_run):
    out, result = langevin_run
    assert result.exit_code == 0, result.output
    ds = open_result(out / "langevin.zarr")
    assert list(ds.model.values) == ["langevin", "gru", "smoothing", "ridge"]
    assert np.isfinite(ds.heldout_r2.values).all() and np.isfinite(ds.velocity_r2.values).all()
    summary = json.loads(ds.attrs["summary"])
    # the default decoder reads the encoder too: the share that goes around the latent is reported
    assert np.isfinite(summary["metrics"]["langevin"]["heldout_r2_latent_only"])
    assert summary["n_worms"] == 5 and summary["window_bins"] == 60          # 30 s windows of the 0.5 s grid
    held = [str(n) for n, h in zip(ds.neuron.values, ds.held_out.values) if h]
    assert held == summary["held_out_neurons"] and len(held) == 6
    assert np.isfinite(ds.truth.values[..., ds.held_out.values]).all()       # held out only where always seen
    assert "velocity decoding" in result.output


def test_the_checkpoint_reloads_and_reproduces_the_saved_latents(langevin_run):
    out, _ = langevin_run
    ds = open_result(out / "langevin.zarr")
    model = load_checkpoint(out / "langevin_model.npz")
    assert model.config.likelihood == "gaussian" and model.config.latent == 4
    test = ds.truth.values
    np.testing.assert_allclose(model.latents(test), ds.latents.values[ds.test_index.values], rtol=1e-4, atol=1e-5)


def test_output_carries_provenance_and_figures(langevin_run):
    out, _ = langevin_run
    ds = open_result(out / "langevin.zarr")
    worms = sorted(set(ds.window_worm.values))
    params = assert_provenance_and_figures(ds, out, worms, "langevin",
                                           ("langevin_latents.png", "langevin_heldout.png"))
    assert params["epochs"] == 3 and params["device"] == "cpu"
