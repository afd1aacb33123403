"""The worms of an activity store as per-worm sequences of a chosen set of neurons: the
input of the state and latent models (HMM-GLM, LangevinFlow). Pure function on xarray."""

from __future__ import annotations

import warnings

import numpy as np

# the forward (AVB, RIB) and reversal (AVA, AVE, AIB, RIM) command neurons: whatever else a
# selection keeps, these are what the states and latents are scored against (reversals)
COMMAND_CLASSES = ("AVA", "AVB", "AVE", "AIB", "RIB", "RIM")
REVERSAL_CLASSES = ("AVA", "AVE", "AIB", "RIM")     # the backward ones among them


def command_neurons(names, classes=None) -> list[str]:
    """Those of ``names`` that belong to :data:`COMMAND_CLASSES`: by their neuron class where
    ``classes`` (one per name, e.g. the store's ``neuron_class`` coordinate) is given, else
    by name (the class followed by L or R, as AVAL, AVAR)."""
    names = [str(n) for n in names]
    if classes is not None:
        return [n for n, c in zip(names, classes) if str(c) in COMMAND_CLASSES]
    return [n for n in names if n in COMMAND_CLASSES or (n[:-1] in COMMAND_CLASSES and n[-1] in "LR")]


def store_sequences(ds, variable: str = "calcium", neurons=None, min_worm_fraction: float = 0.5,
                    max_neurons: int | None = 60, min_coverage: float = 0.5, zscore: bool = True,
                    keep=None, keep_only: bool = False):
    """The worms of an activity-store Dataset as HMM-GLM sequences.

    Neurons: ``neurons`` if given, else the ``keep`` neurons (default: the command neurons,
    :func:`command_neurons`, by the store's ``neuron_class``) that any labelled worm observed, then those observed in at
    least ``min_worm_fraction`` of the worms that have any labelled neuron, the most widely
    observed first, up to ``max_neurons`` in all (``keep_only``: the ``keep`` neurons alone). Worms: those observing at least ``min_coverage`` of the chosen
    neurons. Each trace is z-scored within its worm (``zscore``); a neuron a worm did
    not observe stays NaN (the model skips it as a target and it contributes nothing as
    an input). Returns (list of (T_w, N) arrays, worm ids, neuron names)."""
    da = ds[variable]
    if "neuron" not in da.dims:
        raise ValueError(f"{variable} has no neuron axis (dims {da.dims}); use calcium")
    values = np.asarray(da.transpose("worm", "time", "neuron").values, dtype=float)
    names = [str(v) for v in da["neuron"].values]
    seen = ~np.isnan(values).all(1)                     # (worm, neuron)
    labelled = seen.any(1)
    if not labelled.any():
        raise ValueError(f"no worm in the store has a labelled neuron in {variable}")
    if neurons is None:
        frac = seen[labelled].mean(0)
        index = {n: i for i, n in enumerate(names)}
        if keep is None:
            keep = command_neurons(names, da["neuron_class"].values if "neuron_class" in da.coords else None)
        kept = [index[n] for n in keep if n in index and frac[index[n]] > 0]
        if keep_only and not kept:
            raise ValueError("no labelled worm observed any of the neurons to keep (" + ", ".join(keep) + ")"
                             if keep else "no neuron to keep: the store names no command neuron")
        order = np.argsort(-frac, kind="stable")
        pick = kept if keep_only else (kept + [i for i in order if frac[i] >= min_worm_fraction
                                                   and i not in kept])[:max_neurons]
        if not pick:
            raise ValueError(f"no neuron is observed in {min_worm_fraction:.0%} of the labelled worms; "
                             "lower min_worm_fraction or name the neurons")
        pick = sorted(pick)
    else:
        index = {n: i for i, n in enumerate(names)}
        unknown = [n for n in neurons if n not in index]
        if unknown:
            raise ValueError(f"not canonical neuron names: {', '.join(unknown)}")
        pick = [index[n] for n in neurons]
    cover = seen[:, pick].mean(1)
    worms = np.flatnonzero(cover >= min_coverage)
    if worms.size == 0:
        raise ValueError(f"no worm observes {min_coverage:.0%} of the {len(pick)} chosen neurons")
    seqs = []
    for w in worms:
        x = values[w][:, pick]
        rows = np.flatnonzero(~np.isnan(x).all(1))
        x = x[: rows[-1] + 1]
        if zscore:
            with warnings.catch_warnings():        # a neuron this worm did not observe stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mu, sd = np.nanmean(x, 0), np.nanstd(x, 0)
            x = (x - mu) / np.where(sd > 0, sd, 1.0)
        seqs.append(x)
    return seqs, [str(v) for v in np.asarray(ds.worm.values)[worms]], [str(names[i]) for i in pick]
