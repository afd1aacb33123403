"""Differential affinity between calcium traces, and the (pair x time x worm) affinity
tensor of an activity store, built lazily with Dask one worm at a time.

The affinity of issue 9 (after Dyballa et al., ICLR 2024: two neurons interact when they
change in the same direction at the same moment). The paper's exact formula was not
available to us, so this is our own definition, with every choice a parameter:

1. each trace is smoothed by a Gaussian of ``smooth_s`` seconds and differentiated
   (the derivative of the Gaussian filter), g_i(t);
2. each derivative is scaled by its own standard deviation over time, z_i = g_i / sd(g_i),
   so that affinity does not favour neurons with large dF/F;
3. a_ij(t) = tanh(max(z_i(t) z_j(t), 0) / saturation).

a_ij is symmetric, lies in [0, 1), is 0 when either neuron is flat or when they move in
opposite directions, grows like the product of the two standardized rates for small
changes, and saturates (default: at about one standard deviation each) so that single
large transients do not dominate the tensor.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def smoothed_derivative(x, dt: float = 1.0, smooth_s: float = 1.0):
    """d/dt of each column of ``x`` (time x units) smoothed by a Gaussian of ``smooth_s``
    seconds; NaN stays NaN (gaps are bridged linearly for the filter only)."""
    x = np.asarray(x, dtype=float)
    missing = np.isnan(x)
    filled = x.copy()
    t = np.arange(len(x))
    for j in np.flatnonzero(missing.any(0) & ~missing.all(0)):
        ok = ~missing[:, j]
        filled[:, j] = np.interp(t, t[ok], x[ok, j])
    filled[:, missing.all(0)] = 0.0
    sigma = smooth_s / dt
    if sigma > 0:
        g = gaussian_filter1d(filled, sigma, axis=0, order=1, mode="nearest") / dt
    else:
        g = np.gradient(filled, dt, axis=0)
    g[missing] = np.nan
    return g


def standardized_derivative(x, dt: float = 1.0, smooth_s: float = 1.0):
    """z_i = g_i / sd(g_i): each unit's smoothed derivative in units of its own spread
    (NaN for a unit never observed)."""
    g = smoothed_derivative(x, dt, smooth_s)
    ok = np.isfinite(g)
    n = np.maximum(ok.sum(0), 1)
    mean = np.where(ok, g, 0.0).sum(0) / n
    sd = np.sqrt((np.where(ok, g - mean, 0.0) ** 2).sum(0) / n)      # 0 for a unit never observed
    return g / np.where(sd > 0, sd, np.inf)


def _pair_affinity(z, i, j, saturation):
    return np.tanh(np.maximum(z[:, i] * z[:, j], 0.0) / saturation)


def pair_index(n: int):
    """(i, j) with i < j: the order of the pairs axis."""
    return np.triu_indices(n, 1)


def differential_affinity(traces, dt: float = 1.0, *, smooth_s: float = 1.0, saturation: float = 1.0, pairs=None):
    """Affinity a_ij(t) of every pair of columns of ``traces`` (time x neurons) -> (time x
    pairs), pairs ordered as ``pair_index`` (or the given (i, j) arrays). NaN where either
    trace is NaN. An ``xarray.DataArray`` (time, neuron) gives a DataArray (time, pair)
    with the pair's neurons as coordinates."""
    as_xr = hasattr(traces, "dims")
    x = np.asarray(traces.transpose("time", "neuron").values if as_xr else traces, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"traces must be (time, neurons), got shape {x.shape}")
    if saturation <= 0:
        raise ValueError(f"saturation must be positive, got {saturation}")
    z = standardized_derivative(x, dt, smooth_s)
    i, j = pair_index(x.shape[1]) if pairs is None else pairs
    a = _pair_affinity(z, i, j, saturation)
    if not as_xr:
        return a
    import xarray as xr

    names = np.asarray(traces["neuron"].values).astype(object)
    return xr.DataArray(a, dims=("time", "pair"),
                        coords={"time": traces["time"].values, "neuron_a": ("pair", names[i]),
                                "neuron_b": ("pair", names[j])}, name="affinity")


def _bin(a, size: int):
    """Means over consecutive blocks of ``size`` samples along axis 0 (a partial last block
    is averaged over what it has; all-NaN blocks stay NaN)."""
    if size <= 1:
        return a
    n = int(np.ceil(len(a) / size))
    pad = n * size - len(a)
    if pad:
        a = np.concatenate([a, np.full((pad,) + a.shape[1:], np.nan)])
    blocks = a.reshape(n, size, *a.shape[1:])
    seen = np.isfinite(blocks)
    count = seen.sum(1)
    total = np.where(seen, blocks, 0.0).sum(1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)   # an all-NaN block stays NaN


def tensor_neurons(observed, names, min_worms: int = 2, neurons=None):
    """The neurons and pairs of the tensor: ``neurons`` or those observed in at least
    ``min_worms`` worms; pairs observed together in at least ``min_worms`` worms.
    observed: (worm, neuron) bool. Returns (neuron indices, (i, j) into them)."""
    observed = np.asarray(observed, dtype=bool)
    if neurons is None:
        keep = np.flatnonzero(observed.sum(0) >= min_worms)
    else:
        index = {n: k for k, n in enumerate(names)}
        unknown = [n for n in neurons if n not in index]
        if unknown:
            raise ValueError(f"not canonical neuron names: {', '.join(unknown)}")
        keep = np.array([index[n] for n in neurons])
    if len(keep) < 2:
        raise ValueError(f"fewer than two neurons are observed in {min_worms} worms")
    obs = observed[:, keep]
    i, j = pair_index(len(keep))
    together = (obs[:, i] & obs[:, j]).sum(0) >= min_worms
    if not together.any():
        raise ValueError(f"no pair of neurons is observed together in {min_worms} worms")
    return keep, (i[together], j[together])


def _observed_length(ds, sub, worms, dt: float) -> int:
    """Grid points up to the end of the longest recording among ``worms``: from the store's
    per-worm ``duration_s`` when it has it, else from where the traces hold values."""
    if "duration_s" in ds:
        end = float(np.max(np.asarray(ds["duration_s"].values)[worms]))
        return min(sub.sizes["time"], int(np.floor(end / dt + 1e-9)) + 1)
    seen = np.flatnonzero(np.asarray(sub.notnull().any(("worm", "neuron")).values))
    return int(seen[-1]) + 1 if seen.size else sub.sizes["time"]


def affinity_tensor(ds, *, variable: str = "calcium", neurons=None, min_worms: int = 2, bin_size: int = 1,
                    smooth_s: float = 1.0, saturation: float = 1.0, dtype=np.float32):
    """The lazy (pair, time, worm) affinity tensor of an activity-store Dataset.

    Each worm is one Dask task that reads only that worm's traces and returns its
    (pair, time) slab, so building the tensor never holds more than one worm's slab per
    worker. A pair is NaN (missing) in a worm that did not observe both neurons, and
    after the end of a recording; time is the store's grid, averaged over ``bin_size``
    samples. Worms that observe no pair are left out."""
    import dask.array as dsa
    import xarray as xr

    da = ds[variable]
    names = [str(n) for n in da["neuron"].values]
    observed = (ds["observed"].values if "observed" in ds and variable == "calcium"
                else da.notnull().any("time").values)
    keep, (pi, pj) = tensor_neurons(observed, names, min_worms, neurons)
    obs = np.asarray(observed, dtype=bool)[:, keep]
    has_pair = (obs[:, pi] & obs[:, pj]).any(1)
    worms = np.flatnonzero(has_pair)
    if "dt" not in ds.attrs:
        raise ValueError("the activity dataset has no 'dt' attribute (its grid step in seconds); "
                         "pass a dataset opened with activity.open_activity")
    dt = float(ds.attrs["dt"])
    sub = da.isel(worm=worms, neuron=keep).transpose("worm", "time", "neuron")
    # the time axis ends where the worms used end: no bins of the store's padding, where no
    # worm observed anything (the longest recording of the store may not be among them)
    sub = sub.isel(time=slice(0, _observed_length(ds, sub, worms, dt)))
    sub = sub.chunk({"worm": 1, "time": -1, "neuron": -1})
    n_time = int(np.ceil(sub.sizes["time"] / max(bin_size, 1)))

    def slab(block, chunk: int = 256):
        # pairs in chunks, each binned at once: the worm's unbinned (time x pairs) array is
        # never formed, so a task holds little more than its binned slab
        z = standardized_derivative(block[0], dt, smooth_s)
        out = np.empty((1, len(pi), n_time), dtype=dtype)
        for lo in range(0, len(pi), chunk):
            a = _pair_affinity(z, pi[lo:lo + chunk], pj[lo:lo + chunk], saturation)
            out[0, lo:lo + chunk] = _bin(a, bin_size).T
        return out                                                # (1, pairs, time)

    lazy = dsa.map_blocks(slab, sub.data, dtype=dtype,
                          chunks=((1,) * len(worms), (len(pi),), (n_time,)))
    tensor = dsa.transpose(lazy, (1, 2, 0))                      # (pair, time, worm)
    kept = np.asarray(names, dtype=object)[keep]
    time = sub["time"].values[::max(bin_size, 1)][:n_time]
    return xr.DataArray(tensor, dims=("pair", "time", "worm"), name="affinity",
                        coords={"neuron_a": ("pair", kept[pi]), "neuron_b": ("pair", kept[pj]),
                                "time": time, "worm": sub["worm"].values},
                        attrs={"smooth_s": smooth_s, "saturation": saturation, "bin_size": bin_size,
                               "min_worms": min_worms, "dt": dt * max(bin_size, 1), "variable": variable})
