"""`wormflow analyze tsnet` on every worm of the real mirror, through a Dask cluster."""

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.storage import open_result, write_zarr_atomic


@pytest.fixture(scope="module")
def roi_run(mirror_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("tsnet")
    args = ["analyze", "tsnet", "--store", str(mirror_store[0]), "--out", str(out), "--variable", "roi_calcium",
            "--construction", "horizontal", "--workers", "2"]
    return out, CliRunner().invoke(main, args), args


def test_every_worm_of_the_mirror_gets_hvg_metrics_for_every_roi(roi_run):
    out, result, _ = roi_run
    assert result.exit_code == 0, result.output
    ds = open_result(out / "tsnet.zarr")
    assert ds.sizes["worm"] == 8
    nodes = ds["horizontal"].sel(metric="n_nodes").values
    seen = np.isfinite(nodes)
    assert seen.any(axis=1).all()                              # every worm, Scholz2018 included
    np.testing.assert_array_equal(nodes[seen], ds["n_samples"].values[seen])   # every finite sample a node
    lam = ds["horizontal"].sel(metric="hvg_lambda").values[seen]
    assert np.isfinite(lam).all() and (lam > 0.3).all() and (lam < 2.0).all()   # tail fits of correlated traces
    assert np.median(lam) > np.log(1.5)                        # calcium is correlated, not iid
    k_min = ds["horizontal"].sel(metric="hvg_k_min").values[seen]
    assert (k_min >= 3).all() and (k_min > 3).any()            # the fit's start, chosen per trace and stated
    null = ds["horizontal"].sel(metric="hvg_lambda_null").values[seen]
    assert np.isfinite(null).all()
    # beside its phase-randomized null (same spectrum), calcium's rate is lower: structure
    # a linear process of the same autocorrelation does not have (mirror: 0.58 vs 0.72)
    assert np.median(lam) < np.median(null) and (lam < null).mean() > 0.6
    mean_k = ds["horizontal"].sel(metric="mean_degree")
    assert (mean_k.values[seen] < 4).all()                    # HVG mean degree is 4(1 - 1/(2n)) at most
    flavell = [w for w in ds.worm.values.tolist() if w.startswith("Dag2023/")]
    assert (mean_k.sel(worm=flavell).values[seen[:len(flavell)]] > 3.5).all()
    # the Scholz worm's dropped frames are gaps on the grid: its graphs fall apart into
    # the 8 gap-free stretches instead of linking samples the lab never recorded
    scholz = ds["horizontal"].sel(worm="Scholz2018/BrainScanner20180223_141721")
    giant = scholz.sel(metric="giant_fraction").values
    assert np.isfinite(giant).sum() == 62 and (giant[np.isfinite(giant)] < 1).all()
    assert "Scholz2018" in result.output and "Dag2023" in result.output


def test_output_carries_provenance_and_figures(roi_run, mirror):
    out, _, _ = roi_run
    ds = open_result(out / "tsnet.zarr")
    assert ds.attrs["wormflow_version"] and ds.attrs["variable"] == "roi_calcium"
    assert json.loads(ds.attrs["tsnet_params"])["constructions"] == ["horizontal"]
    assert all(len(s) == 64 for s in ds["source_sha256"].values)
    assert "sha256" in ds.attrs["store_provenance"]
    for name in ("tsnet_degree_distributions.png", "tsnet_horizontal_hvg_lambda.png"):
        png = out / "figures" / name
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_labelled_calcium_of_one_worm_by_natural_and_cycle_graphs_and_a_rerun(mirror_store, tmp_path):
    args = ["analyze", "tsnet", "--store", str(mirror_store[0]), "--out", str(tmp_path), "--workers", "2",
            "--worm", "Dag2023/2022-07-26-31", "--construction", "natural", "--construction", "cycle"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ds = open_result(tmp_path / "tsnet.zarr")
    gamma = ds["natural"].sel(metric="nvg_gamma").values.ravel()
    assert np.isfinite(gamma).sum() == 99 and (np.nanmedian(gamma) > 1.5)
    assert np.isfinite(ds["cycle"].sel(metric="n_nodes").values).sum() == 99
    assert (tmp_path / "figures" / "tsnet_natural_path_length.png").is_file()
    assert ds["neuron"].values.tolist()[:2] == ["ADAL", "ADAR"]
    before = ds["natural"].values
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0
    np.testing.assert_array_equal(open_result(tmp_path / "tsnet.zarr")["natural"].values, before)
    assert not list(tmp_path.glob(".tsnet.zarr.staging*"))


def test_unknown_worms_and_metrics_are_refused(mirror_store, tmp_path):
    base = ["analyze", "tsnet", "--store", str(mirror_store[0]), "--out", str(tmp_path)]
    bad = CliRunner().invoke(main, base + ["--worm", "Nobody/1"])
    assert bad.exit_code == 2 and "Nobody/1" in bad.output
    bad = CliRunner().invoke(main, base + ["--metric", "girth"])
    assert bad.exit_code == 2 and "girth" in bad.output
    assert not (tmp_path / "tsnet.zarr").exists()


def test_a_failed_write_leaves_the_previous_result(tmp_path, monkeypatch):
    path = tmp_path / "r.zarr"
    write_zarr_atomic(xr.Dataset({"a": ("x", np.arange(3.0))}), path)

    class Boom(Exception):
        pass

    real = xr.Dataset.to_zarr

    def explode(self, store, **kwargs):            # half the write done, then the disk fills
        real(self[["a"]].isel(x=slice(0, 2)), store, **kwargs)
        raise Boom("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", explode)
    with pytest.raises(Boom):
        write_zarr_atomic(xr.Dataset({"a": ("x", np.zeros(5))}), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(open_result(path)["a"].values, np.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr", "r.zarr.lock"]   # the store and its writer lock
