"""`wormflow analyze ntf` on the real Flavell worms of the mirror: the affinity tensor built
on a Dask cluster, rank chosen by stability, communities, provenance and figures."""

import numpy as np
import pytest

from activity import open_activity
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.storage import open_result
from tests.pipeline.checks import assert_provenance_and_figures


@pytest.fixture(scope="module")
def ntf_run(mirror_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("ntf")
    args = ["analyze", "ntf", "--store", str(mirror_store[0]), "--out", str(out), "--ranks", "2-3",
            "--restarts", "2", "--min-worms", "4", "--workers", "2"]
    return out, CliRunner().invoke(main, args)


def test_every_labelled_flavell_worm_enters_the_tensor_and_the_rank_is_chosen(ntf_run):
    out, result = ntf_run
    assert result.exit_code == 0, result.output
    ds = open_result(out / "ntf.zarr")
    assert ds.sizes["worm"] == 5 and all(str(w).startswith("Dag2023/") for w in ds.worm.values)
    assert list(ds.candidate_rank.values) == [2, 3]
    assert ds.attrs["rank"] in (2, 3) and ds.sizes["component"] == ds.attrs["rank"]
    assert np.isfinite(ds.rank_error.values).all() and ds.rank_error.values[1] < ds.rank_error.values[0]
    assert (ds.pair_loading.values >= 0).all() and np.allclose(ds.time_loading.max("time"), 1)
    assert ds.time.values[1] - ds.time.values[0] == pytest.approx(5.0)          # 5 s bins of the 0.5 s grid
    assert "stability" in result.output and "core:" in result.output


def test_the_time_axis_ends_where_the_worms_used_end(ntf_run, mirror_store):
    # the 5 labelled worms end at 480.5 s, the store's longest recording (an unlabelled
    # worm) at 682 s: the tensor has no bins where none of its worms recorded anything
    out, _ = ntf_run
    ds = open_result(out / "ntf.zarr")
    store = open_activity(mirror_store[0])
    end = float(store.duration_s.sel(worm=ds.worm.values).max())
    assert end == pytest.approx(480.5, abs=1.0) and float(store.duration_s.max()) > 600
    assert ds.time.values[-1] <= end < ds.time.values[-1] + 5.0


def test_communities_cover_every_neuron_of_the_tensor(ntf_run):
    out, _ = ntf_run
    ds = open_result(out / "ntf.zarr")
    neurons = set(ds.neuron_a.values) | set(ds.neuron_b.values)
    assert set(ds.neuron.values) == neurons
    assert ds.community.shape == (ds.sizes["component"], len(neurons))
    assert (ds.n_blocks.values >= 1).all() and ds.core.any("neuron").values.any()


def test_output_carries_provenance_and_figures(ntf_run):
    out, _ = ntf_run
    ds = open_result(out / "ntf.zarr")
    params = assert_provenance_and_figures(ds, out, ds.worm.values, "ntf",
                                           ("ntf_loadings.png", "ntf_communities.png", "ntf_rank_selection.png"))
    assert params["min_worms"] == 4 and params["bin_s"] == 5.0
    assert "circular-shift null" in params["rank_chosen_by"]
    captions = {name: (out / "figures" / name.replace(".png", ".caption.txt")).read_text()
                for name in ("ntf_loadings.png", "ntf_communities.png", "ntf_rank_selection.png")}
    assert f"{ds.attrs['null_error']:.3f}" in captions["ntf_loadings.png"]
    assert "degree-preserving null" in captions["ntf_communities.png"]


def test_real_worms_beside_their_nulls(ntf_run):
    # the real tensor is explained better than the same tensor of circularly shifted
    # traces, at every candidate rank; each component's blocks beside its rewired graph's
    out, result = ntf_run
    ds = open_result(out / "ntf.zarr")
    assert ds.attrs["error"] < ds.attrs["null_error"]
    assert (ds.rank_error.values < ds.rank_null_error.values).all()
    assert ds.n_blocks_null.dims == ("component",) and (ds.n_blocks_null.values >= 1).all()
    assert "null" in result.output


def test_bad_requests_are_refused_with_the_reason(mirror_store, tmp_path):
    ranks = CliRunner().invoke(main, ["analyze", "ntf", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                      "--ranks", "5-2"])
    assert ranks.exit_code == 2 and "LO-HI" in ranks.output
    unknown = CliRunner().invoke(main, ["analyze", "ntf", "--store", str(mirror_store[0]), "--out", str(tmp_path),
                                        "--rank", "2", "--neuron", "AVAL", "--neuron", "NOTANEURON"])
    assert unknown.exit_code == 2 and "NOTANEURON" in unknown.output
    assert not (tmp_path / "ntf.zarr").exists()
