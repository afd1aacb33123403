"""Figures of analysis results (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
                ax.semilogy(k, np.where(pooled > 0, pooled / pooled.sum(), np.nan), "o-", ms=3, label=str(name))
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
    return _save(plt, fig, path)


def metric_heatmap(result, construction: str, metric: str, path: str | Path) -> Path:
    """Units (neurons or ROIs) observed in at least one worm by worm, coloured by ``metric``."""
    plt = _pyplot()
    da = result[construction].sel(metric=metric)
    unit = next(d for d in da.dims if d != "worm")
    da = da.dropna(unit, how="all").dropna("worm", how="all").transpose(unit, "worm")
    values = np.ma.masked_invalid(da.values)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.45 * da.sizes["worm"]), 2 + 0.12 * max(da.sizes[unit], 1)))
    im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xticks(range(da.sizes["worm"]), [str(w) for w in da.worm.values], rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(da.sizes[unit]), [str(u) for u in da[unit].values], fontsize=5)
    ax.set_title(f"{construction} VG: {metric}" if construction in ("natural", "horizontal") else
                 f"{construction} network: {metric}")
    fig.colorbar(im, ax=ax, label=metric, fraction=0.06, shrink=0.5 if da.sizes[unit] > 40 else 1.0)
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _params(result) -> dict:
    import json

    raw = json.loads(result.attrs.get("tsnet_params", "{}"))
    return {k: v for k, v in raw.items() if k not in ("constructions", "dim", "k_max", "modularity")}
