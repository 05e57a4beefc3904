"""Pruning trajectories and extension widths, against the closed forms."""

import math

import pytest

from nnclust.pruning.trajectory import (
    extended_trajectory,
    extended_width,
    growth_rate,
    mlp_prunable,
    pruning_rate,
    trajectory,
)


def test_trajectory_follows_the_formula():
    p0, pt, T = 1000, 10, 4
    p = 1 - (pt / p0) ** (1 / T)
    assert pruning_rate(p0, pt, T) == pytest.approx(p)
    assert trajectory(p0, pt, T) == [1000, 316, 100, 32, 10]
    assert trajectory(4 * 40 + 40 * 40 + 40 * 2 + 82, 40, 8)[0] == 1922
    assert trajectory(1922, 40, 8)[-1] == 40


def test_growth_undoes_one_level():
    g = growth_rate(1000, 10, 4)
    assert (1 - pruning_rate(1000, 10, 4)) * (1 + g) == pytest.approx(1.0)


def test_mlp_prunable_counts():
    assert mlp_prunable(4, 40, 2, 2) == 4 * 40 + 40 * 40 + 40 * 2 + 40 + 40 + 2
    assert mlp_prunable(4, 40, 2, 2, biases=False) == 4 * 40 + 40 * 40 + 40 * 2
    assert mlp_prunable(4, 10, 1, 2) == 40 + 20 + 12


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("extend", [1, 2, 3])
@pytest.mark.parametrize("biases", [True, False])
def test_extension_widths_land_on_p0(depth, extend, biases):
    n_in, width, n_out, target, levels = 4, 40, 2, 50, 8
    p0 = mlp_prunable(n_in, width, depth, n_out, biases)
    w = extended_width(n_in, [width] * depth, n_out, target, levels, extend, biases)
    assert w > width
    goal = p0 * (1 + growth_rate(p0, target, levels)) ** extend
    p_w = mlp_prunable(n_in, w, depth, n_out, biases)
    one_unit = mlp_prunable(n_in, w + 1, depth, n_out, biases) - p_w
    assert abs(p_w - goal) <= one_unit  # at most one unit's worth of parameters off
    traj = extended_trajectory(p_w, p0, target, levels, extend)
    assert len(traj) == levels + extend + 1
    assert traj[extend] == p0 and traj[0] == p_w and traj[-1] == target
    # pruning the extended network k levels at rate p lands on P0 up to that rounding
    p = pruning_rate(p0, target, levels)
    assert goal * (1 - p) ** extend == pytest.approx(p0)
    assert all(a > b for a, b in zip(traj, traj[1:]))


def test_no_extension_keeps_the_width():
    assert extended_width(4, [40, 40], 2, 50, 8, 0) == 40
    assert extended_trajectory(1922, 1922, 40, 8, 0) == trajectory(1922, 40, 8)


@pytest.mark.parametrize("target", [0, -5, 2000, math.inf])
def test_targets_outside_0_p0_are_errors(target):
    with pytest.raises(ValueError, match=r"pruning target .* must be in \(0, P0=1922\]"):
        trajectory(1922, target, 8)


def test_other_bad_input():
    with pytest.raises(ValueError, match="levels must be an int >= 1"):
        trajectory(100, 10, 0)
    with pytest.raises(ValueError, match="one width"):
        extended_width(4, [40, 20], 2, 10, 4, 1)
    with pytest.raises(ValueError, match="extend"):
        extended_width(4, [40, 40], 2, 10, 4, -1)
