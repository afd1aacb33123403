"""Time series to networks: known results of the constructions, metrics against networkx, gaps."""

import math

import networkx as nx
import numpy as np
import pytest
import xarray as xr

from analysis import surrogates, tsnet
from analysis.tsnet import simulation as simulate


def test_hvg_of_iid_noise_has_the_exact_exponential_degree_law():
    x = np.random.default_rng(1).random(100_000)
    lam = tsnet.hvg_exponent(x)
    assert abs(lam / math.log(1.5) - 1) < 0.02
    G = tsnet.visibility_graph(x, "horizontal")
    k = np.array([d for _, d in G.degree()])
    assert abs(k.mean() - 4) < 0.01
    p = tsnet.degree_distribution(k)
    for kk in range(2, 9):
        assert p[kk] == pytest.approx(tsnet.hvg_iid_distribution(kk), rel=0.05)


def _logistic_map(n, x0, r=4.0):
    x = np.empty(n)
    x[0] = x0
    for i in range(1, n):
        x[i] = r * x[i - 1] * (1 - x[i - 1])
    return x


def test_hvg_tail_fit_tells_the_chaotic_logistic_map_from_noise_and_from_its_surrogate():
    # Luque et al. 2009: chaotic series have lambda < ln(3/2), the iid value; fitted over
    # k >= 3 both read ~0.406, so the rate is fitted where the law holds (the KS rule)
    rng = np.random.default_rng()
    for _ in range(3):
        chaos = _logistic_map(3000, rng.uniform(0.05, 0.95))
        k = np.array([d for _, d in tsnet.visibility_graph(chaos, "horizontal").degree()])
        lam, k_min = tsnet.fit_tail(k, "geometric", k_floor=3)
        assert lam == tsnet.hvg_exponent(chaos) and k_min > 3 and (k >= k_min).sum() >= tsnet.MIN_TAIL
        noise_lam = tsnet.hvg_exponent(rng.random(3000))
        assert lam < 0.33 < 0.37 < noise_lam < 0.44, (lam, noise_lam)
        values = dict(zip(tsnet.METRICS, tsnet.trace_metrics(chaos, "horizontal", modularity=False)[0]))
        assert values["hvg_lambda"] == pytest.approx(lam) and values["hvg_k_min"] == k_min
        assert values["hvg_lambda_null"] > 0.37         # the phase-randomized surrogate reads as noise


def test_surrogates_keep_spectrum_and_gaps_and_break_only_what_they_should():
    rng = np.random.default_rng()
    x = np.cumsum(rng.normal(size=512))
    x[100:120] = np.nan
    s = surrogates.phase_randomized(x, rng)
    assert np.array_equal(np.isnan(s), np.isnan(x))
    for lo, hi in ((0, 100), (120, 512)):
        np.testing.assert_allclose(np.abs(np.fft.rfft(s[lo:hi] - s[lo:hi].mean())),
                                   np.abs(np.fft.rfft(x[lo:hi] - x[lo:hi].mean())), rtol=1e-8, atol=1e-8)
        assert np.corrcoef(s[lo:hi], x[lo:hi])[0, 1] < 0.9
    traces = rng.normal(size=(3, 200, 4))
    traces[1, 150:, 2] = np.nan                          # a recording that ended early
    shifted = surrogates.circular_shift(traces, rng, axis=1)
    assert np.isnan(shifted[1, 150:, 2]).all() and np.isfinite(shifted[1, :150, 2]).all()
    for w in range(3):
        for n in range(4):
            a, b = np.sort(traces[w, :, n]), np.sort(shifted[w, :, n])
            np.testing.assert_array_equal(a[np.isfinite(a)], b[np.isfinite(b)])
    assert not np.allclose(shifted[0], traces[0])


def test_hvg_of_a_periodic_series_has_a_bounded_regular_degree_sequence():
    T = 12
    pattern = np.random.default_rng(T).random(T)
    maxima = []
    for reps in (100, 1000):
        k = np.array([d for _, d in tsnet.visibility_graph(np.tile(pattern, reps), "horizontal").degree()])
        # Nunez et al. 2012: mean degree of a period-T series is 4(1 - 1/(2T))
        assert k.mean() == pytest.approx(4 * (1 - 1 / (2 * T)), abs=0.01)
        interior = k[T:-T].reshape(-1, T)
        assert (interior == interior[0]).all()          # the same degrees in every period
        maxima.append(k.max())
    assert maxima[0] == maxima[1] <= 2 * T


@pytest.mark.parametrize("hurst", [0.3, 0.5, 0.7])
def test_nvg_of_fractional_brownian_motion_follows_the_hurst_exponent(hurst):
    # Lacasa et al. 2009: P(k) ~ k^-gamma with gamma = 3 - 2H; tolerance 0.15 over 3 series of 8192
    gammas = [tsnet.nvg_exponent(simulate.fbm(8192, hurst, seed=s)) for s in range(3)]
    assert abs(np.mean(gammas) - (3 - 2 * hurst)) < 0.15


def test_nvg_exponent_falls_as_the_hurst_exponent_rises():
    g = [np.mean([tsnet.nvg_exponent(simulate.fbm(4096, h, seed=s)) for s in range(2)]) for h in (0.2, 0.5, 0.8)]
    assert g[0] > g[1] > g[2]


def _elongation(G):
    m = tsnet.graph_metrics(G)
    return m, m["path_length"] / (math.log(m["n_nodes"]) / math.log(m["mean_degree"]))


@pytest.mark.parametrize("similarity", ["correlation", "distance"])
def test_cycle_network_of_a_noisy_sine_is_a_chain_and_of_noise_is_not(similarity):
    sine = simulate.pseudo_periodic(5000, period=25, drift=0.01, noise=0.1, seed=1)
    noise = np.random.default_rng(2).normal(size=5000)
    ms, es = _elongation(tsnet.cycle_network(sine, similarity=similarity, density=0.05, min_distance=18))
    mn, en = _elongation(tsnet.cycle_network(noise, similarity=similarity, density=0.05, min_distance=18))
    assert abs(ms["n_nodes"] - mn["n_nodes"]) < 20          # same number of cycles, same density
    assert es > 1.5 and en < 1.3                           # path length against a random graph's
    assert ms["diameter"] >= 1.8 * mn["diameter"]


def test_cycle_network_finds_one_node_per_period_by_default():
    sine = simulate.pseudo_periodic(5000, period=25, seed=3)
    G = tsnet.cycle_network(sine)
    assert abs(G.number_of_nodes() - 200) <= 3
    starts = [G.nodes[i]["start"] for i in range(G.number_of_nodes())]
    assert np.median(np.diff(starts)) == pytest.approx(25, abs=1)
    assert G.number_of_edges() == pytest.approx(0.1 * 199 * 200 / 2, rel=0.05)


def test_recurrence_network_has_the_requested_recurrence_rate():
    x = simulate.pseudo_periodic(3000, period=40, seed=4)
    G = tsnet.recurrence_network(x, dim=3, rate=0.03)
    n = G.number_of_nodes()
    assert G.graph["lag"] > 1
    assert n == 3000 - 2 * G.graph["lag"]
    assert 2 * G.number_of_edges() / (n * (n - 1)) == pytest.approx(0.03, rel=0.02)
    big = tsnet.recurrence_network(np.random.default_rng(0).normal(size=6000), rate=0.01, exact_limit=1000)
    assert big.graph["recurrence_rate"] == pytest.approx(0.01, rel=0.05)   # epsilon from sampled pairs


def test_nan_gaps_split_the_series_and_short_ones_can_be_bridged():
    x = np.random.default_rng(5).random(200)
    x[:3] = np.nan
    x[50:60] = np.nan       # long gap
    x[120] = np.nan         # one-sample gap
    x[-2:] = np.nan
    G = tsnet.visibility_graph(x, "natural")
    assert G.graph["n_segments"] == 3 and G.graph["n_interpolated"] == 0
    assert set(G.nodes) == set(np.flatnonzero(np.isfinite(x)).tolist())   # nodes keep sample indices
    for u, v in G.edges:
        lo, hi = sorted((u, v))
        assert not np.isnan(x[lo:hi + 1]).any()                         # no line of sight across a gap
    B = tsnet.visibility_graph(x, "natural", max_gap=1)
    assert B.graph["n_segments"] == 2 and B.graph["n_interpolated"] == 1 and 120 in B
    seg = tsnet.segments(np.array([1.0, np.nan, 2.0, 3.0, 4.0]), min_length=3)
    assert [s for s, _ in seg.parts] == [2] and seg.n_dropped == 1
    R = tsnet.recurrence_network(x, dim=3, lag=2)
    assert all(not np.isnan(x[i:i + 5]).any() for i in R.nodes)         # no embedding vector spans a gap


def test_directed_and_weighted_visibility_graphs():
    x = np.random.default_rng(6).random(300)
    D = tsnet.visibility_graph(x, "natural", directed="left_to_right")
    assert isinstance(D, nx.DiGraph) and all(u < v for u, v in D.edges)
    W = tsnet.visibility_graph(x, "horizontal", weighted="abs_slope")
    assert all(d["weight"] >= 0 for *_, d in W.edges(data=True))
    U = tsnet.visibility_graph(x, "horizontal")
    assert set(map(frozenset, W.edges)) == set(map(frozenset, U.edges))
    t = np.cumsum(np.random.default_rng(7).uniform(0.5, 1.5, 300))
    assert set(tsnet.visibility_graph(x, "natural", t=t).edges) != set(tsnet.visibility_graph(x, "natural").edges)


def test_graph_metrics_agree_with_networkx():
    rng = np.random.default_rng(8)
    for G in (nx.gnm_random_graph(300, 700, seed=1), tsnet.visibility_graph(rng.random(400), "natural"),
              nx.disjoint_union(nx.cycle_graph(50), nx.path_graph(10))):
        m = tsnet.graph_metrics(G)
        giant = G.subgraph(max(nx.connected_components(G), key=len))
        assert m["clustering"] == pytest.approx(nx.average_clustering(G))
        assert m["transitivity"] == pytest.approx(nx.transitivity(G))
        assert m["path_length"] == pytest.approx(nx.average_shortest_path_length(giant))
        assert m["diameter"] == nx.diameter(giant)
        assert m["giant_fraction"] == giant.number_of_nodes() / G.number_of_nodes()
        assert m["mean_degree"] == pytest.approx(2 * G.number_of_edges() / G.number_of_nodes())
        assert m["density"] == pytest.approx(nx.density(G))
        if np.std([d for _, d in G.degree()]) > 0:
            assert m["assortativity"] == pytest.approx(nx.degree_assortativity_coefficient(G), abs=1e-9)
        assert 0 < m["modularity"] < 1


def test_large_graphs_estimate_paths_from_sampled_sources():
    G = tsnet.visibility_graph(np.random.default_rng(9).random(3000), "horizontal")
    exact = tsnet.graph_metrics(G, modularity=False)
    sampled = tsnet.graph_metrics(G, exact_limit=1000, path_sources=200, modularity=False)
    assert exact["path_exact"] == 1 and sampled["path_exact"] == 0
    assert sampled["path_length"] == pytest.approx(exact["path_length"], rel=0.05)
    assert sampled["diameter"] <= exact["diameter"]
    q = [tsnet.graph_metrics(G, exact_limit=1000, seed=3)["modularity"] for _ in range(2)]
    assert q[0] == q[1] and 0.8 < q[0] < 1                # seeded Louvain: reproducible


def test_tsnet_metrics_over_a_lazy_array_match_single_traces():
    rng = np.random.default_rng(10)
    data = rng.normal(size=(2, 500, 3))
    data[1, :, 2] = np.nan                     # an unobserved neuron
    da = xr.DataArray(data, dims=("worm", "time", "neuron"),
                      coords={"worm": ["a", "b"], "neuron": ["AVAL", "AVAR", "RIML"]}).chunk({"worm": 1})
    lazy = tsnet.tsnet_metrics(da, ("horizontal", "cycle"), k_max=20)
    assert lazy["horizontal"].chunks is not None
    ds = lazy.compute()
    assert ds["horizontal"].dims == ("worm", "neuron", "metric")
    assert ds["horizontal_degree_counts"].dims == ("worm", "neuron", "degree")
    one, counts = tsnet.trace_metrics(data[0, :, 1], "horizontal", k_max=20)
    np.testing.assert_array_equal(ds["horizontal"].sel(worm="a", neuron="AVAR").values, one)
    np.testing.assert_array_equal(ds["horizontal_degree_counts"].sel(worm="a", neuron="AVAR").values, counts)
    assert np.isnan(ds["horizontal"].sel(worm="b", neuron="RIML")).all()
    assert ds["horizontal_degree_counts"].sel(worm="b", neuron="RIML").sum() == 0
    assert counts.sum() == 500
    with pytest.raises(ValueError, match="unknown constructions"):
        tsnet.tsnet_metrics(da, ("spiral",))
