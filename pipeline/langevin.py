"""`wormflow analyze langevin`: LangevinFlow latent dynamics of the store's worms (issue 10),
against the GRU sequential VAE and the smoothing baseline, with provenance and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from analysis.sequences import store_sequences
from wormflow.core.errors import WormflowError
from pipeline.analyze import provenance_attrs, select_worms
from pipeline.storage import json_safe, save_checkpoint, write_zarr_atomic


def langevin_on_store(store: str | Path, out: str | Path, *, window_s: float = 30.0, held_out: float = 0.2,
                      max_neurons: int = 60, min_worm_fraction: float = 0.5, epochs: int = 150, latent: int = 8,
                      hidden: int = 64, test_fraction: float = 0.2, seed: int = 0, device: str = "auto",
                      worms=None, datasets=None, progress=None):
    """Fit LangevinFlow and the GRU VAE (Gaussian likelihood) to windows of the store's
    labelled calcium, and score held-out neurons (R^2 on test windows) and velocity
    decoding from the latents (cross-validated ridge), with the smoothing baseline beside.
    Writes ``out``/langevin.zarr and the model checkpoint. Returns (Dataset, summary, ds)."""
    from analysis.langevin import design

    ds = select_worms(open_activity(store), worms, datasets)
    try:
        seqs, worm_ids, names = store_sequences(ds, max_neurons=max_neurons,
                                                            min_worm_fraction=min_worm_fraction)
    except ValueError as exc:
        raise WormflowError(f"{store}: {exc}") from exc
    dt = store_fact(ds, "dt")
    length = max(4, int(round(window_s / dt)))
    velocity = [ds["behavior_velocity"].sel(worm=w).values[:len(s)] if "behavior_velocity" in ds
                else np.full(len(s), np.nan) for w, s in zip(worm_ids, seqs)]
    try:
        x, vel, where = design.windows(seqs, velocity, length)
        in_idx, out_idx, train, test = design.held_out_split(x, len(names), held_out, test_fraction, seed)
    except ValueError as exc:
        raise WormflowError(f"{store}: {exc}") from exc
    fits, metrics, base = design.compare(x, vel, in_idx, out_idx, train, test, epochs=epochs, latent=latent,
                                         hidden=hidden, seed=seed, device=device, progress=progress, where=where)
    lf = fits["langevin"]
    out = Path(out)
    save_checkpoint(lf, out / "langevin_model.npz")
    import xarray as xr

    model_names = list(metrics)
    result = xr.Dataset(
        {"heldout_r2": (("model",), [metrics[m]["heldout_r2"] for m in model_names]),
         "velocity_r2": (("model",), [metrics[m]["velocity_r2"] for m in model_names]),
         "latents": (("window", "time", "latent"), lf.latents(x).astype(np.float32)),
         "prediction": (("test_window", "time", "neuron"), lf.predict(x[test]).astype(np.float32)),
         "truth": (("test_window", "time", "neuron"), x[test].astype(np.float32)),
         "baseline_prediction": (("test_window", "time", "neuron"), base.astype(np.float32)),
         "velocity": (("window", "time"), vel.astype(np.float32)),
         "window_worm": (("window",), np.asarray(worm_ids, dtype=object)[where[:, 0]]),
         "window_start": (("window",), where[:, 1] * dt),
         "test_index": (("test_window",), test),
         "held_out": (("neuron",), np.isin(np.arange(len(names)), out_idx)),
         "loss_history": (("model", "epoch_axis", "split"), _histories(fits, model_names))},
        coords={"model": model_names, "neuron": names, "time": np.arange(length) * dt, "split": ["train", "validation"]})
    summary = {"n_worms": len(worm_ids), "n_neurons": len(names), "n_windows": len(x), "window_bins": length,
               "held_out_neurons": [names[i] for i in out_idx], "metrics": metrics}
    result.attrs.update({
        **provenance_attrs("langevin", store, ds, worm_ids),
        "parameters": json.dumps({"window_s": window_s, "held_out": held_out, "max_neurons": max_neurons,
                                  "min_worm_fraction": min_worm_fraction, "epochs": epochs, "latent": latent,
                                  "hidden": hidden, "test_fraction": test_fraction, "seed": seed,
                                  "device": lf.device}),
        "summary": json.dumps(json_safe(summary)),
        "checkpoint": str(out / "langevin_model.npz"),
    })
    write_zarr_atomic(result, out / "langevin.zarr")
    return result, summary, ds


def _histories(fits, model_names):
    longest = max(len(f.history) for f in fits.values())
    h = np.full((len(model_names), longest, 2), np.nan)
    for i, m in enumerate(model_names):
        if m in fits:
            rows = np.asarray([(tr, va) for _, tr, va in fits[m].history])
            h[i, :len(rows)] = rows
    return h


def langevin_figures(result, figures: str | Path) -> list[Path]:
    from pipeline.figures import heldout_traces, latent_trajectories

    figures = Path(figures)
    return [latent_trajectories(result, figures / "langevin_latents.png"),
            heldout_traces(result, figures / "langevin_heldout.png")]
