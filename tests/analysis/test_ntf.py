"""The NTF engine: planted non-negative factors are recovered, with and without missing entries."""

import numpy as np
import pytest

from analysis.ntf import match_components, nonneg_cp_hals


def planted(shape=(60, 50, 6), rank=3, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    factors = [rng.gamma(1.0, 1.0, (n, rank)) * (rng.random((n, rank)) < 0.5) + 0.01 for n in shape]
    x = np.einsum("ir,jr,kr->ijk", *factors)
    return x + noise * x.std() * np.abs(rng.normal(size=x.shape)), factors


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_planted_components_are_recovered(missing):
    x, truth = planted()
    mask = np.random.default_rng(1).random(x.shape) >= missing
    res = nonneg_cp_hals(x, 3, mask=mask, n_iter=500, init="svd")
    assert res.errors[-1] < 0.05
    assert all(np.diff(res.errors[5:]) <= 1e-9)                  # observed-entry error never rises
    for true, found in zip(truth, res.factors):
        _, corr = match_components(true, found)
        assert corr.min() > 0.97
    assert all((f >= 0).all() for f in res.factors)


def test_missing_entries_are_not_treated_as_zeros():
    x, _ = planted(seed=3)
    holes = np.random.default_rng(4).random(x.shape) < 0.3
    with_nan = np.where(holes, np.nan, x)
    res = nonneg_cp_hals(with_nan, 3, n_iter=500, init="svd")
    recon = res.reconstruct()
    rel = np.abs(recon[holes] - x[holes]).mean() / x[holes].mean()
    assert rel < 0.05                                              # held-out entries predicted


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3-way"):
        nonneg_cp_hals(np.ones((3, 3)), 1)
    with pytest.raises(ValueError, match="negative"):
        nonneg_cp_hals(-np.ones((3, 3, 3)), 1)
    with pytest.raises(ValueError, match="every entry is missing"):
        nonneg_cp_hals(np.full((3, 3, 3), np.nan), 1)


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_the_reported_error_is_the_error_of_the_returned_factors(missing):
    """In float32 the running Gram-matrix estimate drifts from the truth by up to ~0.5%;
    the last reported error is that of the factors returned, on the observed entries."""
    x, _ = planted(shape=(400, 120, 7), rank=4, noise=0.05, seed=5)
    x = x.astype(np.float32)
    observed = np.random.default_rng(6).random(x.shape) >= missing
    res = nonneg_cp_hals(np.where(observed, x, np.nan), 4, n_iter=25, tol=0, dtype=np.float32)
    recon = res.reconstruct().astype(np.float64)
    exact = np.sqrt(((x - recon)[observed] ** 2).sum() / (x.astype(np.float64)[observed] ** 2).sum())
    assert res.errors[-1] == pytest.approx(exact, rel=1e-5)
