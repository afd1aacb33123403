"""Every connectome file of the mirror ingests; per-source facts recomputed from the raw files."""

from __future__ import annotations

import h5py
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectome.graph import consensus, to_networkx
from wormflow.core.neurons import neuron_names
from connectome.store import open_connectome
from pipeline.connectome_ingest import ingest_connectomes

NEURONS = set(neuron_names())


@pytest.fixture(scope="module")
def store(mirror, tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "connectome.zarr"
    report = ingest_connectomes([mirror / "connectome"], path)
    assert not report.failed, report.failed
    return path, report


@pytest.fixture(scope="module")
def ds(store):
    return open_connectome(store[0]).load()


def test_every_connectome_file_ingests_and_companions_are_skipped_by_name(store, mirror):
    _, report = store
    assert len(report.sources) == 50
    skipped = {p.split("/")[-1] for p, _ in report.skipped}
    assert skipped == {"neuron_ids.txt", "aconnectome_ids_ganglia.json", "connectome_neurons.csv",
                       "connectome_datasets.json", "Bentley_et_al_2016_expression.csv"}


def test_store_axes_are_the_registry_and_layers_are_nan_where_not_covered(ds):
    assert tuple(ds["pre"].values) == neuron_names() == tuple(ds["post"].values)
    head = ds.sel(source="witvliet_2020_8/xlsx")
    assert not bool(head["covered"].sel(pre="DA5"))               # a head-only EM series
    assert np.isnan(head["chemical"].sel(pre="AVAL", post="DA5"))
    assert np.isfinite(head["chemical"].sel(pre="AVAL", post="AVAR"))


def test_varshney_counts_each_chemical_synapse_once_from_send_rows(ds, mirror):
    raw = pd.read_excel(mirror / "connectome/Varshney2011/NeuronConnectFormatted.xlsx")
    both = raw["Neuron 1"].isin(NEURONS) & raw["Neuron 2"].isin(NEURONS)
    sends = raw[both & raw["Type"].isin(["S", "Sp"])]["Nbr"].sum()
    receives = raw[both & raw["Type"].isin(["R", "Rp"])]["Nbr"].sum()
    stored = float(ds["chemical"].sel(source="varshney_2011/xlsx").sum())
    assert stored == sends                          # not sends + receives, not S alone
    assert stored != raw[both & (raw["Type"] == "S")]["Nbr"].sum()
    assert receives > 0


@pytest.mark.parametrize("source", ["white_1986_whole/tsv", "varshney_2011/xls", "cook_2019_herm/si5",
                                    "witvliet_2020_8/nemanode", "randi_2023_anatomical/h5", "openworm/xls"])
def test_electrical_layers_are_symmetric(ds, source):
    e = ds["electrical"].sel(source=source).values
    np.testing.assert_array_equal(np.nan_to_num(e), np.nan_to_num(e.T))


def test_white_whole_totals_match_the_raw_table(ds, mirror):
    raw = pd.read_csv(mirror / "connectome/White1986/aconnectome_white_1986_whole.csv", sep="\t")
    raw = raw[raw["pre"].isin(NEURONS) & raw["post"].isin(NEURONS)]
    chem = raw[raw["type"] == "chemical"]["synapses"].sum()
    assert float(ds["chemical"].sel(source="white_1986_whole/tsv").sum()) == chem == 6509
    assert int(ds["covered"].sel(source="white_1986_whole/tsv").sum()) == 300


def test_nemanode_compilation_equals_cook_si5_on_chemical_synapses(ds):
    a = ds["chemical"].sel(source="cook_jarrell_2019_h/nemanode").values
    b = ds["chemical"].sel(source="cook_2019_herm/si5").values
    np.testing.assert_array_equal(a, b)
    assert np.nansum(b) == 20965


def test_witvliet_matrix_is_read_post_by_pre_and_matches_its_edge_list(ds):
    m = ds["chemical"].sel(source="witvliet_2020_8/matrix")
    edges = ds["chemical"].sel(source="witvliet_2020_8/nemanode")
    np.testing.assert_array_equal(np.nan_to_num(m.values), np.nan_to_num(edges.values))


def test_well_known_connections_across_sources(ds):
    for source in ("white_1986_whole/tsv", "varshney_2011/xlsx", "cook_2019_herm/si5", "openworm/xls",
                   "randi_2023_anatomical/h5"):
        c = ds["chemical"].sel(source=source)
        assert all(float(c.sel(pre="AVAL", post=f"DA{k}")) > 0 for k in (1, 2, 3)), source   # AVA -> A-class
        assert float(c.sel(pre="DA1", post="AVAL")) < float(c.sel(pre="AVAL", post="DA1")), source
    gap = ds["electrical"].sel(source="cook_2019_herm/si5")
    assert float(gap.sel(pre="AVAR", post="AVBL")) == float(gap.sel(pre="AVBL", post="AVAR")) == 3


def test_functional_atlas_wild_type_q_round_trips_exactly(ds, mirror):
    with h5py.File(mirror / "connectome/Randi2023_funatlas/funatlas.h5", "r") as f:
        ids = [n.decode() for n in f["neuron_ids"][()]]
        q = f["wt/q"][()]
    stored = ds["funatlas_q"].sel(source="randi_2023_funatlas_wt")
    names = [n for n in ids if n in NEURONS]
    idx = [ids.index(n) for n in names]
    # stored [pre = stimulated, post = responding]; the file is [responding, stimulated]
    np.testing.assert_array_equal(stored.sel(pre=names, post=names).values, q[np.ix_(idx, idx)].T.astype(np.float32))


def test_unknown_cell_names_are_reported_not_guessed(ds):
    import json
    unknown = json.loads(str(ds["unknown_names"].sel(source="randi_2023_anatomical/h5").values))
    assert unknown == ["AWCOFF", "AWCON"]
    # (their rows are all zero in that file); partners that are not neurons stay in the
    # long-form table with their raw names
    sel = ds["edge_source"].values == "witvliet_2020_8/xlsx"
    assert "BWM-DL01" in set(ds["edge_post"].values[sel])


def test_networkx_graph_of_one_source(ds):
    g = to_networkx(ds, "white_1986_whole/tsv", "chemical")
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == 300
    assert g["AVAL"]["DA1"]["weight"] == 2.0
    assert sum(w for *_, w in g.edges(data="weight")) == 6509
    e = to_networkx(ds, "white_1986_whole/tsv", "electrical")
    assert not e.is_directed()


def test_consensus_counts_equal_weights_from_different_sources_separately(ds):
    c = consensus(ds, ["white_1986_whole/tsv", "varshney_2011/xlsx", "cook_2019_herm/si5"], "chemical")
    # AVAL -> DA1: 2 (White), 2 (Varshney), 6 (Cook): the two 2s are two observations
    assert float(c["mean"].sel(pre="AVAL", post="DA1")) == pytest.approx((2 + 2 + 6) / 3)
    assert int(c["n_sources"].sel(pre="AVAL", post="DA1")) == 3
    assert int(c["n_covering"].sel(pre="AVAL", post="DA1")) == 3


def test_reingesting_the_same_files_gives_the_same_store(store, mirror, tmp_path):
    path, _ = store
    before = open_connectome(path).load()
    ingest_connectomes([mirror / "connectome/White1986"], path)
    after = open_connectome(path).load()
    assert list(after["source"].values) == list(before["source"].values)
    xr_equal = after.drop_attrs().equals(before.drop_attrs())
    assert xr_equal


def test_witvliet_matrix_coverage_equals_its_edge_list_releases_for_all_8_datasets(ds):
    # every sheet of the matrix file names the same 182 neurons; a dataset covers only the
    # neurons it lists with a synapse. The matrices hold chemical synapses only, so their
    # coverage is that of the edge lists' chemical edges; the full edge lists add the
    # neurons seen only through gap junctions (DB1 in dataset 5, CANR in dataset 7).
    names = np.array(ds["pre"].values.tolist())
    gap_only = {"5": {"DB1"}, "7": {"CANR"}}
    for n in "12345678":
        matrix = set(names[ds["covered"].sel(source=f"witvliet_2020_{n}/matrix").values])
        edges = ds["chemical"].sel(source=f"witvliet_2020_{n}/xlsx").fillna(0).values
        chemical = set(names[(edges > 0).any(axis=1) | (edges > 0).any(axis=0)])
        listed = set(names[ds["covered"].sel(source=f"witvliet_2020_{n}/xlsx").values])
        assert matrix == chemical, n
        assert listed - matrix == gap_only.get(n, set()), n
        assert 161 <= len(matrix) <= 181
    dataset1 = set(names[ds["covered"].sel(source="witvliet_2020_1/matrix").values])
    assert not {"HSNL", "HSNR", "AVFL", "AVFR"} & dataset1          # not yet born / not reconstructed at L1
    uncovered = ~ds["covered"].sel(source="witvliet_2020_1/matrix").values
    assert np.isnan(ds["chemical"].sel(source="witvliet_2020_1/matrix").values[uncovered]).all()
