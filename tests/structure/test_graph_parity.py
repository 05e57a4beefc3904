"""The weight graph against nn-clustering-pytorch's recipe, built independently here."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from nnclust.nets.layers import extract_layers
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.graph import GRAPH_DEFAULTS, build_graph
from nnclust.structure.transforms import relu_rescale


def _near_dead_net():
    # hidden 0: incoming (3, 4), norm 5; hidden 1: incoming (1e-9, 0), norm 1e-9 (decayed,
    # never pruned); hidden 2: incoming (0, 2), norm 2. One output reads all three with 1.
    return [
        WeightLayer("a", "fc", np.array([[3.0, 4.0], [1e-9, 0.0], [0.0, 2.0]])),
        WeightLayer("b", "fc", np.array([[1.0, 1.0, 1.0]])),
    ]


@pytest.mark.parametrize(
    "eps, hidden_in, hidden_out",
    [
        # nn-clustering-pytorch: divide by norm + 1e-5, multiply outgoing by the same.
        (
            1e-5,
            [[3 / 5.00001, 4 / 5.00001], [1e-9 / 1.0001e-5, 0.0], [0.0, 2 / 2.00001]],
            [5.00001, 1.0001e-5, 2.00001],
        ),
        # eps = 0: the near-dead unit is blown up to unit incoming norm.
        (0.0, [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]], [5.0, 1e-9, 2.0]),
    ],
)
def test_near_dead_unit_edges_under_both_conventions(eps, hidden_in, hidden_out):
    g = build_graph(_near_dead_net(), normalize_eps=eps)
    adj = g.adjacency.toarray()  # nodes: inputs 0-1, hidden 2-4, output 5
    np.testing.assert_allclose(adj[2:5, 0:2], hidden_in, rtol=1e-12, atol=0)
    np.testing.assert_allclose(adj[5, 2:5], hidden_out, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(adj, adj.T)


def test_default_eps_is_theirs_and_negative_eps_is_refused():
    assert GRAPH_DEFAULTS["normalize_eps"] == 1e-5
    with pytest.raises(ValueError, match="eps must be >= 0"):
        relu_rescale([np.ones((2, 2)), np.ones((1, 2))], eps=-1.0)


# ---- an independent construction following nn-clustering-pytorch's graph_utils ----


def _their_normalize(ws, eps=1e-5):
    ws = [w.copy() for w in ws]
    for i in range(len(ws) - 1):
        scales = np.linalg.norm(ws[i].reshape(ws[i].shape[0], -1), axis=1) + eps
        ws[i] = ws[i] / scales.reshape((-1,) + (1,) * (ws[i].ndim - 1))
        ws[i + 1] = ws[i + 1] * scales.reshape((1, -1) + (1,) * (ws[i + 1].ndim - 2))
    return ws


def _their_graph(ws):
    blocks = [np.abs(w).sum(axis=(2, 3)) if w.ndim == 4 else np.abs(w) for w in ws]
    sizes = [blocks[0].shape[1]] + [b.shape[0] for b in blocks]
    rows = [[None] * len(sizes) for _ in sizes]
    rows[0][0] = sp.coo_matrix((sizes[0], sizes[0]))
    rows[-1][-1] = sp.coo_matrix((sizes[-1], sizes[-1]))
    for i, b in enumerate(blocks):
        rows[i + 1][i] = sp.coo_matrix(b)
    low = sp.bmat(rows, "csr")
    adj = (low + low.T).tocsr()
    _, lab = connected_components(adj, directed=False)
    first, last = set(lab[: sizes[0]]), set(lab[-sizes[-1] :])
    keep = np.isin(lab, list(first & last))
    return adj[keep][:, keep].toarray(), keep


def _bn(state, prefix, n, rng):
    state[f"{prefix}.weight"] = torch.tensor(rng.uniform(0.2, 2.0, n))
    state[f"{prefix}.bias"] = torch.tensor(rng.normal(size=n))
    state[f"{prefix}.running_mean"] = torch.tensor(rng.normal(size=n))
    state[f"{prefix}.running_var"] = torch.tensor(rng.uniform(0.1, 3.0, n))
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(7)


def _folded(state, prefix, bn_prefix):
    w = state[f"{prefix}.weight"].numpy()
    if f"{bn_prefix}.weight" not in state:
        return w
    g, v = state[f"{bn_prefix}.weight"].numpy(), state[f"{bn_prefix}.running_var"].numpy()
    shape = (-1,) + (1,) * (w.ndim - 1)
    return (w * g.reshape(shape)) / np.sqrt(v + 1e-5).reshape(shape)


def test_mlp_state_dict_in_their_layout_gives_their_graph():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 5)) * (rng.random((6, 5)) > 0.4)
    w0[1] = 1e-9 * rng.normal(size=5)  # near-dead
    w1 = rng.normal(size=(4, 6)) * (rng.random((4, 6)) > 0.4)
    w1[:, 3] = 0.0  # hidden unit 3 of layer 0 feeds nothing...
    w1[2] = 0.0  # ...and hidden unit 2 of layer 1 reads nothing
    w2 = rng.normal(size=(3, 4))
    w2[:, 2] = 0.0  # so unit 2 of layer 1 is isolated and removed
    state = {
        "0_fc.weight": torch.tensor(w0),
        "0_fc.bias": torch.tensor(rng.normal(size=6)),
        "1_fc.weight": torch.tensor(w1),
        "1_fc.bias": torch.tensor(rng.normal(size=4)),
        "2_fc.weight": torch.tensor(w2),
    }
    _bn(state, "0_bn", 6, rng)
    ours = build_graph(extract_layers(state), **GRAPH_DEFAULTS)
    ws = [_folded(state, f"{i}_fc", f"{i}_bn") for i in range(3)]
    theirs, keep = _their_graph(_their_normalize(ws))
    np.testing.assert_array_equal(ours.keep, keep)
    assert not keep[5 + 6 + 2]  # the isolated unit is gone
    a = ours.adjacency.toarray()
    np.testing.assert_array_equal(a != 0, theirs != 0)
    np.testing.assert_allclose(a, theirs, rtol=1e-12, atol=0)


def test_cnn_state_dict_conv_nodes_give_their_graph():
    # Their CNN graph: the conv layers after the first, BN folded, normalized among
    # themselves (the last conv layer's rows not), kernel L1 norms as edges.
    rng = np.random.default_rng(1)
    shapes = [(4, 1, 3, 3), (5, 4, 3, 3), (6, 5, 3, 3)]
    state = {}
    for i, shape in enumerate(shapes):
        w = rng.normal(size=shape) * (rng.random(shape) > 0.3)
        state[f"{i}_conv.weight"] = torch.tensor(w)
        _bn(state, f"{i}_bn", shape[0], rng)
    state["1_conv.weight"][2] *= 1e-9  # a channel whose folded weights vanish
    state["3_fc.weight"] = torch.tensor(rng.normal(size=(3, 6 * 4)))
    ours = build_graph(extract_layers(state), cnn_nodes="conv")
    ws = [_folded(state, f"{i}_conv", f"{i}_bn") for i in (1, 2)]
    theirs, keep = _their_graph(_their_normalize(ws))
    assert ours.group_sizes() == [4, 5, 6]
    np.testing.assert_array_equal(ours.keep, keep)
    np.testing.assert_allclose(ours.adjacency.toarray(), theirs, rtol=1e-12, atol=0)
