"""Cluster lesions: masks in closed form, random sets of the same make-up, p-values."""

from __future__ import annotations

import numpy as np
import pytest

from nnclust.clustering.lesions import (
    LESION_MODES,
    layer_groups,
    lesion_keep_masks,
    null_statistics,
    random_unit_set,
)
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.graph import build_graph

# 2 inputs -> 3 hidden -> 2 outputs; nodes 0-1 inputs, 2-4 hidden, 5-6 outputs
LAYERS = [WeightLayer("a", "fc", np.ones((3, 2))), WeightLayer("b", "fc", np.ones((2, 3)))]
GROUP = np.array([0, 0, 1, 1, 1, 2, 2])


@pytest.mark.parametrize(
    "mode, first, second",
    [
        # inputs {0}, hidden {2, 3} (nodes 2, 4), outputs {1} (node 6)
        ("weights", [[1, 1], [1, 1], [0, 1]], [[1, 1, 1], [0, 1, 0]]),
        ("silence", [[0, 1], [0, 1], [0, 1]], [[0, 1, 0], [0, 1, 0]]),
    ],
)
def test_lesion_masks_in_closed_form(mode, first, second):
    members = np.array([1, 0, 1, 0, 1, 0, 1], bool)
    groups = layer_groups(LAYERS, ["input", "a", "b"])
    assert groups == [(0, 1), (1, 2)]
    m = lesion_keep_masks(LAYERS, groups, GROUP, members, mode)
    # weights mode: first layer kills (hidden 0 <- input 0) and (hidden 2 <- input 0)
    if mode == "weights":
        first = [[0, 1], [1, 1], [0, 1]]
    np.testing.assert_array_equal(m[0], first)
    np.testing.assert_array_equal(m[1], second)


@pytest.mark.parametrize("mode", sorted(LESION_MODES))
def test_every_mode_leaves_an_empty_set_alone(mode):
    m = lesion_keep_masks(LAYERS, [(0, 1), (1, 2)], GROUP, np.zeros(7, bool), mode)
    assert m == [None, None]


def test_unknown_mode_and_bad_members():
    with pytest.raises(ValueError, match=r"unknown lesion mode 'cut'.*silence"):
        lesion_keep_masks(LAYERS, [(0, 1), (1, 2)], GROUP, np.zeros(7, bool), "cut")
    with pytest.raises(ValueError, match="shape"):
        lesion_keep_masks(LAYERS, [(0, 1), (1, 2)], GROUP, np.zeros(6, bool))


def test_conv_masks_cover_kernels_and_flattened_positions():
    rng = np.random.default_rng(0)
    layers = [
        WeightLayer("c0", "conv", rng.normal(size=(2, 1, 3, 3))),
        WeightLayer("c1", "conv", rng.normal(size=(3, 2, 3, 3))),
        WeightLayer("f", "fc", rng.normal(size=(2, 3 * 4))),
    ]
    g = build_graph(layers, cnn_nodes="full")
    groups = layer_groups(layers, g.group_names)
    members = np.zeros(g.n_nodes, bool)
    # nodes: input 0; c0 channels 1-2; c1 channels 3-5; f outputs 6-7
    members[[1, 3, 5, 6]] = True  # c0 channel 0, c1 channels 0 and 2, output 0
    m = lesion_keep_masks(layers, groups, g.group, members, "weights")
    assert m[0] is None  # the input is not in the set
    assert m[1].shape == (3, 2, 1, 1) and m[2].shape == (2, 12)
    np.testing.assert_array_equal(m[1][:, :, 0, 0], [[0, 1], [1, 1], [0, 1]])
    # output 0 loses the 4 flattened positions of c1 channels 0 and 2
    np.testing.assert_array_equal(m[2][0], [0] * 4 + [1] * 4 + [0] * 4)
    np.testing.assert_array_equal(m[2][1], [1] * 12)
    # conv node set: the first conv layer is outside the graph
    gc = build_graph(layers, cnn_nodes="conv")
    assert layer_groups(layers, gc.group_names) == [None, (0, 1), None]


def test_random_sets_keep_the_make_up_and_draw_only_kept_nodes():
    group = np.repeat([0, 1, 2], [50, 40, 10])
    keep = np.ones(100, bool)
    keep[50:60] = False
    like = np.zeros(100, bool)
    like[[0, 1, 2, 70, 71, 95]] = True
    rng = np.random.default_rng(0)
    draws = [random_unit_set(group, keep, like, rng) for _ in range(200)]
    for d in draws:
        assert np.bincount(group[d], minlength=3).tolist() == [3, 2, 1]
        assert not d[50:60].any()
    # every kept hidden node is drawn sometimes: the draw is not stuck on a subset
    assert np.stack(draws)[:, 60:90].any(axis=0).all()


def test_null_statistics_closed_form():
    s = null_statistics(0.3, np.array([0.1, 0.2, 0.3, 0.4]))
    assert s["p_value"] == pytest.approx(3 / 5)  # (1 + 2) / (1 + 4)
    assert s["null_mean"] == pytest.approx(0.25)
    assert s["null_sd"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4], ddof=1))
    assert null_statistics(1.0, np.zeros(9))["p_value"] == pytest.approx(0.1)
