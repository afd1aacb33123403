"""Figures of analysis results (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(text) -> str:
    """A name from the data (worm id, dataset, neuron) drawn as it is: matplotlib reads a
    '$...$' pair as mathtext, and a crafted worm id would otherwise fail the figure."""
    return str(text).replace("$", r"\$")


def degree_distributions(result, path: str | Path, *, constructions=None, reference_series: int = 20) -> Path:
    """One panel per construction: the pooled degree distribution P(k) of every dataset against
    iid noise of the median trace length (simulated through the same construction; the exact
    (1/3)(2/3)^(k-2) line is added for horizontal VGs)."""
    from analysis import tsnet

    plt = _pyplot()
    constructions = constructions or [v for v in result.data_vars if v in tsnet.CONSTRUCTIONS]
    k = result.degree.values
    n_ref = int(result.attrs.get("median_trace_length") or 0)
    params = _params(result)
    fig, axes = plt.subplots(1, len(constructions), figsize=(5.2 * len(constructions), 4), squeeze=False)
    for ax, c in zip(axes[0], constructions):
        counts = result[f"{c}_degree_counts"]
        for name in np.unique(result.dataset.values):
            pooled = counts.isel(worm=result.dataset.values == name).sum(
                [d for d in counts.dims if d != "degree"]).values
            if pooled.sum() > 0:
                ax.semilogy(k, np.where(pooled > 0, pooled / pooled.sum(), np.nan), "o-", ms=3, label=plain(name))
        if n_ref > 10:
            ref = tsnet.iid_reference(c, n_ref, k_max=int(k[-1]), n_series=reference_series, **params)
            ax.semilogy(k, np.where(ref > 0, ref, np.nan), "k--", lw=1, label=f"iid noise, n={n_ref}")
        if c == "horizontal":
            ax.semilogy(k, np.where(k >= 2, tsnet.hvg_iid_distribution(k), np.nan), "k:", lw=1,
                        label="(1/3)(2/3)$^{k-2}$")
        ax.set_xlabel("degree k (last bin: k ≥ %d)" % k[-1])
        ax.set_ylabel("P(k)")
        ax.set_title(f"{c} graphs")
        ax.legend(fontsize=7)
    n_traces = int(np.isfinite(result[constructions[0]].isel(metric=0).values).sum())
    caption = (f"Degree distributions P(k) of the {', '.join(constructions)} visibility graphs, pooled within "
               f"each dataset ({n_traces} traces in all), against iid noise of the median trace length ({n_ref} samples) "
               "through the same construction.")
    if "horizontal" in constructions and "hvg_lambda" in result.metric.values:
        lam = result["horizontal"].sel(metric="hvg_lambda").values
        lam = lam[np.isfinite(lam)]
        if lam.size:
            caption += (f" Horizontal graphs: median fitted exponent λ {np.median(lam):.3f} against ln(3/2) = 0.405 "
                        "for iid noise.")
    return _save(plt, fig, path, caption)


def metric_heatmap(result, construction: str, metric: str, path: str | Path) -> Path:
    """Units (neurons or ROIs) observed in at least one worm by worm, coloured by ``metric``."""
    plt = _pyplot()
    da = result[construction].sel(metric=metric)
    unit = next(d for d in da.dims if d != "worm")
    da = da.dropna(unit, how="all").dropna("worm", how="all").transpose(unit, "worm")
    values = np.ma.masked_invalid(da.values)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.45 * da.sizes["worm"]), 2 + 0.12 * max(da.sizes[unit], 1)))
    im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xticks(range(da.sizes["worm"]), [plain(w) for w in da.worm.values], rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(da.sizes[unit]), [plain(u) for u in da[unit].values], fontsize=5)
    ax.set_title(f"{construction} VG: {metric}" if construction in ("natural", "horizontal") else
                 f"{construction} network: {metric}")
    fig.colorbar(im, ax=ax, label=metric, fraction=0.06, shrink=0.5 if da.sizes[unit] > 40 else 1.0)
    finite = da.values[np.isfinite(da.values)]
    caption = (f"{metric} of the {construction} graph of every trace ({finite.size} traces, {da.sizes[unit]} "
               f"{unit}s by {da.sizes['worm']} worms); median {np.median(finite):.3f}." if finite.size else
               f"{metric} of the {construction} graph of every trace: no finite value.")
    null = {"hvg_lambda": "hvg_lambda_null", "nvg_gamma": "nvg_gamma_null"}.get(metric)
    if null and finite.size and null in result[construction].metric.values:
        own = result[construction].sel(metric=metric).values.ravel()
        sur = result[construction].sel(metric=null).values.ravel()
        both = np.isfinite(own) & np.isfinite(sur)
        if both.any():
            caption += (f" The same fit on phase-randomized surrogates (same spectrum): median {np.median(sur[both]):.3f};"
                        f" the trace's value is below its surrogate's in {100 * (own[both] < sur[both]).mean():.0f}%"
                        " of traces.")
        if metric == "hvg_lambda":
            k_min = result[construction].sel(metric="hvg_k_min").values.ravel()
            caption += (f" Fitted on each trace's tail k >= k_min chosen by the KS rule (median k_min "
                        f"{np.nanmedian(k_min):.0f}); iid noise gives ln(3/2) = 0.405.")
    return _save(plt, fig, path, caption)


def exponent_vs_null(result, construction: str, path: str | Path) -> Path | None:
    """Histogram of each trace's VG exponent beside that of its phase-randomized surrogate."""
    metric, null = (("hvg_lambda", "hvg_lambda_null") if construction == "horizontal"
                    else ("nvg_gamma", "nvg_gamma_null"))
    if construction not in result or null not in result[construction].metric.values:
        return None
    own = result[construction].sel(metric=metric).values.ravel()
    sur = result[construction].sel(metric=null).values.ravel()
    both = np.isfinite(own) & np.isfinite(sur)
    if not both.any():
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.linspace(min(own[both].min(), sur[both].min()), max(own[both].max(), sur[both].max()), 40)
    ax.hist(own[both], bins=bins, alpha=0.7, label=f"traces (median {np.median(own[both]):.3f})")
    ax.hist(sur[both], bins=bins, alpha=0.6, color="0.5", label=f"surrogates (median {np.median(sur[both]):.3f})")
    if construction == "horizontal":
        ax.axvline(np.log(1.5), color="k", lw=0.8, ls="--", label="iid, ln 3/2")
    ax.set_xlabel(metric)
    ax.set_ylabel("traces")
    ax.legend(fontsize=7)
    caption = (f"{metric} of {int(both.sum())} traces against the same fit on a phase-randomized surrogate of each "
               f"(same power spectrum, random phases): below the surrogate in {100 * (own[both] < sur[both]).mean():.0f}%"
               f" of traces, median difference {np.median(own[both] - sur[both]):+.3f}.")
    return _save(plt, fig, path, caption)


def state_rasters(result, ds, path: str | Path, behaviour: str = "behavior_reversal_vec") -> Path:
    """One row per worm: the most probable state over time (colour band), with the
    behaviour (e.g. reversals) and, when the store has it, the velocity beneath."""
    plt = _pyplot()
    rows = "worm" if "worm" in result.states.dims else "sequence"
    worms = [str(w) for w in result[rows].values]
    n_states = result.sizes["state"]
    from activity.store import store_fact

    dt = store_fact(ds, "dt")
    fig, axes = plt.subplots(len(worms), 1, figsize=(11, 1.0 + 1.1 * len(worms)), squeeze=False, sharex=True)
    cmap = plt.get_cmap("tab10", max(n_states, 2))
    for ax, w in zip(axes[:, 0], worms):
        st = result.states.sel({rows: w}).values.astype(float)
        st[st < 0] = np.nan
        t = np.arange(len(st)) * dt
        ax.imshow(st[None, :], aspect="auto", cmap=cmap, vmin=-0.5, vmax=max(n_states, 2) - 0.5,
                  extent=(0, len(st) * dt, 0.55, 1.0), interpolation="nearest")
        if behaviour in ds:
            b = ds[behaviour].sel(worm=w).values[:len(st)]
            ax.fill_between(t, 0.05, 0.05 + 0.4 * np.nan_to_num(b), step="post", color="k", alpha=0.7, lw=0)
        if "behavior_velocity" in ds:
            v = ds["behavior_velocity"].sel(worm=w).values[:len(st)]
            if np.isfinite(v).any():
                scale = np.nanmax(np.abs(v)) or 1.0
                ax.plot(t, 0.25 + 0.2 * v / scale, color="tab:red", lw=0.6)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.78], ["behaviour", "state"], fontsize=6)
        ax.set_title(plain(w), fontsize=7, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(s)) for s in range(n_states)]
    fig.legend(handles + [plt.Rectangle((0, 0), 1, 1, color="k", alpha=0.7), plt.Line2D([], [], color="tab:red")],
               [f"state {s}" for s in range(n_states)] + [behaviour.replace("behavior_", ""), "velocity"],
               loc="upper right", fontsize=7, ncol=n_states + 2)
    summary = _summary(result)
    caption = (f"HMM-GLM ({summary.get('prior', '?')} prior, {n_states} states, {summary.get('n_neurons', '?')} "
               f"neurons): the most probable state of each worm over time, with {behaviour.replace('behavior_', '')} "
               "(black) and velocity (red) beneath.")
    b = summary.get("behaviour", {})
    if b.get("held_out_mean") is not None:
        per = ", ".join(f"{v:.2f}" for v in b.get("held_out", []))
        caption += (f" States predict {b['variable'].replace('behavior_', '')} at balanced accuracy "
                    f"{b['held_out_mean']:.3f} held out by worm (per worm {per}); chance is 0.5.")
        base = b.get("baselines", {})
        named = {"gaussian_hmm_pcs": "a Gaussian HMM on 5 PCs", "logistic_reversal_neurons":
                 "a logistic regression from the reversal neurons (trained on the other worms)"}
        scored = [f"{named[k]} {v['held_out_mean']:.3f}" for k, v in base.items()
                  if k in named and v.get("held_out_mean") is not None]
        if scored:
            caption += " Baselines on the same worms: " + "; ".join(scored) + "."
    caption += f" {_convergence(result)}"
    return _save(plt, fig, path, caption)


def coupling_matrices(result, path: str | Path) -> Path:
    """Each state's coupling matrix W[post, pre] between neurons, on one colour scale set by
    the couplings between different neurons; each neuron's own history term (the diagonal,
    an autoregression an order of magnitude larger) is greyed out and stated in the caption."""
    plt = _pyplot()
    w = np.array(result.weights.values, dtype=float)
    n_states = w.shape[0]
    eye = np.eye(w.shape[1], dtype=bool)
    diagonal = w[:, eye]
    w[:, eye] = np.nan
    lim = np.nanpercentile(np.abs(w), 99) if np.isfinite(w).any() else 1.0
    lim = lim or 1.0
    fig, axes = plt.subplots(1, n_states, figsize=(3.6 * n_states + 1, 3.8), squeeze=False)
    names = [plain(n) for n in result.post.values]
    for s, ax in enumerate(axes[0]):
        im = ax.imshow(w[s], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"state {s}", fontsize=9)
        step = max(1, len(names) // 20)
        ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=5)
        ax.set_yticks(range(0, len(names), step), names[::step], fontsize=5)
        ax.set_xlabel("pre", fontsize=7)
        if s == 0:
            ax.set_ylabel("post", fontsize=7)
    fig.colorbar(im, ax=axes[0, -1], fraction=0.046, label="coupling W")
    off = np.abs(w[np.isfinite(w)])
    caption = (f"HMM-GLM coupling matrices W[post, pre], one per state, on a common scale (±{lim:.3g}, the 99th "
               f"percentile of |W| between different neurons; median |W| {np.median(off) if off.size else np.nan:.3g}). "
               f"The diagonal (each neuron's own history term) is grey: median {np.median(diagonal):.3g}, range "
               f"{np.min(diagonal):.3g} to {np.max(diagonal):.3g}.")
    if "connection_types" in result:
        types = result.connection_types.values
        nonzero = [(types[s][~eye] != 0).mean() for s in range(n_states)]
        caption += " Share of neuron pairs with a connection: " + ", ".join(
            f"state {s} {f:.2f}" for s, f in enumerate(nonzero)) + "."
    return _save(plt, fig, path, caption)


def prior_vs_connectome(result, path: str | Path) -> Path:
    """The learned global prior (P(exc) - P(inh), and P(connection)) next to the anatomical
    synapses of the same neuron pairs."""
    plt = _pyplot()
    panels = []
    if "global_prior" in result:
        gp = result.global_prior.values
        panels.append(("learned P(exc) - P(inh)", gp[..., 2] - gp[..., 0], "RdBu_r", (-1, 1)))
        panels.append(("learned P(connection)", 1 - gp[..., 1], "viridis", (0, 1)))
    else:
        w = np.abs(result.weights.values).max(0)
        panels.append(("max over states |W|", w, "viridis", (0, float(np.nanmax(w)) or 1.0)))
    if "anatomical_synapse" in result:
        panels.append(("anatomical synapse (chemical or gap junction)", result.anatomical_synapse.values.astype(float),
                       "Greys", (0, 1)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    names = [plain(n) for n in result.post.values]
    step = max(1, len(names) // 20)
    for ax, (title, m, cmap, (lo, hi)) in zip(axes[0], panels):
        im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=5)
        ax.set_yticks(range(0, len(names), step), names[::step], fontsize=5)
        ax.set_xlabel("pre", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[0, 0].set_ylabel("post", fontsize=7)
    caption = "The HMM-GLM's learned connection prior beside the anatomical synapses of the same neuron pairs."
    c = _summary(result).get("connectome", {})
    if c.get("auc") is not None:
        caption += (f" Against {c.get('source')}: P(connection) is {c['p_connection_synapse']:.3f} on the "
                    f"{c['n_synapses']} pairs with a synapse and {c['p_connection_none']:.3f} on the others "
                    f"(AUC {c['auc']:.3f}, 0.5 is chance)")
        if c.get("n_signed"):
            caption += f"; the learned sign agrees with the predicted synaptic sign on {c['sign_agreement']:.2f} " \
                       f"of {c['n_signed']} signed pairs"
        caption += "."
    return _save(plt, fig, path, caption)


def _summary(result) -> dict:
    import json

    raw = result.attrs.get("summary")
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


def _convergence(result) -> str:
    converged = result.attrs.get("converged")
    if converged is None:
        return ""
    return (f"The fit {'converged' if int(converged) else 'did NOT converge'} after {result.attrs.get('n_iter')} "
            "iterations.")


def _langevin_scores(result) -> str:
    models = [str(m) for m in result.model.values]
    r2 = dict(zip(models, result.heldout_r2.values))
    v = dict(zip(models, result.velocity_r2.values))
    return ("Held-out-neuron R² on test windows: " + ", ".join(f"{m} {r2[m]:.3f}" for m in models)
            + "; velocity R² by cross-validated ridge from each network's latent state (z, v) (smoothing: from "
            "the smoothed observed traces; ridge: from every neuron of the worm at the same bin, within each worm, "
            "in contiguous blocks of time): " + ", ".join(f"{m} {v[m]:.3f}" for m in models if np.isfinite(v[m]))
            + ".")


def _null_sentence(result) -> str:
    if "null_error" not in result.attrs:
        return ""
    return (f" Relative error {result.attrs['error']:.3f} on the observed entries, against "
            f"{result.attrs['null_error']:.3f} for the same rank on the null, {result.attrs.get('null', 'its null')}.")


def ntf_loadings(result, ds, path: str | Path, behaviour: str = "behavior_reversal_vec") -> Path:
    """Per component: its time loading (with the share of worms reversing shaded, or the
    recording's stimulus events where the store has them) and its worm loadings."""
    plt = _pyplot()
    comps = result.component.values
    t = np.asarray(result.time.values, dtype=float)
    fig, axes = plt.subplots(len(comps), 2, figsize=(12, 1.4 + 1.5 * len(comps)), squeeze=False,
                             gridspec_kw={"width_ratios": [4, 1]})
    shade = None
    if behaviour in ds:
        b = ds[behaviour].sel(worm=result.worm.values).interp(time=t, method="nearest").values
        seen = np.isfinite(b).sum(0)
        shade = np.where(seen > 0, np.nansum(b, axis=0) / np.maximum(seen, 1), np.nan)
    for row, k in enumerate(comps):
        ax, bx = axes[row]
        if shade is not None and np.isfinite(shade).any():
            ax.fill_between(t, 0, np.nan_to_num(shade), step="mid", color="0.85", lw=0,
                            label="share of worms reversing")
        ax.plot(t, result.time_loading.sel(component=k).values, color=f"C{row % 10}", lw=1.2)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"component {k}", fontsize=8)
        w = result.worm_loading.sel(component=k).values
        bx.barh(range(len(w)), w, color=f"C{row % 10}")
        bx.set_yticks(range(len(w)), [plain(str(x).split("/")[-1]) for x in result.worm.values], fontsize=5)
        bx.set_xlim(0, 1.05)
    axes[0, 0].set_title("time loading", fontsize=9)
    axes[0, 1].set_title("worm loading", fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    if shade is not None:
        axes[0, 0].legend(fontsize=7, loc="upper right")
    caption = (f"Dynamic functional connectome: time (left) and worm (right) loadings of the {len(comps)} "
               f"components of the non-negative CP decomposition of the differential-affinity tensor "
               f"({result.sizes['pair']} pairs, {result.sizes['time']} bins, {result.sizes['worm']} worms)."
               + _null_sentence(result)
               + (f" Factors reproduced across restarts: stability {result.attrs['stability']:.2f}."
                  if np.isfinite(result.attrs.get("stability", np.nan)) else ""))
    return _save(plt, fig, path, caption)


def community_matrices(result, path: str | Path) -> Path:
    """Each component's pair loadings as a neuron x neuron matrix, neurons ordered by the
    weighted SBM's communities (lines between blocks; grey = pair not in the tensor)."""
    from analysis.ntf import pair_matrix

    plt = _pyplot()
    comps = result.component.values
    neurons = [plain(n) for n in result.neuron.values]
    fig, axes = plt.subplots(1, len(comps), figsize=(3.6 * len(comps) + 0.5, 3.9), squeeze=False)
    for ax, k in zip(axes[0], comps):
        m = pair_matrix(result.pair_loading.sel(component=k).values, result.neuron_a.values,
                        result.neuron_b.values, neurons)
        labels = result.community.sel(component=k).values if "community" in result else np.zeros(len(neurons), int)
        order = np.argsort(labels, kind="stable")
        shown = np.ma.masked_invalid(m[np.ix_(order, order)])
        cmap = plt.get_cmap("magma").with_extremes(bad="0.8")
        im = ax.imshow(shown, cmap=cmap, interpolation="nearest", vmin=0)
        for edge in np.flatnonzero(np.diff(labels[order])) + 0.5:
            ax.axhline(edge, color="c", lw=0.6)
            ax.axvline(edge, color="c", lw=0.6)
        step = max(1, len(neurons) // 25)
        names = [neurons[i] for i in order]
        ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=4)
        ax.set_yticks(range(0, len(names), step), names[::step], fontsize=4)
        n_blocks = int(result.n_blocks.sel(component=k)) if "n_blocks" in result else 1
        ax.set_title(f"component {k}: {n_blocks} communities", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    caption = "Pair loadings of each component as a neuron-by-neuron matrix, ordered by the weighted SBM's blocks."
    if "n_blocks" in result:
        caption += f" Blocks per component: {', '.join(str(int(v)) for v in result.n_blocks.values)}"
        if "n_blocks_null" in result:
            caption += (f"; on each component's degree-preserving null (edges rewired, weights shuffled): "
                        f"{', '.join(str(int(v)) for v in result.n_blocks_null.values)}")
        caption += "."
    return _save(plt, fig, path, caption)


def rank_selection(result, path: str | Path) -> Path:
    """Reconstruction error and factor stability against the NTF rank, the chosen rank marked."""
    plt = _pyplot()
    ranks = result.candidate_rank.values
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(ranks, result.rank_error.values, "o-", color="C0", label="data")
    if "rank_null_error" in result:
        ax.plot(ranks, result.rank_null_error.values, "o:", color="0.5", label="circular-shift null")
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xlabel("rank")
    ax.set_ylabel("relative error", color="C0")
    bx = ax.twinx()
    bx.plot(ranks, result.rank_stability.values, "s--", color="C1")
    bx.set_ylabel("stability across restarts", color="C1")
    bx.set_ylim(0, 1.02)
    ax.axvline(int(result.attrs["rank"]), color="0.5", lw=1)
    ax.set_title(f"chosen rank {int(result.attrs['rank'])}", fontsize=9)
    caption = (f"NTF rank selection: relative error (data and null) and restart stability per rank; chosen "
               f"rank {int(result.attrs['rank'])} by {result.attrs.get('rank_rule', 'stability')}.")
    return _save(plt, fig, path, caption)


def latent_trajectories(result, path: str | Path, n_windows: int = 12) -> Path:
    """LangevinFlow latent positions projected on their first two principal components,
    one line per window, coloured by the worm's velocity (reversals are negative)."""
    plt = _pyplot()
    z = result.latents.values
    flat = z.reshape(-1, z.shape[-1])
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = (centred @ vt[:2].T).reshape(z.shape[0], z.shape[1], 2)
    vel = result.velocity.values
    lim = np.nanpercentile(np.abs(vel), 95) if np.isfinite(vel).any() else 1.0
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    pick = np.linspace(0, len(z) - 1, min(n_windows, len(z))).astype(int)
    for w in pick:
        ax.plot(pcs[w, :, 0], pcs[w, :, 1], color="0.8", lw=0.6, zorder=1)
        sc = ax.scatter(pcs[w, :, 0], pcs[w, :, 1], c=vel[w], cmap="coolwarm_r", vmin=-lim, vmax=lim, s=6, zorder=2)
    fig.colorbar(sc, ax=ax, label="velocity (negative: reversing)")
    ax.set_xlabel("latent PC 1")
    ax.set_ylabel("latent PC 2")
    ax.set_title(f"LangevinFlow latents, {len(pick)} windows", fontsize=9)
    caption = (f"LangevinFlow latent positions of {len(pick)} of {len(z)} windows on their first two principal "
               f"components, coloured by the worm's velocity (negative: reversing). {_langevin_scores(result)}")
    return _save(plt, fig, path, caption)


def heldout_traces(result, path: str | Path, n_neurons: int = 3, n_windows: int = 2) -> Path:
    """Held-out neurons on test windows: the recorded trace against LangevinFlow's
    prediction and the smoothing baseline's."""
    plt = _pyplot()
    held = np.flatnonzero(result.held_out.values)[:n_neurons]
    t = result.time.values
    fig, axes = plt.subplots(len(held), n_windows, figsize=(5 * n_windows, 1.8 * len(held) + 0.6), squeeze=False,
                             sharex=True)
    for r, j in enumerate(held):
        for c in range(min(n_windows, result.sizes["test_window"])):
            ax = axes[r, c]
            ax.plot(t, result.truth.values[c, :, j], color="k", lw=1.2, label="recorded")
            ax.plot(t, result.prediction.values[c, :, j], color="C3", lw=1, label="LangevinFlow")
            ax.plot(t, result.baseline_prediction.values[c, :, j], color="C0", lw=0.8, ls="--", label="smoothing")
            ax.set_ylabel(str(result.neuron.values[j]), fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("time in window (s)")
    caption = (f"{len(held)} held-out neurons (never shown to the encoder) on {min(n_windows, result.sizes['test_window'])}"
               f" test windows: recorded (black), LangevinFlow (red), smoothing baseline (blue, dashed). "
               f"{_langevin_scores(result)}")
    return _save(plt, fig, path, caption)


def caption_path(path: str | Path) -> Path:
    """Where a figure's caption lives: NAME.caption.txt beside NAME.png (the report reads it)."""
    path = Path(path)
    return path.with_name(path.stem + ".caption.txt")


def _save(plt, fig, path: str | Path, caption: str | None = None) -> Path:
    from wormflow.core.atomic import replacing

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    if caption:
        with replacing(caption_path(path)) as tmp:
            Path(tmp).write_text(caption, encoding="utf-8")
    return path


def _params(result) -> dict:
    import json

    raw = json.loads(result.attrs.get("tsnet_params", "{}"))
    return {k: v for k, v in raw.items() if k not in ("constructions", "dim", "k_max", "modularity")}
