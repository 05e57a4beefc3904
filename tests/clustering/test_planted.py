"""Planted-module networks: exact partition and densities, the null at strength 0, and
modules found exactly when they are disconnected."""

import numpy as np
import pytest
import scipy.sparse.csgraph as csgraph
from scipy import stats
from sklearn.metrics import adjusted_rand_score

from nnclust.clustering.planted import WEIGHT_LAWS, planted_network
from nnclust.clustering.shuffles import shuffle_layers
from nnclust.clustering.stability import agreement, mean_pairwise_ari, search_labelings
from nnclust.clustering.study import cluster_layers
from nnclust.structure.graph import build_graph

WIDTHS = [10, 13, 7, 6]  # uneven: modules of 3 and 4 units in one group


def _within_count(layer, rows, cols) -> int:
    """Nonzero weights joining units of one module, counted directly."""
    nz = layer.weight != 0
    return int(sum(nz[np.ix_(rows == a, cols == a)].sum() for a in np.unique(rows)))


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0])
def test_partition_and_every_block_density_are_exact(strength):
    net = planted_network(WIDTHS, 3, strength, 0.6, np.random.default_rng(1))
    p_out = 0.6 * (1 - strength)
    assert net.p_out == pytest.approx(p_out)
    offsets = np.cumsum([0, *WIDTHS])
    for g in range(len(WIDTHS)):
        labels = net.labels[offsets[g] : offsets[g + 1]]
        assert (net.group[offsets[g] : offsets[g + 1]] == g).all()
        # contiguous modules whose sizes differ by at most one
        assert labels.tolist() == sorted(labels.tolist()) and set(labels.tolist()) == {0, 1, 2}
        assert np.ptp(np.bincount(labels)) <= 1
    for g, lay in enumerate(net.layers):
        cols = net.labels[offsets[g] : offsets[g + 1]]
        rows = net.labels[offsets[g + 1] : offsets[g + 2]]
        assert lay.weight.shape == (rows.size, cols.size)
        for a in range(3):
            for b in range(3):
                block = lay.weight[np.ix_(rows == a, cols == b)]
                p = 0.6 if a == b else p_out
                assert np.count_nonzero(block) == round(p * block.size), (g, a, b)


def test_strength_zero_has_the_exact_layer_density_and_is_seeded():
    net = planted_network(WIDTHS, 3, 0.0, 0.35, np.random.default_rng(2))
    for lay in net.layers:
        assert np.count_nonzero(lay.weight) == round(0.35 * lay.weight.size)
    again = planted_network(WIDTHS, 3, 0.0, 0.35, np.random.default_rng(2))
    other = planted_network(WIDTHS, 3, 0.0, 0.35, np.random.default_rng(3))
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(net.layers, again.layers))
    assert not all(np.array_equal(a.weight, b.weight) for a, b in zip(net.layers, other.layers))


def _draws(strength: float, n: int, seed: int):
    """(planted, shuffled) within-module counts of the middle layer, n draws each; each
    shuffle is an `all` shuffle of an independent planted network."""
    rng = np.random.default_rng(seed)
    planted, shuffled = [], []
    for _ in range(n):
        net = planted_network([8, 12, 12, 4], 2, strength, 0.4, rng)
        rows, cols = net.labels[20:32], net.labels[8:20]
        planted.append(_within_count(net.layers[1], rows, cols))
        other = planted_network([8, 12, 12, 4], 2, strength, 0.4, rng)
        shuffled.append(_within_count(shuffle_layers(other.layers, "all", rng)[1], rows, cols))
    return np.array(planted), np.array(shuffled)


def _same_law_p(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of a chi-square test that two samples of counts share one law (values
    pooled into bins of at least 10 expected draws)."""
    values = np.concatenate([a, b])
    edges = np.unique(np.quantile(values, np.linspace(0, 1, 9)))
    bins = np.digitize(values, edges[1:-1])
    table = np.array([np.bincount(bins[: a.size], minlength=edges.size - 1),
                      np.bincount(bins[a.size :], minlength=edges.size - 1)])  # fmt: skip
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table).pvalue


def test_at_strength_zero_planted_and_all_shuffled_patterns_share_one_law():
    planted, shuffled = _draws(0.0, 400, seed=0)
    # the within-module count of a uniform pattern is hypergeometric: 144 positions, 72
    # within modules, round(0.4 * 144) = 58 edges
    expected = stats.hypergeom(144, 72, 58)
    assert planted.var() > 0  # fixed block counts would be a structure
    assert _same_law_p(planted, shuffled) > 0.01
    assert abs(planted.mean() - expected.mean()) < 4 * expected.std() / np.sqrt(planted.size)
    assert planted.var() / expected.var() == pytest.approx(1, abs=0.3)
    # and the comparison has power: a weak planted structure is told apart
    weak, shuffled_weak = _draws(0.2, 400, seed=0)
    assert _same_law_p(weak, shuffled_weak) < 1e-6


def _ncuts(strength: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    planted, shuffled = [], []
    for i in range(n):
        net = planted_network([8, 16, 16, 4], 2, strength, 0.5, rng)
        planted.append(cluster_layers(net.layers, 2, seed=i, n_init=4)[1].ncut)
        other = planted_network([8, 16, 16, 4], 2, strength, 0.5, rng)
        shuffled.append(cluster_layers(shuffle_layers(other.layers, "all", rng), 2, seed=i, n_init=4)[1].ncut)
    return np.array(planted), np.array(shuffled)


def test_at_strength_zero_planted_and_all_shuffled_ncuts_share_one_law():
    planted, shuffled = _ncuts(0.0, 120, seed=0)
    assert stats.ks_2samp(planted, shuffled).pvalue > 0.01
    planted, shuffled = _ncuts(0.9, 120, seed=0)
    assert stats.ks_2samp(planted, shuffled).pvalue < 1e-4  # the test can tell structure apart


def test_disconnected_modules_are_found_exactly_with_k_equal_m():
    net = planted_network([12, 24, 24, 6], 3, 1.0, 0.5, np.random.default_rng(4))
    graph, clustering = cluster_layers(net.layers, 3, seed=0, n_init=10)
    assert graph.keep.all()
    # independently: the graph falls apart into exactly the three modules
    n_parts, parts = csgraph.connected_components(graph.adjacency, directed=False)
    assert n_parts == 3 and adjusted_rand_score(net.labels, parts) == 1.0
    assert agreement(net.labels[graph.keep], clustering.labels) == {"ari": 1.0, "nmi": 1.0}
    assert clustering.ncut == pytest.approx(0.0, abs=1e-12)
    # without planted modules the clusters are unrelated to the labels
    null = planted_network([12, 24, 24, 6], 3, 0.0, 0.5, np.random.default_rng(4))
    graph, clustering = cluster_layers(null.layers, 3, seed=0, n_init=10)
    assert abs(agreement(null.labels[graph.keep], clustering.labels)["ari"]) < 0.1


def test_agreement_is_invariant_to_relabelling_and_drops_with_errors():
    truth = np.repeat([0, 1, 2], 5)
    assert agreement(truth, (truth + 1) % 3) == {"ari": 1.0, "nmi": 1.0}
    wrong = truth.copy()
    wrong[[0, 5]] = wrong[[5, 0]]
    assert agreement(truth, wrong)["ari"] < 1 and agreement(truth, wrong)["nmi"] < 1
    with pytest.raises(ValueError, match="same nodes"):
        agreement(truth, truth[:-1])


def test_search_stability_is_one_on_disconnected_modules_and_searches_differ_otherwise():
    net = planted_network([12, 24, 24, 6], 3, 1.0, 0.5, np.random.default_rng(4))
    g = build_graph(net.layers)
    assert mean_pairwise_ari(search_labelings(g.adjacency, 3, 0, 2, 4, g.sides)) == 1.0
    null = planted_network([12, 24, 24, 6], 3, 0.0, 0.5, np.random.default_rng(4))
    g = build_graph(null.layers)
    runs = search_labelings(g.adjacency, 6, 0, 1, 5, g.sides)
    assert mean_pairwise_ari(runs) < 1.0  # one start per search on a graph without modules
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_ari(runs[:1])


def test_magnitudes_law_resamples_the_given_values_with_both_signs():
    mags = np.array([0.5, 1.5, -2.0])  # signs of the source are dropped
    net = planted_network([6, 6, 3], 3, 0.5, 1.0, np.random.default_rng(0), "magnitudes", mags)
    values = np.concatenate([lay.weight[lay.weight != 0] for lay in net.layers])
    assert set(np.abs(values).tolist()) <= {0.5, 1.5, 2.0} and (values > 0).any() and (values < 0).any()


@pytest.mark.parametrize("name", WEIGHT_LAWS.names())
def test_every_weight_law_makes_a_network(name):
    net = planted_network([4, 4, 2], 2, 0.5, 1.0, np.random.default_rng(0), name, np.ones(3))
    assert [lay.weight.shape for lay in net.layers] == [(4, 4), (2, 4)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strength": 1.5}, "strength must be in"),
        ({"num_modules": 5}, "every width must be >= num_modules=5"),
        ({"p_in": 0.0}, "p_in must be in"),
        ({"widths": [4]}, "at least two positive ints"),
        ({"weights": "uniform"}, "valid names"),
        ({"weights": "magnitudes"}, "needs a non-empty array"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    args = {"widths": [4, 4, 2], "num_modules": 2, "strength": 0.5, "p_in": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        planted_network(rng=np.random.default_rng(0), **args)
