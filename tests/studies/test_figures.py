"""What the figures say: cluster colours and ids, phases, multiple-comparison stars,
the shuffle histogram's annotations, and the IMP and connectivity panels."""

from __future__ import annotations

import itertools

import matplotlib.colors
import numpy as np
import pytest

from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.graph import build_graph
from nnclust.viz import figures
from nnclust.viz import imp as imp_figures


@pytest.mark.parametrize("k", [3, 10, 12, 24, 40])
def test_cluster_colours_are_distinct_and_fixed_per_id(k):
    c = figures.cluster_colors(k)
    assert c.shape == (k, 4)
    lab = matplotlib.colors.rgb_to_hsv(c[:, :3])
    # no two ids share a colour; neighbouring ids differ clearly in hue or lightness
    dist = [np.abs(c[i, :3] - c[j, :3]).max() for i, j in itertools.combinations(range(k), 2)]
    assert min(dist) > 0.03
    near = [min(abs(lab[i, 0] - lab[i + 1, 0]), 1 - abs(lab[i, 0] - lab[i + 1, 0])) for i in range(k - 1)]
    assert k <= 10 or min(near) > 0.2
    np.testing.assert_array_equal(figures.cluster_colors(k)[: min(k, 3)], c[: min(k, 3)])


def test_network_legend_names_every_cluster_with_its_size():
    g = build_graph([WeightLayer("a", "fc", np.eye(3)), WeightLayer("b", "fc", np.eye(3))], normalize=False)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    fig = figures.layered_network(g, labels)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["0 (3 units)", "1 (3 units)", "2 (3 units)"]
    colours = fig.axes[0].get_legend().legend_handles
    np.testing.assert_allclose([h.get_color() for h in colours], figures.cluster_colors(3))


def test_adjacency_marks_cluster_ids_and_layers():
    g = build_graph([WeightLayer("a", "fc", np.eye(2)), WeightLayer("b", "fc", np.eye(2))], normalize=False)
    labels = np.array([1, 0, 1, 0, 1, 0])
    fig = figures.sorted_adjacency(g.adjacency, labels, 0.0, g.group[g.keep], g.group_names)
    ax = fig.axes[0]
    ids = sorted(t.get_text() for t in ax.texts)
    assert ids == ["0", "1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == g.group_names


def test_phases_from_the_sparsity_series():
    assert figures._phases([0, 0, 0.3, 0.6, 0.9, 0.9, 0.9]) == (2, 4)
    assert figures._phases([0, 0.5, 0.5]) == (1, 1)
    assert figures._phases([0, 0, 0]) == (None, None)
    hist = {"train_loss": [1, 0.5, 0.4, 0.3], "test_loss": [1, 0.6, 0.5, 0.4], "test_accuracy": [0.1, 0.5, 0.6, 0.7],
            "sparsity": [0, 0.5, 0.9, 0.9], "cluster_term": [0.2, 0.1, 0.1, 0.05]}  # fmt: skip
    fig = figures.training_curves(hist)
    assert len(fig.axes) == 4 and "clusterability" in fig.axes[3].get_title()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "pruning (epochs 2-3)" in legend and "fine-tuning" in legend
    assert len(figures.training_curves({k: v for k, v in hist.items() if k != "cluster_term"}).axes) == 3


def test_benjamini_hochberg_against_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> p * n / rank = 0.04, 0.06, 0.0533, 0.20 -> running min from the top
    np.testing.assert_allclose(figures.benjamini_hochberg(p), [0.04, 0.0533333, 0.0533333, 0.20], rtol=1e-6)
    np.testing.assert_allclose(figures.benjamini_hochberg(p.reshape(2, 2)), [[0.04, 0.0533333], [0.0533333, 0.2]],
                               rtol=1e-6)  # fmt: skip


def test_lesion_stars_are_controlled_over_all_cells():
    # 2 clusters x 30 classes; raw p = 0.03 in three cells and 0.5 elsewhere: every raw
    # p < 0.05 star is a false discovery once 60 cells are tested (BH q = 0.6).
    per = []
    for c in range(2):
        ps = [0.5] * 30
        if c == 0:
            ps[:3] = [0.03, 0.03, 0.03]
        per.append({"cluster": c, "size": 5, "class_drops": [0.01] * 30, "class_p_values": ps})
    fig = figures.lesion_heatmap(per, "silence")
    assert [t.get_text() for t in fig.axes[0].texts] == []
    per[1]["class_p_values"] = [0.001] * 30  # 30 strong cells survive the correction
    fig = figures.lesion_heatmap(per, "silence")
    assert len(fig.axes[0].texts) == 30


def test_lesion_null_labels_sit_inside_the_axes():
    per = [{"cluster": c, "size": 4, "accuracy_drop": 0.1 * c, "null_drops": list(np.linspace(0, 0.05, 20)),
            "p_value": 0.5 / (c + 1)} for c in range(3)]  # fmt: skip
    ax = figures.lesion_nulls(per, "weights").axes[0]
    top = ax.get_ylim()[1]
    assert all(t.get_position()[1] < top for t in ax.texts) and len(ax.texts) == 3
    assert "q=" in ax.texts[0].get_text()


def test_shuffle_histogram_names_z_sd_and_the_p_floor():
    stats = {"shuffled_ncuts": list(np.linspace(1, 2, 9)), "true_ncut": 0.5, "z_score": -3.0, "p_value": 0.1,
             "true_ncut_sd": 0.05, "z_sd": 0.2}  # fmt: skip
    title = figures.shuffle_histogram(stats, "all").axes[0].get_title()
    assert "± 0.20 (search)" in title and "floor 1/(n+1)" in title
    stats.update(p_value=0.3, true_ncut_sd=None, z_sd=None)
    title = figures.shuffle_histogram(stats, "all").axes[0].get_title()
    assert "search" not in title and "floor 0.1" in title


def test_imp_and_connectivity_panels_carry_their_keys():
    fig = imp_figures.task_matrices([np.ones((2, 2)), np.eye(2)], [1.0, 0.0])
    assert "||C-I|| 1.4" in fig.axes[0].get_title() and "||C-I|| 0" in fig.axes[1].get_title()
    assert [t.get_text() for t in fig.axes[-1].get_yticklabels()] == ["no path", "path"]
    fig = imp_figures.connectivity([["alive", "dead", "dead"], ["zombie", "alive"]], ["l0", "l1"], np.eye(2), 0.0)
    bars = fig.axes[0].patches
    heights = {(round(b.get_x() + b.get_width() / 2), b.get_height()) for b in bars if b.get_height() > 0}
    assert heights == {(0, 1.0), (0, 2.0), (1, 1.0)}
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(imp_figures.UNIT_COLORS)
