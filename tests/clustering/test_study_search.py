"""The network and its shuffles go through one k-means search; the spread of the
network's own n-cut over further searches is reported."""

import numpy as np
import pytest
from tests.networks import small_layers

import nnclust.clustering.spectral as spectral
from nnclust.clustering.significance import shuffle_statistics
from nnclust.clustering.spectral import N_INIT, kmeans_labels, ncut, spectral_embedding
from nnclust.clustering.study import SPREAD_SEARCHES, cluster_layers, shuffle_significance
from nnclust.core import seeding
from nnclust.structure.graph import build_graph


@pytest.fixture
def kmeans_calls(monkeypatch):
    """(rows, n_init) of every call of the project's one k-means, in this process."""
    calls = []
    real = spectral.kmeans

    def recorded(x, k, n_init, rng, **kw):
        calls.append((x.shape[0], n_init))
        return real(x, k, n_init, rng, **kw)

    monkeypatch.setattr(spectral, "kmeans", recorded)
    return calls


def test_network_and_shuffles_get_the_same_search_by_default(kmeans_calls):
    layers = small_layers()
    s = shuffle_significance(layers, 4, 5, "all", seed=2, progress=False)  # n_jobs=1: in this process
    assert s["n_init"] == s["shuffle_n_init"] == N_INIT
    # the network, its spread searches and every shuffle: one k-means code path, N_INIT starts
    assert len(kmeans_calls) == 1 + SPREAD_SEARCHES + 5
    assert {n_init for _, n_init in kmeans_calls} == {N_INIT}


def test_a_different_shuffle_search_is_recorded_and_changes_only_the_shuffles(kmeans_calls):
    layers = small_layers()
    same = shuffle_significance(layers, 4, 4, seed=2, n_init=3, spread_searches=0, progress=False)
    kmeans_calls.clear()
    other = shuffle_significance(layers, 4, 4, seed=2, n_init=3, shuffle_n_init=1, spread_searches=0, progress=False)
    assert (other["n_init"], other["shuffle_n_init"]) == (3, 1)
    assert [n for _, n in kmeans_calls] == [3, 1, 1, 1, 1]
    assert other["true_ncut"] == same["true_ncut"] and other["shuffled_ncuts"] != same["shuffled_ncuts"]


def test_true_ncut_spread_comes_from_independent_searches_of_the_same_embedding():
    layers = small_layers(1)
    s = shuffle_significance(layers, 4, 4, seed=5, n_init=1, spread_searches=6, progress=False)
    _, clustering = cluster_layers(layers, 4, seed=5, n_init=1)
    assert s["true_ncut"] == clustering.ncut  # the first search is the clustering experiment's
    # recomputed independently: search j seeds k-means from child j of the ncut_spread stream
    g = build_graph(layers)
    _, emb = spectral_embedding(g.adjacency, 4, 5, g.sides)
    expected = [ncut(g.adjacency, kmeans_labels(emb, 4, seeding.int_seed(5, "ncut_spread", j), 1)) for j in range(6)]
    assert s["true_ncut_searches"] == expected
    assert len(set(expected)) > 1  # one start per search: the searches do differ
    assert s["true_ncut_sd"] == pytest.approx(np.std(expected, ddof=1))
    assert s["z_sd"] == pytest.approx(s["true_ncut_sd"] / s["std"])
    for n_jobs in (2,):  # the same numbers from workers
        par = shuffle_significance(layers, 4, 4, seed=5, n_init=1, spread_searches=6, n_jobs=n_jobs, progress=False)
        assert par["true_ncut_searches"] == expected and par["shuffled_ncuts"] == s["shuffled_ncuts"]


def test_spread_statistics_closed_form_and_bad_values():
    s = shuffle_statistics(2.0, [1.0, 3.0], [1.0, 2.0, 3.0])
    assert s["true_ncut_sd"] == pytest.approx(1.0) and s["z_sd"] == pytest.approx(1.0 / np.sqrt(2.0))
    off = shuffle_statistics(2.0, [1.0, 3.0])
    assert off["true_ncut_sd"] is None and off["z_sd"] is None and off["true_ncut_searches"] == []
    with pytest.raises(ValueError, match="0 or at least 2"):
        shuffle_statistics(2.0, [1.0, 3.0], [1.0])
    with pytest.raises(ValueError, match="spread_searches must be 0 .off. or >= 2"):
        shuffle_significance(small_layers(), 4, 4, spread_searches=1, progress=False)
    with pytest.raises(ValueError, match="shuffle_n_init must be >= 1"):
        shuffle_significance(small_layers(), 4, 4, shuffle_n_init=0, progress=False)
