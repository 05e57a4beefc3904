"""The layered drawing places each cluster as one block per column."""

from __future__ import annotations

import numpy as np

from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.graph import build_graph
from nnclust.viz.figures import layer_order, layered_network


def test_units_sorted_by_cluster_then_strength_with_removed_last():
    # hidden unit 3 reads nothing and feeds nothing: removed
    w1 = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 1.0], [0.0, 0.0]])
    w2 = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 0.0]])
    g = build_graph([WeightLayer("a", "fc", w1), WeightLayer("b", "fc", w2)], normalize=False)
    labels = np.array([1, 0, 1, 0, 0, -1, 1, 0])  # inputs 0-1, hidden 2-5, outputs 6-7
    x, y = layer_order(g, labels)
    np.testing.assert_array_equal(x, [0, 0, 1, 1, 1, 1, 2, 2])
    hidden = np.argsort(-y[2:6]) + 2  # top to bottom
    # cluster 0 first: node 3 (strength 3 + 1) before node 4 (1 + 2), then cluster 1, removed last
    assert hidden.tolist() == [3, 4, 2, 5]
    assert y[1] > y[0] and y[7] > y[6]
    # a gap separates clusters: the step between blocks is larger than within one
    steps = -np.diff(y[hidden])
    assert steps[1] > steps[0] and steps[2] > steps[0]
    layered_network(g, labels, max_edges=2)  # draws with a cap on the edges


def test_drawing_colours_within_cluster_edges():
    g = build_graph([WeightLayer("a", "fc", np.eye(2)), WeightLayer("b", "fc", np.eye(2))], normalize=False)
    fig = layered_network(g, np.array([0, 1, 0, 1, 0, 1]))
    collections = [c for c in fig.axes[0].collections if c.__class__.__name__ == "LineCollection"]
    inside = collections[-1]
    assert len(inside.get_segments()) == 4  # every edge joins two units of one cluster
    assert len(collections[0].get_segments()) == 0
