"""Analysis results as one published collection: a config (or a few) per analysis.

Every table keeps the result's own coordinates: worms by the activity store's ids,
times in seconds on the store's grid (or the analysis's bins, in seconds). Rows of one
worm carry that worm's input licence; tables fitted across worms (couplings, components,
scores) carry the combination of all their worms' inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.publish.cards import write_card
from pipeline.publish.tables import Collection, lists, nested, strs, write_config

RESULTS = ("tsnet", "hmmglm", "ntf", "langevin")     # analysis -> analysis/<name>.zarr


def _worm_inputs(res) -> dict[str, str]:
    """Worm id -> sha256 of its raw file, from the result's coordinate or provenance attribute."""
    if "source_sha256" in res.coords:
        return dict(zip(strs(res.worm.values), strs(res.source_sha256.values)))
    return {str(k): str(v) for k, v in json.loads(res.attrs.get("source_sha256", "{}")).items()}


def _number(value) -> float:
    """An attribute as a float; NaN where it is absent or null (undefined)."""
    return np.nan if value is None else float(value)


def _dataset(worm: str) -> str:
    return worm.split("/")[0]


def _tsnet(res, col: Collection) -> str:
    import pyarrow as pa

    from analysis.tsnet import CONSTRUCTIONS

    sha = _worm_inputs(res)
    unit = next(d for d in res["n_samples"].dims if d != "worm")
    metrics = [str(m) for m in res.metric.values]
    out = {k: [] for k in ("construction", "source_dataset", "worm", unit, "n_samples", *metrics, "degree_counts")}
    inputs = []
    for c in [c for c in CONSTRUCTIONS if c in res.data_vars]:
        values, counts = res[c].transpose("worm", unit, "metric").values, res[f"{c}_degree_counts"].values
        for w in range(res.sizes["worm"]):
            worm = str(res.worm.values[w])
            for u in range(res.sizes[unit]):
                if not np.isfinite(values[w, u, 0]):
                    continue
                out["construction"].append(c)
                out["source_dataset"].append(str(res.dataset.values[w]))
                out["worm"].append(worm)
                out[unit].append(str(res[unit].values[u]))
                out["n_samples"].append(int(res["n_samples"].values[w, u]))
                for m, v in zip(metrics, values[w, u]):
                    out[m].append(float(v))
                out["degree_counts"].append(counts[w, u])
                inputs.append([sha[worm]])
    columns = {k: pa.array(v) for k, v in out.items() if k != "degree_counts"}
    columns["degree_counts"] = lists(out["degree_counts"], np.float64)
    write_config(col, "tsnet", columns, inputs=inputs, note=(
        "one row per visibility-graph construction and observed trace: the metrics of "
        "`analysis.tsnet.graph_metrics` (with each fit's phase-randomized-surrogate value beside it) and the degree "
        f"counts (k = 0..k_max, the last bin k >= k_max). Parameters: `{res.attrs.get('tsnet_params', '')}`."))
    hvg = [v for v, c in zip(out.get("hvg_lambda", []), out["construction"]) if c == "horizontal" and np.isfinite(v)]
    nul = [v for v, c in zip(out.get("hvg_lambda_null", []), out["construction"])
           if c == "horizontal" and np.isfinite(v)]
    line = f"- **tsnet**: {len(out['construction'])} graphs of {res.sizes['worm']} worms"
    if hvg:
        line += f"; HVG degree-distribution exponent λ median {np.median(hvg):.3f}"
        line += f" against {np.median(nul):.3f} on phase-randomized surrogates" if nul else ""
    return line + "."


def _hmmglm(res, col: Collection) -> str:
    import pyarrow as pa

    sha = _worm_inputs(res)
    worms = strs(res.worm.values)
    every = list(dict.fromkeys(sha[w] for w in worms))
    times = res.time.values
    states, posterior, tvals = [], [], []
    for w in worms:
        st = res.states.sel(worm=w).values
        keep = st >= 0
        states.append(st[keep])
        posterior.append(res.posterior.sel(worm=w).values[keep])
        tvals.append(times[keep])
    write_config(col, "hmmglm_states", {
        "worm": pa.array(worms), "source_dataset": pa.array([_dataset(w) for w in worms]),
        "time_in_seconds": lists(tvals, np.float64), "state": lists(states, np.int16),
        "posterior": nested(posterior, np.float32)}, inputs=[[sha[w]] for w in worms], note=(
        "one row per worm: the most probable state at each fitted time of the store's grid (seconds) and the "
        "posterior probability of every state."))
    types = strs(res.type.values)
    s_idx, post_idx, pre_idx = np.meshgrid(np.arange(res.sizes["state"]), np.arange(res.sizes["post"]),
                                           np.arange(res.sizes["pre"]), indexing="ij")
    flat = (s_idx.ravel(), post_idx.ravel(), pre_idx.ravel())
    post, pre = strs(res.post.values), strs(res.pre.values)
    weights = res.weights.transpose("state", "post", "pre").values
    kinds = res.connection_types.transpose("state", "post", "pre").values
    prob = res.type_probability.transpose("state", "post", "pre", "type").values
    columns = {"state": pa.array(flat[0].astype(np.int32)), "post": pa.array([post[i] for i in flat[1]]),
               "pre": pa.array([pre[i] for i in flat[2]]), "weight": pa.array(weights[flat]),
               "connection_type": pa.array([{-1: "inhibitory", 0: "none", 1: "excitatory"}[int(k)]
                                            for k in kinds[flat]])}
    for t, name in enumerate(types):
        columns[f"p_{name}"] = pa.array(prob[flat + (np.full(flat[0].shape, t),)].astype(np.float32))
    if "anatomical_synapse" in res:
        columns["anatomical_synapse"] = pa.array(res.anatomical_synapse.values[flat[1], flat[2]])
    write_config(col, "hmmglm_couplings", columns, inputs=every, note=(
        "one row per (state, post, pre) neuron pair: the coupling weight, its connection type and the posterior "
        "probability of each type, and whether the connectome has a synapse there."))
    trans = res.transition_matrix.values
    write_config(col, "hmmglm_model", {
        "state": pa.array(np.arange(res.sizes["state"], dtype=np.int32)),
        "initial_probability": pa.array(res.initial.values.astype(np.float64)),
        "transition_probability": lists(list(trans), np.float64),
        "neuron": pa.array([post] * res.sizes["state"], type=pa.list_(pa.string())),
        "bias": lists(list(res.bias.values), np.float64), "noise": lists(list(res.noise.values), np.float64)},
        inputs=every, note=("one row per state: its initial and transition probabilities (to each state) and the "
                            "per-neuron bias and noise of its emission."))
    summary = json.loads(res.attrs.get("summary", "{}"))
    b = summary.get("behaviour", {})
    line = (f"- **hmmglm**: {summary.get('n_states')} states, {summary.get('n_neurons')} neurons, "
            f"{summary.get('prior')} prior; converged: {bool(int(res.attrs.get('converged', 0)))} after "
            f"{res.attrs.get('n_iter')} iterations")
    if b.get("held_out_mean") is not None:
        line += f"; states vs `{b.get('variable')}` balanced accuracy {b['held_out_mean']:.3f} (held out by worm)"
    return line + "."


def _ntf(res, col: Collection) -> str:
    import pyarrow as pa

    sha = _worm_inputs(res)
    worms = strs(res.worm.values)
    every = list(dict.fromkeys(sha[w] for w in worms))
    comps = res.component.values.astype(np.int32)
    n_pairs = res.sizes["pair"]
    a, b = strs(res.neuron_a.values), strs(res.neuron_b.values)
    loading = res.pair_loading.transpose("pair", "component").values
    write_config(col, "ntf_pairs", {
        "component": pa.array(np.repeat(comps, n_pairs)), "neuron_a": pa.array(a * len(comps)),
        "neuron_b": pa.array(b * len(comps)), "loading": pa.array(loading.T.ravel())}, inputs=every,
        note="one row per (component, neuron pair): the pair's loading (its co-activity in that component).")
    write_config(col, "ntf_time", {
        "component": pa.array(comps), "time_in_seconds": lists([res.time.values] * len(comps), np.float64),
        "loading": lists(list(res.time_loading.transpose("component", "time").values), np.float64)}, inputs=every,
        note="one row per component: its loading at each time bin (bin start on the store's grid, seconds).")
    wl = res.worm_loading.transpose("worm", "component").values
    write_config(col, "ntf_worms", {
        "worm": pa.array([w for w in worms for _ in comps]),
        "source_dataset": pa.array([_dataset(w) for w in worms for _ in comps]),
        "component": pa.array(np.tile(comps, len(worms))), "loading": pa.array(wl.ravel()),
        "background": pa.array(np.repeat(res.background.values.astype(np.float64), len(comps)))},
        inputs=[[sha[w]] for w in worms for _ in comps],
        note="one row per (worm, component): the worm's loading and its fitted background (chance co-activity).")
    neurons = strs(res.neuron.values)
    write_config(col, "ntf_neurons", {
        "component": pa.array(np.repeat(comps, len(neurons))), "neuron": pa.array(neurons * len(comps)),
        "community": pa.array(res.community.values.ravel()), "core": pa.array(res.core.values.ravel()),
        "leiden": pa.array(res.leiden.values.ravel())}, inputs=every, note=(
        "one row per (component, neuron): its weighted-SBM block, whether it is in the component's core, and the "
        "Leiden community for comparison."))
    line = (f"- **ntf**: rank {res.attrs.get('rank')}, relative error {_number(res.attrs.get('error')):.3f}"
            + (f" against {_number(res.attrs['null_error']):.3f} on the circular-shift null"
               if "null_error" in res.attrs else ""))
    stability = _number(res.attrs.get("stability"))
    line += f", restart stability {stability:.2f}" if np.isfinite(stability) else ", one restart (no stability)"
    return line + "."


def _langevin(res, col: Collection) -> str:
    import pyarrow as pa

    sha = _worm_inputs(res)
    models = strs(res.model.values)
    every = list(dict.fromkeys(sha.values()))
    write_config(col, "langevin_scores", {
        "model": pa.array(models), "heldout_r2": pa.array(res.heldout_r2.values.astype(np.float64)),
        "velocity_r2": pa.array(res.velocity_r2.values.astype(np.float64))}, inputs=every, note=(
        "one row per model (LangevinFlow, the GRU VAE, smoothing): R² of held-out neurons on test windows, and of "
        "the worm's velocity decoded from the latents (cross-validated ridge)."))
    ww = strs(res.window_worm.values)
    write_config(col, "langevin_windows", {
        "worm": pa.array(ww), "source_dataset": pa.array([_dataset(w) for w in ww]),
        "window_start_s": pa.array(res.window_start.values.astype(np.float64)),
        "time_in_window_s": lists([res.time.values] * len(ww), np.float64),
        "latent": nested(list(res.latents.values), np.float32),
        "velocity": lists(list(res.velocity.values), np.float32)}, inputs=[[sha[w]] for w in ww], note=(
        "one row per window: its worm and start time (seconds on the store's grid), the LangevinFlow latent at each "
        "time of the window, and the worm's velocity there."))
    test = res.test_index.values
    neurons, held = strs(res.neuron.values), res.held_out.values.astype(bool)
    rows = [(k, j) for k in range(len(test)) for j in range(len(neurons))]
    write_config(col, "langevin_heldout", {
        "worm": pa.array([ww[test[k]] for k, _ in rows]),
        "window_start_s": pa.array([float(res.window_start.values[test[k]]) for k, _ in rows]),
        "neuron": pa.array([neurons[j] for _, j in rows]), "held_out": pa.array([bool(held[j]) for _, j in rows]),
        "recorded": lists([res.truth.values[k, :, j] for k, j in rows], np.float32),
        "prediction": lists([res.prediction.values[k, :, j] for k, j in rows], np.float32),
        "smoothing": lists([res.baseline_prediction.values[k, :, j] for k, j in rows], np.float32)},
        inputs=[[sha[ww[test[k]]]] for k, _ in rows], note=(
        "one row per (test window, neuron): the recorded trace, LangevinFlow's prediction and the smoothing "
        "baseline's; `held_out` neurons were never shown to the encoder."))
    by = dict(zip(models, zip(res.heldout_r2.values, res.velocity_r2.values)))
    return "- **langevin**: " + "; ".join(f"{m} held-out R² {h:.3f}, velocity R² {v:.3f}" for m, (h, v) in by.items()) \
        + "."


def found_results(folder: Path) -> dict[str, Path]:
    """Analysis -> its result store in ``folder`` (an analysis output folder), for those present."""
    from wormflow.core.repository import store_kind

    return {name: folder / f"{name}.zarr" for name in RESULTS if store_kind(folder / f"{name}.zarr") == "analysis"}


def publish_analysis(folder: Path, out: Path, repo: str) -> Collection:
    """Every analysis result in ``folder`` (tsnet, hmmglm, ntf, langevin) as configs of one collection."""
    from pipeline.storage import open_result

    col = Collection("analysis", out)
    builders = {"tsnet": _tsnet, "hmmglm": _hmmglm, "ntf": _ntf, "langevin": _langevin}
    headlines, provenance, worms, shas = [], [], {}, {}
    for name, path in found_results(Path(folder)).items():
        res = open_result(path).load()
        headlines.append(builders[name](res, col))
        provenance.append(f"- `{name}`: wormflow {res.attrs.get('wormflow_version')}, made "
                          f"{res.attrs.get('created', '?')} from store `{res.attrs.get('store')}` at snapshot "
                          f"`{res.attrs.get('store_snapshot')}`; parameters "
                          f"`{res.attrs.get('parameters') or res.attrs.get('tsnet_params', '')}`.")
        for w, s in _worm_inputs(res).items():
            worms[w] = s
            shas[s] = w
    default = next(iter(col.configs))
    write_card(col, "analysis.md", pretty="C. elegans whole-brain activity: analysis results (wormflow)",
               tags=["neuroscience", "c-elegans", "time-series", "complex-networks", "hidden-markov-model",
                     "tensor-factorization", "latent-dynamics"],
               task_categories=["time-series-forecasting", "graph-ml"], default=default, repo=repo,
               names=sorted({_dataset(w) for w in worms}),
               values={"n_worms": len(worms), "analyses": ", ".join(found_results(Path(folder))),
                       "headlines": "\n".join(headlines), "provenance": "\n".join(provenance),
                       "sources": "\n".join(f"- `{w}`: sha256 `{s}`" for s, w in shas.items())})
    return col
