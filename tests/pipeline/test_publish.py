"""`wormflow publish`: Hub dataset folders that load offline with `datasets` and equal the stores."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from activity import open_activity
from connectome.store import open_connectome
from pipeline.cli import main
from pipeline.connectome_ingest import ingest_connectomes
from pipeline.publish import publish
from pipeline.storage import open_result


@pytest.fixture(scope="module")
def workdir(mirror_store, mirror, tmp_path_factory):
    """A workdir with the mirror's activity store, three connectome sources and a tsnet result."""
    wd = tmp_path_factory.mktemp("wd")
    shutil.copytree(mirror_store[0], wd / "activity.zarr")
    c = mirror / "connectome"
    ingest_connectomes([c / "White1986" / "aconnectome_white_1986_whole.csv", c / "Cook2019" / "herm_full_edgelist.csv",
                        c / "Bentley2016"], wd / "connectome.zarr")
    result = CliRunner().invoke(main, ["analyze", "tsnet", "--store", str(wd / "activity.zarr"), "--out",
                                       str(wd / "analysis"), "--worm", "Dag2023/2022-07-27-45", "--construction",
                                       "horizontal", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return wd


@pytest.fixture(scope="module")
def published(workdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pub")
    result = CliRunner().invoke(main, ["publish", str(workdir), "--to", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _load(folder, config):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    return load_dataset(str(folder), config, split="train", cache_dir=str(folder.parent / ".hfcache"))


def test_every_config_loads_offline_and_the_cards_parse(published):
    from huggingface_hub import DatasetCard

    expected = {"activity": ["neurons", "worms"], "connectome": ["edges", "consensus", "neurons", "sources"],
                "analysis": ["tsnet"]}
    for collection, configs in expected.items():
        card = DatasetCard.load(published / collection / "README.md")
        assert [c["config_name"] for c in card.data.configs] == configs
        assert card.data.license == "other" and card.data.pretty_name and card.data.size_categories
        for config in configs:
            assert _load(published / collection, config).num_rows > 0
    text = (published / "activity" / "README.md").read_text()
    assert "doi:10.1016/j.cell.2023.04.023" in text and "Scholz" in text      # the papers are cited
    assert "NSM_5HTR_analysis@47bc3704c1" in text                               # licence and pinned source
    ctext = (published / "connectome" / "README.md").read_text()
    assert "doi:10.1038/s41586-019-1352-7" in ctext and "doi:10.1098/rstb.1986.0056" in ctext


def test_activity_rows_equal_the_store_exactly(published, workdir):
    ds = open_activity(workdir / "activity.zarr").load()
    rows = _load(published / "activity", "neurons")
    assert rows.num_rows == int(ds.n_rois.sum())
    by_key = {(r["worm"], r["roi"]): r for r in rows}
    for w in range(ds.sizes["worm"]):
        one = ds.isel(worm=w)
        valid = one.valid.values
        for j in range(int(one.n_rois)):
            r = by_key[(str(one.worm.values), j)]
            assert r["neuron"] == str(one.roi_neuron.values[j]) and r["roi_label"] == str(one.roi_label.values[j])
            np.testing.assert_array_equal(np.asarray(r["calcium_data"], dtype=np.float32),
                                          one.roi_calcium.values[valid, j])
            np.testing.assert_array_equal(np.asarray(r["time_in_seconds"]), one.time.values[valid])
            n = int(one.n_frames)
            np.testing.assert_array_equal(np.asarray(r["original_calcium_data"]), one.native_calcium.values[:n, j])
            np.testing.assert_array_equal(np.asarray(r["original_time_in_seconds"]), one.native_time.values[:n])
    aval = [r for r in rows if r["neuron"] == "AVAL"]
    assert len(aval) == 5 and all(r["is_labeled_neuron"] and r["slot"] >= 0 for r in aval)
    worms = _load(published / "activity", "worms")
    scholz = next(r for r in worms if r["source_dataset"] == "Scholz2018")
    one = ds.sel(worm=scholz["worm"])
    np.testing.assert_array_equal(np.asarray(scholz["behavior_ss_2D"], dtype=np.float32),
                                  one.behavior_ss_2D.values[one.valid.values])


def test_connectome_and_analysis_rows_equal_the_stores(published, workdir):
    c = open_connectome(workdir / "connectome.zarr").load()
    edges = _load(published / "connectome", "edges")
    assert edges.num_rows == c.sizes["edge"]
    got = sorted(zip(edges["source"], edges["pre"], edges["post"], edges["kind"], edges["weight"]))
    want = sorted(zip(*(np.asarray(c[v].values, dtype=object).tolist() for v in
                        ("edge_source", "edge_pre", "edge_post", "edge_kind")), c.edge_weight.values.tolist()))
    assert got == want
    sources = _load(published / "connectome", "sources")
    assert sorted(sources["sha256"]) == sorted(np.asarray(c.source_sha256.values, dtype=object).tolist())
    res = open_result(workdir / "analysis" / "tsnet.zarr").load()
    rows = _load(published / "analysis", "tsnet")
    lam = {r["neuron"]: r["hvg_lambda"] for r in rows}
    want = res["horizontal"].sel(worm="Dag2023/2022-07-27-45", metric="hvg_lambda").to_series().dropna()
    assert lam == pytest.approx(want.to_dict(), rel=0, abs=0)


def test_publishing_twice_gives_byte_identical_parquet(workdir, published, tmp_path):
    publish(workdir, tmp_path / "again")
    first = {p.relative_to(published): hashlib.sha256(p.read_bytes()).hexdigest() for p in published.rglob("*.parquet")}
    again = {p.relative_to(tmp_path / "again"): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (tmp_path / "again").rglob("*.parquet")}
    assert first == again and len(first) > 5


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records what would be created and uploaded."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        files = sorted(str(p.relative_to(kw["folder_path"])) for p in __import__("pathlib").Path(
            kw["folder_path"]).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kw, "files": files}))


def test_push_sends_each_collection_to_its_repo_and_never_shows_the_token(workdir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_123")
    hub = FakeHub()
    cols = publish(workdir, tmp_path / "p", repo_id="lab42/worms", private=True, api=hub)
    created = [kw for name, kw in hub.calls if name == "create_repo"]
    assert [c["repo_id"] for c in created] == ["lab42/worms-activity", "lab42/worms-connectome", "lab42/worms-analysis"]
    assert all(c["repo_type"] == "dataset" and c["private"] for c in created)
    uploads = [kw for name, kw in hub.calls if name == "upload_folder"]
    assert all("README.md" in u["files"] and any(f.endswith(".parquet") for f in u["files"]) for u in uploads)
    assert [c.pushed_to for c in cols] == [c["repo_id"] for c in created]
    out = capsys.readouterr()
    assert "hf_secret_token_123" not in out.out + out.err
    assert "hf_secret_token_123" not in json.dumps(hub.calls, default=str)


def test_a_path_without_stores_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["publish", str(tmp_path), "--to", str(tmp_path / "out")])
    assert result.exit_code == 2 and "neither a wormflow store nor a workdir" in result.output
