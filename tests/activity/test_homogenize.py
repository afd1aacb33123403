import numpy as np

from activity.homogenize import (HomogenizeParams, homogenize, normalize, resample_to_grid, smooth,
                                 time_grid)
from activity.raw import RawRecording, Series


def _fit_sine(t, y, freq):
    """Amplitude and phase of ``freq`` in ``y`` by least squares."""
    a = np.column_stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(np.hypot(coef[0], coef[1])), coef


def _dominant_frequency(y, dt):
    spec = np.abs(np.fft.rfft(y - y.mean()))
    return np.fft.rfftfreq(y.size, dt)[np.argmax(spec)]


def test_upsampling_a_sine_keeps_frequency_amplitude_and_phase():
    t = np.arange(0, 600, 0.6)
    y = 2.0 * np.sin(2 * np.pi * 0.05 * t)
    grid = time_grid(t[-1], 0.5)
    out = resample_to_grid(t, y, grid, 0.5)
    amp, _ = _fit_sine(grid, out, 0.05)
    assert abs(amp - 2.0) < 0.02
    assert abs(_dominant_frequency(out, 0.5) - 0.05) < 0.002
    np.testing.assert_allclose(out, 2.0 * np.sin(2 * np.pi * 0.05 * grid), atol=0.03)


def test_downsampling_keeps_a_slow_sine_and_removes_an_aliasing_fast_one():
    t = np.arange(0, 300, 1 / 6)                       # Leifer-like 6 Hz
    slow = np.sin(2 * np.pi * 0.1 * t)
    fast = np.sin(2 * np.pi * 1.9 * t)                 # would alias to 0.1 Hz on a 2 Hz grid
    grid = time_grid(t[-1], 0.5)
    out = resample_to_grid(t, slow + fast, grid, 0.5)
    amp, _ = _fit_sine(grid, out, 0.1)
    assert abs(amp - 1.0) < 0.05
    naive = resample_to_grid(t, slow + fast, grid, 0.5, antialias=False)
    assert abs(_fit_sine(grid, naive, 0.1)[0] - 1.0) > 0.3    # the aliasing the filter prevents


def test_no_time_drift_with_absolute_clocks_of_a_million_seconds():
    t0 = 1_228_334.14613117
    native = t0 + np.arange(2000) * 0.6000188835896552
    rec = RawRecording("w.h5", "w", "D", "f", native, np.sin(np.arange(2000)[:, None] * 0.01), ["AVAL"], signal="synthetic fixture", units="a.u.")
    ds = homogenize(rec, HomogenizeParams(dt=0.6000188835896552))
    np.testing.assert_array_equal(ds["native_time"].values, native - t0)
    grid = ds["time"].values
    np.testing.assert_allclose(ds["calcium"].sel(neuron="AVAL").values, np.sin(np.arange(grid.size) * 0.01),
                               atol=1e-6)


def test_nan_in_a_trace_stays_local_and_grid_past_the_end_is_nan():
    t = np.arange(0, 50, 0.5)
    x = np.sin(t)[:, None].copy()
    x[40] = np.nan
    out = resample_to_grid(t, x, np.arange(0, 60, 0.5), 0.5)[:, 0]
    assert np.isnan(out[40]) and np.isfinite(out[38]) and np.isfinite(out[42])
    assert np.isnan(out[-1])


def test_discrete_behaviour_is_held_not_interpolated():
    t = np.arange(10) * 0.6
    states = np.array([0, 0, 1, 1, 1, 0, 0, 2, 2, 2])
    out = resample_to_grid(t, states, time_grid(t[-1], 0.5), 0.5, discrete=True)
    assert set(np.unique(out)) <= {0, 1, 2}


def test_causal_zscore_uses_no_future_information():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    y = x.copy()
    y[150:] += 100.0                                     # change only the future
    a, b = normalize(x, "causal_zscore"), normalize(y, "causal_zscore")
    np.testing.assert_array_equal(a[:150], b[:150])
    assert np.isnan(a[:9]).all() and np.isfinite(a[10:]).all()
    z = normalize(x, "zscore")
    np.testing.assert_allclose(np.nanmean(z, 0), 0, atol=1e-12)


def test_causal_exponential_smoothing_uses_no_future_and_gaussian_keeps_nan():
    x = np.zeros((100, 1))
    x[50] = 1.0
    s = smooth(x, 0.5, "exponential", 2.0)
    assert (s[:50] == 0).all() and s[50, 0] > 0
    g = smooth(np.where(np.arange(100)[:, None] == 20, np.nan, 1.0), 0.5, "gaussian", 1.0)
    assert np.isnan(g[20, 0]) and np.allclose(g[np.arange(100) != 20], 1.0)


def test_behaviour_is_resampled_onto_the_same_grid():
    t = 100 + np.arange(60) * 0.6
    rec = RawRecording("w.h5", "w", "D", "f", t, np.ones((60, 1)), [""],
                       behavior={"velocity": Series(t, np.linspace(0, 1, 60)),
                                 "body_angle": Series(t, np.ones((60, 3)))}, signal="synthetic fixture", units="a.u.")
    ds = homogenize(rec)
    assert ds["behavior_velocity"].dims == ("time",) and ds["behavior_body_angle"].shape[1] == 3
    np.testing.assert_allclose(ds["behavior_velocity"].values[[0, -1]], [0, ds["time"].values[-1] / np.ptp(t)],
                               atol=1e-6)


def _gappy_recording():
    """Frames every 0.2 s over 20 s with two holes the lab dropped: (5, 9) and (14, 15) s."""
    t = np.round(np.arange(0, 20.0001, 0.2), 6)
    t = t[~(((t > 5.0) & (t < 9.0)) | ((t > 14.0) & (t < 15.0)))]
    traces = np.column_stack([t, 2 * t])
    states = (t > 10).astype(float)
    return RawRecording("gaps.h5", "gaps", "D", "f", 1000 + t, traces, ["AVAL", ""],
                        behavior={"velocity": Series(1000 + t, -t), "reversal": Series(1000 + t, states, discrete=True)},
                        signal="synthetic fixture", units="a.u.")


def test_grid_points_far_from_any_frame_are_nan_and_not_valid_in_traces_and_behaviour():
    # median frame interval 0.2 s, tolerance 1.5 x 0.2 = 0.3 s: the grid points of the 0.5 s
    # grid farther than 0.3 s from every frame are exactly 5.5 ... 8.5 and 14.5
    expected_invalid = [5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 14.5]
    for params in (HomogenizeParams(anti_alias=False), HomogenizeParams()):
        ds = homogenize(_gappy_recording(), params)
        grid = ds["time"].values
        invalid = grid[~ds["valid"].values]
        np.testing.assert_allclose(invalid, expected_invalid)
        assert ds.attrs["n_grid_dropped"] == 8
        for name in ("roi_calcium", "behavior_velocity", "behavior_reversal"):
            values = ds[name].values
            assert np.isnan(values[~ds["valid"].values]).all(), name
            assert np.isfinite(values[ds["valid"].values]).all(), name
    ds = homogenize(_gappy_recording(), HomogenizeParams(anti_alias=False))
    ok = ds["valid"].values
    np.testing.assert_allclose(ds["calcium"].sel(neuron="AVAL").values[ok], grid[ok], atol=1e-6)
    np.testing.assert_allclose(ds["behavior_velocity"].values[ok], -grid[ok], atol=1e-6)
    rec = _gappy_recording()
    np.testing.assert_array_equal(ds["native_calcium"].values, rec.traces)        # frames as recorded
    np.testing.assert_array_equal(ds["native_time"].values, rec.timestamps - 1000)


def test_a_wider_gap_tolerance_keeps_more_grid_points_and_is_a_stated_parameter():
    ds = homogenize(_gappy_recording(), HomogenizeParams(gap_tolerance=3.0))     # 0.6 s
    np.testing.assert_allclose(ds["time"].values[~ds["valid"].values], [6.0, 6.5, 7.0, 7.5, 8.0])
    assert '"gap_tolerance": 3.0' in ds.attrs["homogenize_params"]


def test_a_recording_without_signal_or_units_is_refused():
    import pytest

    from wormflow.core.errors import RecordingError

    rec = _gappy_recording()
    rec.units = ""
    with pytest.raises(RecordingError, match="units"):
        homogenize(rec)
