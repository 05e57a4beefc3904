import numpy as np
import pytest

from nnclust.clustering.shuffles import SHUFFLES, shuffle_layers, shuffle_method
from nnclust.clustering.significance import shuffle_statistics
from nnclust.nets.layers import WeightLayer


def sparse_weights(seed=0, shape=(6, 5, 3, 3)):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape)
    w[rng.random(shape) < 0.7] = 0.0
    return w


@pytest.mark.parametrize("name", sorted(SHUFFLES))
def test_every_shuffle_keeps_shape_and_input_and_is_seeded(name):
    w = sparse_weights()
    before = w.copy()
    fn = shuffle_method(name)
    a = fn(w, np.random.default_rng(5))
    b = fn(w, np.random.default_rng(5))
    c = fn(w, np.random.default_rng(6))
    assert a.shape == w.shape and np.array_equal(w, before)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, w)


def test_all_keeps_the_multiset_and_moves_zeros():
    w = sparse_weights()
    s = SHUFFLES["all"](w, np.random.default_rng(0))
    assert np.array_equal(np.sort(s.ravel()), np.sort(w.ravel()))
    assert not np.array_equal(s == 0, w == 0)


def test_nonzero_keeps_the_multiset_and_the_zero_pattern():
    w = sparse_weights()
    s = SHUFFLES["nonzero"](w, np.random.default_rng(0))
    assert np.array_equal(s == 0, w == 0)
    assert np.array_equal(np.sort(s[s != 0]), np.sort(w[w != 0]))


def test_resample_keeps_the_zero_pattern_and_draws_existing_values():
    w = sparse_weights()
    s = SHUFFLES["nonzero_resample"](w, np.random.default_rng(0))
    assert np.array_equal(s == 0, w == 0)
    assert set(s[s != 0]).issubset(set(w[w != 0]))
    assert len(set(s[s != 0])) < np.count_nonzero(w)  # with replacement: repeats occur


def test_unknown_shuffle_lists_methods():
    with pytest.raises(ValueError, match=r"unknown shuffle method 'some'.*'all'.*'nonzero'"):
        shuffle_method("some")


def test_batch_norm_scales_move_only_when_asked():
    lay = WeightLayer("l.fc", "fc", sparse_weights(shape=(8, 4)), bn_scale=np.arange(8.0))
    kept = shuffle_layers([lay], "nonzero", np.random.default_rng(0))[0]
    assert np.array_equal(kept.bn_scale, lay.bn_scale)
    moved = shuffle_layers([lay], "nonzero", np.random.default_rng(0), shuffle_bn=True)[0]
    assert sorted(moved.bn_scale) == sorted(lay.bn_scale) and not np.array_equal(moved.bn_scale, lay.bn_scale)


def test_batch_norm_gamma_and_std_are_permuted_each_on_its_own():
    gamma, std = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 10.0, 100.0, 1000.0])
    lay = WeightLayer("l.fc", "fc", np.ones((4, 3)), bn_scale=gamma / std, bn_gamma=gamma, bn_std=std)
    pairs = set()
    for seed in range(20):
        moved = shuffle_layers([lay], "all", np.random.default_rng(seed), shuffle_bn=True)[0]
        # each scale is one unit's gamma over one unit's std, each used once
        np.testing.assert_allclose(moved.bn_scale, moved.bn_gamma / moved.bn_std)
        assert sorted(moved.bn_gamma) == sorted(gamma) and sorted(moved.bn_std) == sorted(std)
        pairs |= {(float(g), float(s)) for g, s in zip(moved.bn_gamma, moved.bn_std)}
    # gamma and std moved independently: pairs never together in the network occur
    assert len(pairs - set(zip(gamma.tolist(), std.tolist()))) > 4


def test_statistics_closed_form():
    s = shuffle_statistics(2.0, [1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5
    assert s["std"] == pytest.approx(np.sqrt(5 / 3))
    assert s["z_score"] == pytest.approx(-0.5 / np.sqrt(5 / 3))
    assert s["percentile"] == 0.25  # one shuffle strictly below
    assert s["p_value"] == pytest.approx(3 / 5)  # r = 2 at or below, (2 + 1) / (4 + 1)
    assert s["shuffled_ncuts"] == [1.0, 2.0, 3.0, 4.0] and all(type(v) is float for v in s["shuffled_ncuts"])


def test_statistics_need_two_shuffles():
    with pytest.raises(ValueError, match="at least 2"):
        shuffle_statistics(1.0, [1.0])


def test_every_shuffle_of_a_study_draws_from_its_own_stream():
    from nnclust.clustering import study
    from nnclust.structure.graph import PatternGraphs, build_graph

    rng = np.random.default_rng(0)
    layers = [
        WeightLayer("l0", "fc", rng.normal(size=(6, 4)) * (rng.random((6, 4)) < 0.7)),
        WeightLayer("l1", "fc", rng.normal(size=(3, 6)) * (rng.random((3, 6)) < 0.7)),
    ]
    options = {"normalize": True, "cnn_nodes": "full"}
    for method in ("all", "nonzero"):
        graphs = PatternGraphs(layers, **options)
        made = [
            study._shuffled_graph(i, layers, method, 5, False, options, graphs).adjacency.toarray() for i in range(6)
        ]
        original = build_graph(layers, **options).adjacency.toarray()
        for i in range(6):
            assert not (made[i].shape == original.shape and np.allclose(made[i], original)), (method, i)
            for j in range(i):
                assert not (made[i].shape == made[j].shape and np.allclose(made[i], made[j])), (method, i, j)
        again = study._shuffled_graph(3, layers, method, 5, False, options, graphs).adjacency.toarray()
        np.testing.assert_array_equal(again, made[3])  # the same index and seed repeat the draw
        other_seed = study._shuffled_graph(3, layers, method, 6, False, options, graphs).adjacency.toarray()
        assert not (other_seed.shape == made[3].shape and np.allclose(other_seed, made[3]))


def test_all_draws_a_uniform_permutation_of_every_weight():
    # A uniform permutation of the 12 weights of a 3 x 4 layer with 4 nonzero values
    # puts each value at each position with probability 1/12, makes a position nonzero
    # with probability 4/12 and two given positions both nonzero with 4/12 * 3/11.
    w = np.zeros((3, 4))
    w.flat[[1, 6, 7, 10]] = [1.0, -2.0, 3.0, 4.0]
    draws = 6000
    at = np.zeros((4, 12))  # at[v, p]: draws that put value v at position p
    both = 0
    shuffle = SHUFFLES["all"]
    rng = np.random.default_rng(0)
    for _ in range(draws):
        s = shuffle(w, rng)
        assert np.array_equal(np.sort(s.ravel()), np.sort(w.ravel()))  # the multiset, exactly
        for v, value in enumerate([1.0, -2.0, 3.0, 4.0]):
            at[v] += s.ravel() == value
        both += s.flat[0] != 0 and s.flat[11] != 0
    # Bounds of about 6 binomial standard deviations.
    assert np.abs(at / draws - 1 / 12).max() < 0.022
    assert np.abs(at.sum(axis=0) / draws - 4 / 12).max() < 0.037
    assert abs(both / draws - 4 / 12 * 3 / 11) < 0.035


@pytest.mark.parametrize("name", sorted(SHUFFLES))
def test_sparse_and_dense_layers_give_the_same_shuffle(name):
    from nnclust.nets.weight_layer import SparseWeightLayer

    rng = np.random.default_rng(1)
    gamma, std = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    layers = [
        WeightLayer("c", "conv", sparse_weights(shape=(6, 2, 3, 3)), bn_scale=gamma / std, bn_gamma=gamma, bn_std=std),
        WeightLayer("f", "fc", sparse_weights(shape=(4, 24)), bn_scale=rng.uniform(0.5, 2, 4)),
    ]
    sparse = [SparseWeightLayer.of(lay) for lay in layers]
    for shuffle_bn in (False, True):
        a = shuffle_layers(layers, name, np.random.default_rng(7), shuffle_bn)
        b = shuffle_layers(sparse, name, np.random.default_rng(7), shuffle_bn)
        c = shuffle_layers(sparse, name, np.random.default_rng(8), shuffle_bn)
        for x, y, z in zip(a, b, c):
            assert isinstance(y, SparseWeightLayer) and y.shape == x.weight.shape
            np.testing.assert_array_equal(y.dense(), x.weight)
            np.testing.assert_array_equal(y.bn_scale, x.bn_scale)
            assert not np.array_equal(y.dense(), z.dense())
        if name == "all":
            assert all(np.all(np.diff(y.positions) > 0) for y in b)  # drawn in C order
