from dataclasses import replace

import numpy as np
import pytest

from nnclust.nets.layers import WeightLayer
from nnclust.structure.graph import GraphError, build_graph
from nnclust.structure.transforms import fold_batch_norm, relu_rescale


def fc(name, w, bn=None):
    return WeightLayer(name, "fc", np.asarray(w, float), bn_scale=None if bn is None else np.asarray(bn, float))


def test_mlp_adjacency_is_the_absolute_weights_in_layer_order():
    w1 = [[1.0, -2.0], [0.0, 3.0]]  # hidden x input
    w2 = [[-4.0, 5.0]]
    g = build_graph([fc("a", w1), fc("b", w2)], normalize=False)
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 0, 2, 3, 0],
            [1, 2, 0, 0, 4],
            [0, 3, 0, 0, 5],
            [0, 0, 4, 5, 0],
        ],
        float,
    )
    np.testing.assert_array_equal(g.adjacency.toarray(), expected)
    assert g.group.tolist() == [0, 0, 1, 1, 2] and g.group_names == ["input", "a", "b"]


def test_batch_norm_is_folded_into_its_rows():
    g = build_graph([fc("a", [[1.0, 1.0], [2.0, 0.5]], bn=[3.0, -0.5]), fc("b", [[1.0, 1.0]])], normalize=False)
    a = g.adjacency.toarray()
    np.testing.assert_allclose(a[2, :2], [3.0, 3.0])
    np.testing.assert_allclose(a[3, :2], [1.0, 0.25])


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
def test_relu_rescaling_gives_unit_incoming_norms_and_keeps_path_products(eps):
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(5, 4)), rng.normal(size=(3, 5)), rng.normal(size=(2, 3))]
    out = relu_rescale(ws, eps)
    for w in out[:-1]:
        n = np.linalg.norm(w, axis=1)
        # each row was divided by (its norm m + eps), leaving norm m / (m + eps) < 1
        if eps == 0:
            np.testing.assert_allclose(n, 1.0)
        else:
            m = eps * n / (1 - n)
            assert np.all(n < 1.0) and np.all(m > 0.1)  # no row here is near-dead
    # Every input->output path product w3[k,j] w2[j,i] w1[i,h] is unchanged.
    before = np.einsum("kj,ji,ih->kjih", ws[2], ws[1], ws[0])
    after = np.einsum("kj,ji,ih->kjih", out[2], out[1], out[0])
    np.testing.assert_allclose(after, before)


def test_relu_rescaling_keeps_the_function_when_biases_follow():
    import torch

    torch.manual_seed(0)
    l1, l2 = torch.nn.Linear(3, 4).double(), torch.nn.Linear(4, 2).double()
    x = torch.randn(7, 3, dtype=torch.double)
    y = l2(torch.relu(l1(x)))
    w = relu_rescale([l1.weight.detach().numpy(), l2.weight.detach().numpy()])
    n = np.linalg.norm(l1.weight.detach().numpy(), axis=1) + 1e-5
    h = torch.relu(x @ torch.from_numpy(w[0]).T + l1.bias / torch.from_numpy(n))
    np.testing.assert_allclose((h @ torch.from_numpy(w[1]).T + l2.bias).detach(), y.detach(), rtol=1e-12)


def test_conv_edges_are_kernel_l1_norms_and_flatten_sums_spatial_positions():
    conv = WeightLayer("c", "conv", np.arange(2 * 1 * 2 * 2, dtype=float).reshape(2, 1, 2, 2) - 3)
    fcw = np.arange(3 * 8, dtype=float).reshape(3, 8) - 10  # 2 channels x 4 positions
    g = build_graph([conv, WeightLayer("f", "fc", fcw)], normalize=False)
    a = g.adjacency.toarray()
    assert g.group_sizes() == [1, 2, 3]
    np.testing.assert_allclose(a[1:3, 0], np.abs(conv.weight).sum(axis=(1, 2, 3)))
    expected = np.abs(fcw).reshape(3, 2, 4).sum(axis=2)
    np.testing.assert_allclose(a[3:, 1:3], expected)


def test_conv_normalisation_crosses_the_flatten():
    rng = np.random.default_rng(1)
    conv = WeightLayer("c", "conv", rng.normal(size=(2, 1, 3, 3)))
    f = WeightLayer("f", "fc", rng.normal(size=(3, 8)))
    w = relu_rescale([conv.weight, f.weight], eps=0.1)
    norms = np.linalg.norm(conv.weight.reshape(2, -1), axis=1) + 0.1
    np.testing.assert_allclose(np.linalg.norm(w[0].reshape(2, -1), axis=1), (norms - 0.1) / norms)
    np.testing.assert_allclose(w[1], f.weight * np.repeat(norms, 4)[None, :])


def test_seed_node_set_keeps_only_conv_channels_after_the_first_layer():
    rng = np.random.default_rng(2)
    layers = [
        WeightLayer("c0", "conv", rng.normal(size=(3, 1, 3, 3))),
        WeightLayer("c1", "conv", rng.normal(size=(4, 3, 3, 3))),
        WeightLayer("f", "fc", rng.normal(size=(2, 16))),
    ]
    g = build_graph(layers, cnn_nodes="conv", normalize=False)
    assert g.group_names == ["c0", "c1"] and g.group_sizes() == [3, 4]
    np.testing.assert_allclose(g.adjacency.toarray()[3:, :3], np.abs(layers[1].weight).sum(axis=(2, 3)))
    full = build_graph(layers, cnn_nodes="full")
    assert full.group_sizes() == [1, 3, 4, 2]


def test_components_that_do_not_join_inputs_to_outputs_are_removed():
    # input 2 feeds hidden 2, which feeds nothing; hidden 3 is isolated.
    w1 = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    w2 = [[1, 1, 0, 0]]
    g = build_graph([fc("a", w1), fc("b", w2)], normalize=False)
    assert g.keep.tolist() == [True, True, False, True, True, False, False, True]
    assert g.n_kept == 5
    assert g.pad_labels(np.array([0, 1, 1, 0, 2])).tolist() == [0, 1, -1, 1, 0, -1, -1, 2]


def test_a_network_with_no_input_output_path_is_an_error():
    with pytest.raises(GraphError, match="no path joins an input to an output"):
        build_graph([fc("a", [[1.0, 1.0], [0, 0]]), fc("b", [[0.0, 1.0]])])


def test_mismatched_layers_are_named():
    with pytest.raises(GraphError, match="'b'"):
        build_graph([fc("a", np.ones((3, 2))), fc("b", np.ones((1, 4)))])


def test_unknown_cnn_node_set():
    with pytest.raises(ValueError, match="cnn_nodes"):
        build_graph([fc("a", np.ones((3, 2)))], cnn_nodes="channels")


def test_fold_batch_norm_leaves_layers_without_bn_alone():
    w = np.ones((2, 2))
    assert fold_batch_norm([fc("a", w)])[0] is not None
    np.testing.assert_array_equal(fold_batch_norm([fc("a", w)])[0], w)


@pytest.mark.parametrize("method", ["all", "nonzero"])
def test_pattern_graphs_equal_build_graph(method):
    from nnclust.clustering.shuffles import shuffle_layers
    from nnclust.structure.graph import PatternGraphs

    rng = np.random.default_rng(4)
    layers = []
    for i, shape in enumerate([(9, 6), (7, 9), (3, 7)]):
        w = rng.normal(size=shape)
        w[rng.random(shape) < 0.4] = 0
        layers.append(fc(f"l{i}", w, bn=rng.uniform(0.5, 2, shape[0]) if i == 0 else None))
    graphs = PatternGraphs(layers)
    for seed in range(4):
        shuffled = shuffle_layers(layers, method, np.random.default_rng(seed))
        fast, slow = graphs.build(shuffled), build_graph(shuffled)
        np.testing.assert_array_equal(fast.keep, slow.keep)
        assert (fast.adjacency != slow.adjacency).nnz == 0 and fast.adjacency.nnz == slow.adjacency.nnz
    assert (graphs.build(layers).adjacency != build_graph(layers).adjacency).nnz == 0


def _cnn(rng, bn=True):
    """conv(1->3, 3x3) -> conv(3->4, 3x3) -> flatten (4 channels x 4 positions) -> fc(16 -> 5) -> fc(5 -> 2),
    each layer pruned to about half, batch norm after the conv layers."""

    def pruned(shape):
        return rng.normal(size=shape) * (rng.random(shape) < 0.5)

    def scale(n):
        return rng.uniform(0.5, 2.0, n) if bn else None

    return [
        WeightLayer("c0", "conv", pruned((3, 1, 3, 3)), bn_scale=scale(3)),
        WeightLayer("c1", "conv", pruned((4, 3, 3, 3)), bn_scale=scale(4)),
        WeightLayer("f0", "fc", pruned((5, 16))),
        WeightLayer("f1", "fc", pruned((2, 5))),
    ]


def _mlp(rng):
    layers = []
    for i, shape in enumerate([(9, 6), (7, 9), (3, 7)]):
        w = rng.normal(size=shape) * (rng.random(shape) < 0.6)
        layers.append(fc(f"l{i}", w, bn=rng.uniform(0.5, 2, shape[0]) if i == 1 else None))
    return layers


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_sparse_folding_and_rescaling_equal_the_dense_ones(net, eps):
    from nnclust.nets.weight_layer import SparseWeightLayer
    from nnclust.structure.transforms import fold_batch_norm_sparse, relu_rescale_sparse, sparse_units

    rng = np.random.default_rng(3)
    layers = _mlp(rng) if net == "mlp" else _cnn(rng)
    dense = relu_rescale(fold_batch_norm(layers), eps)
    sparse = [SparseWeightLayer.of(lay) for lay in layers]
    units = sparse_units(sparse)
    values = relu_rescale_sparse(fold_batch_norm_sparse(sparse, units), units, [s.n_out for s in sparse], eps)
    for s, v, w in zip(sparse, values, dense):
        np.testing.assert_allclose(v, w.ravel()[s.positions], rtol=1e-13, atol=0)
        assert np.count_nonzero(w) == s.positions.size  # folding and rescaling keep the zeros


def test_sparse_units_read_channels_through_the_flatten():
    from nnclust.nets.weight_layer import SparseWeightLayer
    from nnclust.structure.transforms import sparse_units

    rng = np.random.default_rng(0)
    layers = [SparseWeightLayer.of(lay) for lay in _cnn(rng)]
    for lay, (rows, cols) in zip(layers, sparse_units(layers)):
        idx = np.unravel_index(lay.positions, lay.shape)
        np.testing.assert_array_equal(rows, idx[0])
        if lay.name == "f0":  # 16 features = 4 channels x 4 positions, channel-major
            np.testing.assert_array_equal(cols, idx[1] // 4)
        else:
            np.testing.assert_array_equal(cols, idx[1])


@pytest.mark.parametrize("cnn_nodes", ["full", "conv"])
@pytest.mark.parametrize("method", ["all", "nonzero", "nonzero_resample"])
def test_graphs_of_sparse_shuffles_equal_the_graphs_of_their_dense_forms(method, cnn_nodes):
    from nnclust.clustering.shuffles import shuffle_layers
    from nnclust.structure.graph import PatternGraphs

    rng = np.random.default_rng(5)
    for layers in (_mlp(rng), _cnn(rng)):
        graphs = PatternGraphs(layers, cnn_nodes=cnn_nodes)
        for seed in range(4):
            sparse = shuffle_layers(graphs.layers, method, np.random.default_rng(seed), shuffle_bn=True)
            dense = [lay.dense() for lay in sparse]
            expected = build_graph(
                [WeightLayer(s.name, s.kind, w, bn_scale=s.bn_scale) for s, w in zip(sparse, dense)],
                cnn_nodes=cnn_nodes,
            )
            for got in (graphs.build(sparse), build_graph(sparse, cnn_nodes=cnn_nodes)):
                np.testing.assert_array_equal(got.keep, expected.keep)
                assert got.group_names == expected.group_names
                a, b = got.adjacency, expected.adjacency
                assert a.has_canonical_format and b.has_canonical_format
                np.testing.assert_array_equal(a.indptr, b.indptr)
                np.testing.assert_array_equal(a.indices, b.indices)
                np.testing.assert_allclose(a.data, b.data, rtol=1e-13, atol=0)


def test_the_order_of_the_entries_does_not_change_the_graph():
    from nnclust.nets.weight_layer import SparseWeightLayer

    rng = np.random.default_rng(2)
    for layers in (_mlp(rng), _cnn(rng)):
        sparse = [SparseWeightLayer.of(lay) for lay in layers]
        shuffled_order = []
        for lay in sparse:
            perm = rng.permutation(lay.positions.size)
            shuffled_order.append(replace(lay, positions=lay.positions[perm], values=lay.values[perm]))
        a, b = build_graph(sparse).adjacency, build_graph(shuffled_order).adjacency
        assert a.has_canonical_format and b.has_canonical_format
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.data, b.data, rtol=1e-13, atol=0)
