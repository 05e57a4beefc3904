import numpy as np
import pytest
import scipy.sparse as sp

from nnclust.structure.connectivity import backward_reach, forward_reach, io_components


def _blocks():
    # inputs i0 i1 i2 -> hidden h0 h1 h2 -> outputs o0 o1
    # h0 is fed by i0 and feeds o0 (alive); h1 is fed by i1 but feeds nothing (comatose);
    # h2 is fed by nothing but feeds o1 (lives on its bias); i2 feeds nothing.
    w1 = np.array([[0.5, 0, 0], [0, -2.0, 0], [0, 0, 0]])
    w2 = np.array([[1.0, 0, 0], [0, 0, 3.0]])
    return [w1, w2]


def test_forward_and_backward_reach_on_a_hand_built_network():
    fwd = forward_reach(_blocks())
    bwd = backward_reach(_blocks())
    assert [f.tolist() for f in fwd] == [[True, True, True], [True, True, False], [True, False]]
    assert [b.tolist() for b in bwd] == [[True, False, False], [True, False, True], [True, True]]
    alive = fwd[1] & bwd[1]
    assert alive.tolist() == [True, False, False]


def test_reach_from_chosen_sources_and_targets():
    fwd = forward_reach(_blocks(), sources=np.array([False, True, False]))
    assert fwd[1].tolist() == [False, True, False] and fwd[2].tolist() == [False, False]
    bwd = backward_reach(_blocks(), targets=np.array([False, True]))
    assert bwd[1].tolist() == [False, False, True] and bwd[0].tolist() == [False, False, False]
    with pytest.raises(ValueError, match="shape"):
        forward_reach(_blocks(), sources=np.ones(4, bool))


def test_reach_agrees_with_dense_matrix_powers_on_random_sparse_nets():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = rng.integers(2, 9, size=4)
        blocks = [
            rng.normal(size=(sizes[i + 1], sizes[i])) * (rng.random((sizes[i + 1], sizes[i])) < 0.25) for i in range(3)
        ]
        reach = np.ones(sizes[0], bool)
        for i, b in enumerate(blocks):
            reach = (np.abs(b) @ reach) > 0  # a path exists iff the product of |w| is positive
            assert np.array_equal(forward_reach(blocks)[i + 1], reach)


def test_io_components_keep_components_joining_inputs_and_outputs():
    # {i0, h0, o0} joins an input to an output; {i1, h1} has no output, {h2, o1} no input
    w1, w2 = _blocks()
    n = 3 + 3 + 2
    adj = np.zeros((n, n))
    adj[3:6, 0:3] = np.abs(w1)
    adj[6:8, 3:6] = np.abs(w2)
    adj = sp.csr_matrix(adj + adj.T)
    group = np.repeat([0, 1, 2], [3, 3, 2])
    keep = io_components(adj, group)
    assert keep.tolist() == [True, False, False, True, False, False, True, False]
    # the strong components of a symmetric matrix are its undirected ones
    assert io_components(adj, group, symmetric=True).tolist() == keep.tolist()
    # one triangle reads as the undirected graph too (without `symmetric`)
    assert io_components(sp.csr_matrix(sp.tril(adj)), group).tolist() == keep.tolist()


def test_sparse_blocks_give_the_same_answers_as_dense_ones():
    from nnclust.structure.connectivity import constant_activations

    rng = np.random.default_rng(0)
    w = [rng.normal(size=(6, 4)) * (rng.random((6, 4)) < 0.4), rng.normal(size=(5, 6)) * (rng.random((5, 6)) < 0.4),
         rng.normal(size=(2, 5)) * (rng.random((2, 5)) < 0.5)]  # fmt: skip
    b = [rng.normal(size=6), rng.normal(size=5), rng.normal(size=2)]
    ws = [sp.csr_matrix(x) for x in w]
    for f in (forward_reach, backward_reach):
        assert [r.tolist() for r in f(ws)] == [r.tolist() for r in f(w)]
    for dense, sparse in zip(constant_activations(w, b), constant_activations(ws, b)):
        np.testing.assert_array_equal(dense, sparse)
