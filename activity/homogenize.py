"""Raw recording -> canonical form on a uniform time grid. Pure computation, no file access.

The result (:func:`homogenize`) is an ``xarray.Dataset`` for one worm with dims ``time`` (the grid, seconds
from the first frame, ``k * dt``), ``neuron`` (the 302 registry names), ``roi`` (the lab's
columns, in their order) and ``frame`` (native frames):

* ``calcium (time, neuron)``: labelled ROIs placed at their registry name;
* ``roi_calcium (time, roi)``: every ROI on the grid, labelled or not (unlabelled ROIs
  are never put into neuron slots), with ``roi_label``, ``roi_neuron``, ``roi_status``,
  ``roi_candidates`` and ``roi_label_confidence``;
* ``native_calcium (frame, roi)`` and ``native_time (frame)``: the traces and float64
  times as recorded (time relative to the first frame; ``native_t0`` keeps the offset);
* ``behavior_<name>``: behaviour on the same grid; ``valid (time)`` marks grid points
  within ``gap_tolerance`` median frame intervals of a recorded frame. Elsewhere (dropped
  frames, the lab's gaps) every series is NaN: nothing is interpolated across a gap, and
  the count of dropped grid points is the per-worm fact ``n_grid_dropped``.

:func:`homogenize_worm` gives the same content as a :class:`Worm` of plain numpy arrays;
the store writer takes that form, so ingest never imports xarray or pandas.

Time arithmetic is float64 throughout and the offset is removed before anything else,
so absolute clocks of ~1e6 s lose nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass

from typing import TYPE_CHECKING

import numpy as np

from activity.raw import RawRecording
from wormflow.core.errors import LabelError, RecordingError
from wormflow.core.labels import parse_label
from wormflow.core.neurons import neuron_index, neuron_names

if TYPE_CHECKING:
    import xarray as xr

SMOOTHING = ("none", "gaussian", "exponential")
NORMALIZATION = ("none", "zscore", "causal_zscore")


@dataclass(frozen=True)
class HomogenizeParams:
    dt: float = 0.5                   # grid step, seconds
    anti_alias: bool = True           # low-pass at the grid's Nyquist before downsampling
    smoothing: str = "none"           # none | gaussian (sigma_s, two-sided) | exponential (tau_s, causal)
    smoothing_s: float = 1.0
    normalization: str = "none"       # none | zscore (whole trace) | causal_zscore (past samples only)
    causal_min_samples: int = 10      # causal z-score is NaN until this many samples were seen
    strict_labels: bool = False       # duplicate labels in one worm: error instead of flagging
    gap_tolerance: float = 1.5        # grid points farther than this many median frame intervals
                                      # from every recorded frame are NaN and not valid

    def __post_init__(self):
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {self.dt!r}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {SMOOTHING}, got {self.smoothing!r}")
        if self.normalization not in NORMALIZATION:
            raise ValueError(f"normalization must be one of {NORMALIZATION}, got {self.normalization!r}")
        if self.smoothing != "none" and not self.smoothing_s > 0:
            raise ValueError("smoothing_s must be positive")
        if not (np.isfinite(self.gap_tolerance) and self.gap_tolerance >= 0.5):
            raise ValueError(f"gap_tolerance must be at least 0.5 median frame intervals (a grid point "
                             f"halfway between two frames), got {self.gap_tolerance!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# ---------------------------------------------------------------- resampling

def time_grid(duration_s: float, dt: float) -> np.ndarray:
    n = int(np.floor(duration_s / dt + 1e-9)) + 1
    return np.arange(n, dtype=np.float64) * dt


def _fill_nan_linear(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for j in range(x.shape[1]):
        ok = np.isfinite(x[:, j])
        if ok.sum() >= 2 and not ok.all():
            out[~ok, j] = np.interp(t[~ok], t[ok], x[ok, j])
    return out


def anti_alias(t: np.ndarray, x: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass ``x`` at the Nyquist frequency of a grid of step ``dt`` (zero phase).

    Returns the filtered signal on a uniform grid at the native median step, NaNs kept
    where the input had them. A no-op (returns the input) when not downsampling. ``t``
    must hold no gap: :func:`resample_to_grid` filters each gap-free segment alone, so
    that the filter never runs over values the lab did not record.
    """
    if t.size < 2:
        return t, x
    native = float(np.median(np.diff(t)))
    ratio = native / dt
    if ratio >= 0.999:
        return t, x
    from scipy import signal      # here, not at import: scipy.signal costs ~100 MB and 1.5 s to import

    u = np.arange(t[0], t[-1] + native * 1e-6, native)
    if u.size < 2:
        return t, x
    filled = _fill_nan_linear(t, x)
    xu = _linear(t, filled, u)
    nan_mask = ~np.isfinite(_linear(t, x, u))
    sos = signal.butter(6, 0.9 * ratio, output="sos")
    padlen = min(3 * 2 * len(sos), len(u) - 1)
    good = np.isfinite(xu).all(axis=0)
    if padlen > 0 and good.any():
        xu[:, good] = signal.sosfiltfilt(sos, xu[:, good], axis=0, padlen=padlen)
    xu[nan_mask] = np.nan
    return u, xu


def _linear(t: np.ndarray, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column; NaN outside [t0, tN] or next to a NaN sample."""
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 2)
    t0, t1 = t[idx], t[idx + 1]
    w = ((grid - t0) / (t1 - t0))[:, None]
    exact_left = (w[:, 0] == 0.0)
    y = x[idx]                       # y0 + (y1 - y0) w, in place: two gathers and three passes
    step = x[idx + 1]
    step -= y
    step *= w
    y += step
    if exact_left.any():             # a grid point on a sample: its neighbour's NaN must not leak
        y[exact_left] = x[idx[exact_left]]
    exact_right = (w[:, 0] == 1.0)
    if exact_right.any():
        y[exact_right] = x[idx[exact_right] + 1]
    outside = (grid < t[0] - 1e-9) | (grid > t[-1] + 1e-9)
    y[outside] = np.nan
    return y


def _hold(t: np.ndarray, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Zero-order hold (last sample at or before each grid point) for discrete states."""
    idx = np.clip(np.searchsorted(t, grid + 1e-9, side="right") - 1, 0, len(t) - 1)
    y = x[idx].astype(np.float64)
    y[(grid < t[0] - 1e-9) | (grid > t[-1] + 1e-9)] = np.nan
    return y


def gap_tolerance_s(t: np.ndarray, tolerance: float) -> float:
    """The farthest a grid point may lie from a recorded frame, in seconds:
    ``tolerance`` times the median frame interval of ``t``."""
    return float(tolerance * np.median(np.diff(t))) if t.size >= 2 else 0.0


def near_a_frame(t: np.ndarray, grid: np.ndarray, max_distance_s: float) -> np.ndarray:
    """True where a grid point lies within ``max_distance_s`` of a native frame ``t``."""
    right = np.clip(np.searchsorted(t, grid), 0, t.size - 1)
    left = np.clip(right - 1, 0, t.size - 1)
    distance = np.minimum(np.abs(grid - t[left]), np.abs(t[right] - grid))
    return distance <= max_distance_s + 1e-9


def gap_free_segments(t: np.ndarray, max_distance_s: float) -> list[slice]:
    """Runs of frames no two of which are farther apart than ``2 * max_distance_s``:
    every grid point between two frames of a run is within ``max_distance_s`` of one."""
    breaks = np.flatnonzero(np.diff(t) > 2 * max_distance_s + 1e-9) + 1
    edges = np.concatenate([[0], breaks, [t.size]])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def resample_to_grid(t: np.ndarray, x: np.ndarray, grid: np.ndarray, dt: float,
                     discrete: bool = False, antialias: bool = True, tolerance: float = 1.5) -> np.ndarray:
    """Resample columns of ``x`` sampled at ``t`` onto ``grid`` (all times in seconds).

    Nothing is made up across dropped frames: a grid point farther than ``tolerance``
    median frame intervals from every frame is NaN. The recording is cut into gap-free
    segments (:func:`gap_free_segments`); each is low-passed and interpolated alone. A
    grid point within the tolerance of a segment's first or last frame but outside the
    segment takes that frame's value (as a point between two frames takes theirs).
    """
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    reach = gap_tolerance_s(t, tolerance)
    y = np.full((grid.size, x.shape[1]), np.nan)
    for seg in gap_free_segments(t, reach):
        ts, xs = t[seg], x[seg]
        lo, hi = np.searchsorted(grid, [ts[0] - reach - 1e-9, ts[-1] + reach + 1e-9], side="left")
        if hi <= lo:
            continue
        at = np.clip(grid[lo:hi], ts[0], ts[-1])          # past an edge frame: that frame's value
        if ts.size == 1:
            y[lo:hi] = xs[0]
        elif discrete:
            y[lo:hi] = _hold(ts, xs, at)
        else:
            if antialias:
                ts, xs = anti_alias(ts, xs, dt)
            y[lo:hi] = _linear(ts, xs, np.clip(at, ts[0], ts[-1]))
    y[~near_a_frame(t, grid, reach)] = np.nan
    return y[:, 0] if squeeze else y


# ---------------------------------------------------------------- smoothing and normalization

def smooth(x: np.ndarray, dt: float, method: str, width_s: float) -> np.ndarray:
    if method == "none":
        return x
    ok = np.isfinite(x)
    if method == "gaussian":
        from scipy.ndimage import gaussian_filter1d
        sigma = width_s / dt
        num = gaussian_filter1d(np.where(ok, x, 0.0), sigma, axis=0, mode="nearest")
        den = gaussian_filter1d(ok.astype(np.float64), sigma, axis=0, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[~ok] = np.nan
        return out
    from scipy import signal

    alpha = 1.0 - np.exp(-dt / width_s)           # causal exponential moving average
    b, a = [alpha], [1.0, alpha - 1.0]
    out = np.full_like(x, np.nan)
    for j in range(x.shape[1]):
        good = np.flatnonzero(ok[:, j])
        if good.size:
            seg = x[good, j]
            zi = signal.lfilter_zi(b, a) * seg[0]
            out[good, j] = signal.lfilter(b, a, seg, zi=zi)[0]
    return out


def normalize(x: np.ndarray, method: str, min_samples: int = 10) -> np.ndarray:
    if method == "none":
        return x
    if method == "zscore":
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.nanmean(x, axis=0) if np.isfinite(x).any() else np.zeros(x.shape[1])
            sd = np.nanstd(x, axis=0)
            sd = np.where(sd > 0, sd, np.nan)
            return (x - mu) / sd
    # causal: statistics of samples up to and including t only (no future information)
    ok = np.isfinite(x)
    n = np.cumsum(ok, axis=0)
    s1 = np.cumsum(np.where(ok, x, 0.0), axis=0)
    s2 = np.cumsum(np.where(ok, x * x, 0.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = s1 / n
        var = np.maximum(s2 / n - mu * mu, 0.0)
        z = (x - mu) / np.sqrt(var)
    z[(n < min_samples) | ~ok | ~np.isfinite(z)] = np.nan
    return z


# ---------------------------------------------------------------- labels

@dataclass
class LabelPlacement:
    roi_neuron: list[str]
    roi_status: list[str]
    roi_candidates: list[str]
    notes: list[str]


def place_labels(where: str, labels: list[str], strict: bool = False) -> LabelPlacement:
    """Decide which ROIs stand for which registry neuron. Duplicates are flagged, not renamed."""
    parses = [parse_label(lab) for lab in labels]
    notes = []
    for i, p in enumerate(parses):
        for r in p.renames:
            notes.append(f"{where}: ROI {i} label {p.raw!r}: {r}")
        if p.status == "uncertain":
            notes.append(f"{where}: ROI {i} label {p.raw!r} is uncertain "
                         f"(candidates {'/'.join(p.candidates) or 'none'}); kept unassigned")
        elif p.status == "unmapped":
            notes.append(f"{where}: ROI {i} label {p.raw!r} is not a hermaphrodite neuron name; kept as unlabelled")
    counts = Counter(p.name for p in parses if p.name)
    dups = {n for n, c in counts.items() if c > 1}
    if dups and strict:
        raise LabelError(f"{where}: duplicate labels {sorted(dups)} within one worm")
    status = [p.status for p in parses]
    for n in sorted(dups):
        rois = [i for i, p in enumerate(parses) if p.name == n]
        for i in rois:
            status[i] = "duplicate"
        notes.append(f"{where}: label {n} is given to ROIs {rois}; none of them is assigned to {n}")
    neuron = [p.name if s == "labelled" else "" for p, s in zip(parses, status)]
    candidates = ["/".join(p.candidates) if p.uncertain or s == "duplicate" else "" for p, s in zip(parses, status)]
    return LabelPlacement(neuron, status, candidates, notes)


# ---------------------------------------------------------------- the whole worm

@dataclass
class Worm:
    """One homogenized worm as numpy arrays: ``variables[name] = (dims, values, attrs)``."""

    variables: dict[str, tuple[tuple[str, ...], np.ndarray, dict]]
    time: np.ndarray                  # the grid, seconds from the first frame
    attrs: dict

    @property
    def sizes(self) -> dict[str, int]:
        out = {"time": int(self.time.size)}
        for dims, values, _ in self.variables.values():
            out.update(zip(dims, map(int, values.shape)))
        return out

    def to_dataset(self) -> "xr.Dataset":
        import xarray as xr

        dt = json.loads(self.attrs["homogenize_params"])["dt"]
        return xr.Dataset(
            {k: xr.Variable(dims, values, attrs or None) for k, (dims, values, attrs) in self.variables.items()},
            coords={"time": ("time", self.time, {"units": "s", "dt": dt}),
                    "neuron": ("neuron", np.array(neuron_names(), dtype=object))},
            attrs=dict(self.attrs))

    @classmethod
    def from_dataset(cls, ds: "xr.Dataset") -> "Worm":
        """The inverse of :meth:`to_dataset` (for worms cached as Zarr by the pipeline)."""
        return cls({k: (tuple(v.dims), v.values, dict(v.attrs)) for k, v in ds.data_vars.items()},
                   np.asarray(ds["time"].values, dtype=np.float64), dict(ds.attrs))


def homogenize(rec: RawRecording, params: HomogenizeParams = HomogenizeParams()) -> "xr.Dataset":
    """Canonical form of one worm as an ``xarray.Dataset`` (see module docstring)."""
    return homogenize_worm(rec, params).to_dataset()


def homogenize_worm(rec: RawRecording, params: HomogenizeParams = HomogenizeParams()) -> Worm:
    """Canonical form of one worm as numpy arrays (what :class:`activity.store.StoreWriter` writes)."""
    where = rec.where
    for name in ("signal", "units"):
        if not str(getattr(rec, name, "")).strip():
            raise RecordingError(f"{where}: the recording does not say its traces' {name}; a reader must state "
                                 "it (or 'not stated in the file'), never leave it to a default")
    t_abs = np.asarray(rec.timestamps, dtype=np.float64)
    t0 = float(t_abs[0])
    t = t_abs - t0
    x, n_masked = mask_unstorable(np.asarray(rec.traces, dtype=np.float64))
    value_notes = [f"{where}: {n_masked} trace value(s) infinite or beyond float32's range; stored as NaN"] \
        if n_masked else []
    if not np.isfinite(x).any():
        raise RecordingError(f"{where}: every trace is NaN (no usable activity)")
    grid = time_grid(float(t[-1]), params.dt)
    if grid.size < 2:
        raise RecordingError(f"{where}: recording lasts {t[-1]:.3g} s, shorter than two grid steps of {params.dt} s")

    y = resample_to_grid(t, x, grid, params.dt, antialias=params.anti_alias, tolerance=params.gap_tolerance)
    valid = near_a_frame(t, grid, gap_tolerance_s(t, params.gap_tolerance))
    y = smooth(y, params.dt, params.smoothing, params.smoothing_s)
    y = normalize(y, params.normalization, params.causal_min_samples)

    placement = place_labels(where, rec.roi_labels, strict=params.strict_labels)
    index = neuron_index()
    calcium = np.full((grid.size, len(index)), np.nan, dtype=np.float32)
    observed = np.zeros(len(index), dtype=bool)
    placed = [(j, index[name]) for j, name in enumerate(placement.roi_neuron) if name]
    if placed:
        cols, slots = map(list, zip(*placed))
        calcium[:, slots] = y[:, cols]
        observed[slots] = np.isfinite(x[:, cols]).any(axis=0)

    processing = _processing(params)
    on_grid = {"long_name": "calcium activity on the grid", "signal_coord": "signal", "units_coord": "units",
               "description": "the lab's trace (what it is: the per-worm coordinates 'signal' and 'units')"
                              + (f", then {processing} by wormflow" if processing else "")
                              + "; NaN where the lab recorded nothing within the gap tolerance"}
    data = {
        "calcium": (("time", "neuron"), calcium, on_grid),
        "observed": (("neuron",), observed),
        "roi_calcium": (("time", "roi"), y.astype(np.float32), on_grid),
        "roi_label": (("roi",), np.array(rec.roi_labels, dtype=object)),
        "roi_neuron": (("roi",), np.array(placement.roi_neuron, dtype=object)),
        "roi_status": (("roi",), np.array(placement.roi_status, dtype=object)),
        "roi_candidates": (("roi",), np.array(placement.roi_candidates, dtype=object)),
        "roi_label_confidence": (("roi",), np.full(x.shape[1], np.nan, dtype=np.float32)
                                 if rec.roi_label_confidence is None
                                 else np.asarray(rec.roi_label_confidence, dtype=np.float32)),
        "native_calcium": (("frame", "roi"), x, {"long_name": "calcium traces as recorded",
                                                 "signal_coord": "signal", "units_coord": "units"}),
        "native_time": (("frame",), t),
        "valid": (("time",), valid),
    }
    data = {k: (v[0], v[1], v[2] if len(v) > 2 else {}) for k, v in data.items()}
    # series on one clock are resampled together: one interpolation index for all columns
    n_masked_behaviour = 0
    groups: dict[tuple[int, bool], list[str]] = {}
    for name, s in rec.behavior.items():
        groups.setdefault((id(s.timestamps), s.discrete), []).append(name)
    for names in groups.values():
        series = [rec.behavior[n] for n in names]
        tb = np.asarray(series[0].timestamps, dtype=np.float64) - t0
        columns = []
        for name, s in zip(names, series):
            column, n_bad = mask_unstorable(np.asarray(s.values, dtype=np.float64).reshape(len(tb), -1))
            if n_bad:
                n_masked_behaviour += n_bad
                value_notes.append(f"{where}: behaviour {name!r}: {n_bad} value(s) infinite or beyond "
                                   "float32's range; stored as NaN")
            columns.append(column)
        values = resample_to_grid(tb, np.concatenate(columns, axis=1), grid, params.dt,
                                  discrete=series[0].discrete, antialias=params.anti_alias,
                                  tolerance=params.gap_tolerance)
        edges = np.cumsum([0] + [c.shape[1] for c in columns])
        for name, s, a, b in zip(names, series, edges[:-1], edges[1:]):
            key = f"behavior_{name}"
            one = np.ndim(s.values) == 1
            dims = ("time",) if one else ("time", f"{key}_k")
            data[key] = (dims, (values[:, a] if one else values[:, a:b]).astype(np.float32),
                         {"unit": s.unit, "discrete": int(s.discrete)})
    return Worm(data, grid, {
        "worm_id": rec.worm_id, "dataset": rec.dataset, "format": rec.format, "source_file": rec.source_file,
        "native_t0": t0, "n_frames": rec.n_frames, "n_rois": rec.n_rois,
        "n_labelled": int(observed.sum()), "duration_s": float(t[-1]),
        "native_median_dt": float(np.median(np.diff(t))),
        "max_frame_gap_s": float(np.max(np.diff(t))), "n_grid_dropped": int((~valid).sum()),
        "label_notes": json.dumps(list(rec.notes) + placement.notes + value_notes),
        "n_values_masked": int(n_masked + n_masked_behaviour),
        "events": json.dumps(rec.events), "metadata": json.dumps(rec.metadata, default=str),
        "homogenize_params": params.to_json(), "signal": rec.signal, "units": rec.units,
    })


FLOAT32_MAX = float(np.finfo(np.float32).max)


def mask_unstorable(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The stated rule for values no float32 store can hold: +-Inf and magnitudes beyond
    float32's range become NaN (the traces are stored as float32 on the grid); returns the
    masked copy and how many values were masked. NaN stays NaN and is not counted."""
    with np.errstate(invalid="ignore"):
        bad = np.isinf(x) | (np.abs(x) > FLOAT32_MAX)
    n = int(bad.sum())
    if not n:
        return x, 0
    x = x.copy()
    x[bad] = np.nan
    return x, n


def _processing(params: HomogenizeParams) -> str:
    """What homogenization did to the values beyond resampling ('' when nothing)."""
    steps = []
    if params.smoothing != "none":
        steps.append(f"{params.smoothing} smoothing ({params.smoothing_s} s)")
    if params.normalization != "none":
        steps.append({"zscore": "z-scored over the recording",
                      "causal_zscore": "z-scored causally (past samples only)"}[params.normalization])
    return ", ".join(steps)
