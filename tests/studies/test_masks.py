"""Pruning masks against clusters, in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom

from nnclust.clustering.masks import mask_cluster_table
from nnclust.nets.weight_layer import WeightLayer


def test_layer_and_cluster_counts_in_closed_form():
    # 2 inputs (clusters 0, 1), 2 hidden (0, 1), 1 output (0); hidden 1 -> output cut.
    w1 = np.array([[1.0, 2.0], [3.0, 4.0]])
    m1 = np.array([[True, False], [True, True]])  # survivors: (0,0) in, (1,0) across, (1,1) in
    w2 = np.array([[5.0, 6.0]])
    m2 = np.array([[True, False]])
    layers = [WeightLayer("a", "fc", w1 * m1, mask=m1), WeightLayer("b", "fc", w2 * m2, mask=m2)]
    group = np.array([0, 0, 1, 1, 2])
    labels = np.array([0, 1, 0, 1, 0])
    rows, clusters = mask_cluster_table(layers, [(0, 1), (1, 2)], group, labels)
    a, b = rows
    assert (a["positions"], a["within"], a["survivors"], a["survivors_within"]) == (4, 2, 3, 2)
    assert a["observed_fraction"] == pytest.approx(2 / 3) and a["expected_fraction"] == pytest.approx(0.5)
    assert a["ratio"] == pytest.approx(4 / 3)
    assert a["p_value"] == pytest.approx(hypergeom.sf(1, 4, 2, 3))  # P(X >= 2) = 1/2
    assert a["p_value"] == pytest.approx(0.5)
    assert (b["positions"], b["within"], b["survivors"], b["survivors_within"]) == (2, 1, 1, 1)
    assert clusters == [
        {"cluster": 0, "internal_positions": 2, "internal_survivors": 2, "survival": 1.0},
        {"cluster": 1, "internal_positions": 1, "internal_survivors": 1, "survival": 1.0},
    ]


def test_removed_units_and_conv_positions():
    # conv 2 -> 2 channels, 2x2 kernels; input channel 1 removed (label -1)
    w = np.ones((2, 2, 2, 2))
    w[0, 0, 0, 0] = 0.0  # no mask: zeros are the pruned entries
    layers = [WeightLayer("c", "conv", w)]
    group = np.array([0, 0, 1, 1])
    labels = np.array([0, -1, 0, 1])
    (row,), clusters = mask_cluster_table(layers, [(0, 1)], group, labels)
    # clustered positions: out 0 and 1 reading input channel 0, 4 kernel entries each
    assert (row["positions"], row["within"], row["survivors"], row["survivors_within"]) == (8, 4, 7, 3)
    assert clusters == [{"cluster": 0, "internal_positions": 4, "internal_survivors": 3, "survival": 0.75}]
