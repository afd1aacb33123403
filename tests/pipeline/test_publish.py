"""`wormflow publish`: Hub dataset folders that load offline with `datasets` and equal the stores."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    """A workdir with the mirror's activity store, three connectome sources (under MIT and
    GPL-3.0) and a result of each analysis (small fits: the checks are of the tables)."""
    wd = tmp_path_factory.mktemp("wd")
    shutil.copytree(mirror_store[0], wd / "activity.zarr")
    c = mirror / "connectome"
    ingest_connectomes([c / "White1986" / "aconnectome_white_1986_whole.csv", c / "Cook2019" / "herm_full_edgelist.csv",
                        c / "Bentley2016"], wd / "connectome.zarr")
    store, out = ["--store", str(wd / "activity.zarr")], ["--out", str(wd / "analysis")]
    for args in (["tsnet", "--worm", "Dag2023/2022-07-27-45", "--construction", "horizontal", "--workers", "1"],
                 ["hmmglm", "--states", "2", "--max-neurons", "20", "--restarts", "1"],
                 ["ntf", "--rank", "2", "--restarts", "1", "--min-worms", "4", "--workers", "1"],
                 ["langevin", "--epochs", "2", "--latent", "3", "--hidden", "8", "--max-neurons", "20",
                  "--device", "cpu"]):
        result = CliRunner().invoke(main, ["analyze", args[0], *store, *out, *args[1:]])
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


HUB_LICENCES = {"mit", "gpl-3.0", "lgpl-3.0", "apache-2.0", "bsd-3-clause", "cc-by-4.0", "cc0-1.0", "unknown"}


def _configs(published, collection):
    from huggingface_hub import DatasetCard

    return [c["config_name"] for c in DatasetCard.load(published / collection / "README.md").data.configs]


def test_every_config_loads_offline_and_the_cards_validate(published):
    import datasets
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    sizes = json.loads((Path(datasets.__file__).parent / "utils" / "resources" / "size_categories.json").read_text())
    expected = {"activity": ["neurons", "worms"],
                "connectome": ["edges-mit", "edges-gpl-3.0", "consensus", "neurons", "sources"],
                "analysis": ["tsnet", "hmmglm_states", "hmmglm_couplings", "hmmglm_model", "ntf_pairs", "ntf_time",
                             "ntf_worms", "ntf_neurons", "langevin_scores", "langevin_windows", "langevin_heldout"]}
    for collection, configs in expected.items():
        card = DatasetCard.load(published / collection / "README.md")
        data = DatasetCardData(**card.data.to_dict())             # the Hub's card data accepts every field
        assert [c["config_name"] for c in data.configs] == configs
        assert MetadataConfigs.from_dataset_card_data(data)        # the configs as `datasets` reads them
        ids = data.license if isinstance(data.license, list) else [data.license]
        assert set(ids) <= HUB_LICENCES and "other" not in ids
        assert data.pretty_name and data.task_categories and data.tags and set(data.size_categories) <= set(sizes)
        text = card.text
        for config in configs:
            assert _load(published / collection, config).num_rows > 0
            assert f"| `{config}` | `" in text                      # each config's licence is stated
        assert "```bibtex\n@article{" in text and "<user>" not in text
    # chemical and electrical layers come from Cook 2019 and White 1986, both MIT (c302); the
    # registry table stands on files that state no licence; wormflow's own source list is MIT
    licences = [("connectome", "edges-mit", "mit"), ("connectome", "consensus", "mit"),
                ("connectome", "neurons", "unknown"), ("connectome", "sources", "mit"),
                ("activity", "neurons", "unknown")]
    for collection, config, lid in licences:
        assert f"| `{config}` | `{lid}` |" in (published / collection / "README.md").read_text()
    text = (published / "activity" / "README.md").read_text()
    assert "doi:10.1016/j.cell.2023.04.023" in text and "Scholz" in text      # the papers are cited
    assert "NSM_5HTR_analysis@47bc3704c1" in text                               # licence and pinned source
    ctext = (published / "connectome" / "README.md").read_text()
    assert "doi:10.1038/s41586-019-1352-7" in ctext and "doi = {10.1098/rstb.1986.0056}" in ctext
    atext = (published / "analysis" / "README.md").read_text()
    assert "balanced accuracy" in atext and "held-out R²" in atext and "circular-shift null" in atext


def test_licence_ids_come_from_the_sources_statements_and_combine_to_the_most_restrictive():
    from pipeline.publish.cards import combined_licence, licence_id
    from pipeline.registry import registry

    ids = {e.license: licence_id(e.license) for e in registry()}
    assert ids["MIT (setup.py license field; no LICENSE file)"] == "mit"
    assert ids["GPL-3.0 (LICENSE file)"] == "gpl-3.0"
    assert ids["not stated (no LICENSE file)"] == "unknown"
    assert set(ids.values()) <= HUB_LICENCES
    assert combined_licence(["mit", "gpl-3.0"]) == "gpl-3.0"
    assert combined_licence(["mit", "gpl-3.0", "unknown"]) == "unknown"
    assert combined_licence(["mit"]) == "mit" and combined_licence([]) == "unknown"


def test_the_cards_usage_snippet_runs_as_written(published):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(published.parent / ".hfcache-snippet")}
    for collection in ("activity", "connectome", "analysis"):
        text = (published / collection / "README.md").read_text()
        snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
        run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=300,
                             cwd=published)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "num_rows" in run.stdout


def test_a_large_config_is_cut_into_shards_of_the_target_size(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.publish.tables import Collection, write_config

    col = Collection("t", tmp_path)
    values = np.random.default_rng(0).normal(size=(1000, 256))
    write_config(col, "big", {"trace": pa.array(list(values)), "i": pa.array(np.arange(1000))}, inputs=[],
                 note="test", shard_bytes=500_000)
    files = col.configs["big"]
    assert len(files) == 5 and files[0].endswith("train-00000-of-00005.parquet")
    back = pa.concat_tables([pq.read_table(tmp_path / f) for f in files])
    assert back["i"].to_pylist() == list(range(1000))
    write_config(col, "small", {"i": pa.array(np.arange(10))}, inputs=[], note="test")
    assert col.configs["small"] == ["data/small/train-00000-of-00001.parquet"]


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
    from pipeline.publish.cards import input_licence

    c = open_connectome(workdir / "connectome.zarr").load()
    parts = {config: _load(published / "connectome", config) for config in _configs(published, "connectome")
             if config.startswith("edges-")}
    assert sum(p.num_rows for p in parts.values()) == c.sizes["edge"]
    got = sorted(r for p in parts.values() for r in zip(p["source"], p["pre"], p["post"], p["kind"], p["weight"]))
    want = sorted(zip(*(np.asarray(c[v].values, dtype=object).tolist() for v in
                        ("edge_source", "edge_pre", "edge_post", "edge_kind")), c.edge_weight.values.tolist()))
    assert got == want
    sha = dict(zip(np.asarray(c.source.values, dtype=object), np.asarray(c.source_sha256.values, dtype=object)))
    for config, p in parts.items():          # every edge is in the config of its source's licence
        assert {input_licence(sha[s]) for s in set(p["source"])} == {config.removeprefix("edges-")}
    sources = _load(published / "connectome", "sources")
    assert sorted(sources["sha256"]) == sorted(np.asarray(c.source_sha256.values, dtype=object).tolist())
    res = open_result(workdir / "analysis" / "tsnet.zarr").load()
    rows = _load(published / "analysis", "tsnet")
    lam = {r["neuron"]: r["hvg_lambda"] for r in rows}
    want = res["horizontal"].sel(worm="Dag2023/2022-07-27-45", metric="hvg_lambda").to_series().dropna()
    assert lam == pytest.approx(want.to_dict(), rel=0, abs=0)


def test_hmmglm_ntf_and_langevin_rows_equal_their_results(published, workdir):
    hmm = open_result(workdir / "analysis" / "hmmglm.zarr").load()
    states = {r["worm"]: r for r in _load(published / "analysis", "hmmglm_states")}
    assert sorted(states) == sorted(map(str, hmm.worm.values))
    for w, r in states.items():
        st = hmm.states.sel(worm=w).values
        np.testing.assert_array_equal(r["state"], st[st >= 0])
        np.testing.assert_array_equal(r["time_in_seconds"], hmm.time.values[st >= 0])   # seconds on the store grid
    couplings = _load(published / "analysis", "hmmglm_couplings")
    assert couplings.num_rows == hmm.weights.size
    r = couplings[7]
    assert r["weight"] == float(hmm.weights.sel(state=r["state"], post=r["post"], pre=r["pre"]))
    ntf = open_result(workdir / "analysis" / "ntf.zarr").load()
    pairs = _load(published / "analysis", "ntf_pairs")
    assert pairs.num_rows == ntf.pair_loading.size
    r = pairs[ntf.sizes["pair"] + 3]                     # component 1, pair 3
    assert (r["component"], r["neuron_a"], r["loading"]) == (1, str(ntf.neuron_a.values[3]),
                                                             float(ntf.pair_loading.values[3, 1]))
    worms = _load(published / "analysis", "ntf_worms")
    assert {(r["worm"], r["component"]): r["loading"] for r in worms} == {
        (str(w), int(k)): float(ntf.worm_loading.sel(worm=w, component=k)) for w in ntf.worm.values
        for k in ntf.component.values}
    lf = open_result(workdir / "analysis" / "langevin.zarr").load()
    scores = {r["model"]: r["heldout_r2"] for r in _load(published / "analysis", "langevin_scores")}
    assert scores == dict(zip(map(str, lf.model.values), lf.heldout_r2.values.tolist()))
    windows = _load(published / "analysis", "langevin_windows")
    assert windows.num_rows == lf.sizes["window"]
    np.testing.assert_array_equal(np.asarray(windows[0]["latent"], dtype=np.float32), lf.latents.values[0])


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
