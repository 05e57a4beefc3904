"""Pruning trajectories: how many prunable parameters survive each IMP level.

Given P0 prunable parameters, a target PT and T levels, the per-level rate is
p = 1 - (PT / P0)^(1/T) and the targets are P_i = round(P0 (1 - p)^i), i = 0 .. T,
an exponential through (0, P0) and (T, PT), discretised at the levels.

A trajectory can be extended backwards by k levels: the growth rate g = 1/(1 - p) - 1
undoes one level, P_{-k} = P0 (1 + g)^k. `extended_width` solves the hidden width of
an MLP (all hidden layers of one width, the only free variable of its shape) so that
it holds about P_{-k} prunable parameters; its run then prunes to P_{-k+1}, ..., P0,
P1, ..., PT and meets runs of other widths at the same parameter counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _check_counts(p0, target, levels) -> None:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"the number of pruning levels must be an int >= 1, got {levels!r}")
    if isinstance(p0, bool) or not isinstance(p0, (int, np.integer)) or p0 < 1:
        raise ValueError(f"the number of prunable parameters P0 must be an int >= 1, got {p0!r}")
    if isinstance(target, bool) or not isinstance(target, (int, float, np.integer, np.floating)):
        raise ValueError(f"the pruning target must be a number, got {target!r}")
    if not 0 < target <= p0:
        raise ValueError(
            f"the pruning target {target} must be in (0, P0={p0}]: it is the number of prunable "
            "parameters left after the last level; lower it below P0 or widen the network"
        )


def pruning_rate(p0: int, target: float, levels: int) -> float:
    """The per-level fraction p of the remaining parameters that each level removes."""
    _check_counts(p0, target, levels)
    return 1.0 - (target / p0) ** (1.0 / levels)


def trajectory(p0: int, target: float, levels: int) -> list[int]:
    """Prunable-parameter counts ``[P0, P1, ..., PT]`` (T = `levels`), P_i = round(P0 (1-p)^i)."""
    p = pruning_rate(p0, target, levels)
    return [int(round(p0 * (1.0 - p) ** i)) for i in range(levels + 1)]


def growth_rate(p0: int, target: float, levels: int) -> float:
    """g = 1 / (1 - p) - 1: growing by g undoes one level of pruning."""
    return 1.0 / (1.0 - pruning_rate(p0, target, levels)) - 1.0


def mlp_prunable(n_in: int, width: int, depth: int, n_out: int, biases: bool = True) -> int:
    """Prunable parameters of an MLP n_in -> width x `depth` hidden layers -> n_out:
    all weights, plus all biases when `biases`."""
    weights = n_in * width + (depth - 1) * width * width + width * n_out
    return weights + ((depth * width + n_out) if biases else 0)


def extended_width(
    n_in: int, hidden: Sequence[int], n_out: int, target: float, levels: int, extend: int, biases: bool = True
) -> int:
    """The hidden width w whose MLP holds about P_{-k} = P0 (1 + g)^k prunable parameters.

    P(w) is quadratic in w (linear for one hidden layer); w is the positive root of
    P(w) = P_{-k}, rounded to the nearest int, so |P(w) - P_{-k}| is at most half of
    one unit's worth of parameters, P(w + 1) - P(w). `hidden` must list one width
    repeated (the width is the only free variable); ``extend=0`` returns it unchanged.
    """
    hidden = list(hidden)
    if not hidden or len(set(hidden)) != 1:
        raise ValueError(f"extending needs hidden layers of one width, got hidden={hidden}")
    if isinstance(extend, bool) or not isinstance(extend, (int, np.integer)) or extend < 0:
        raise ValueError(f"extend (the number of levels to grow the network by) must be an int >= 0, got {extend!r}")
    depth, width = len(hidden), hidden[0]
    p0 = mlp_prunable(n_in, width, depth, n_out, biases)
    if extend == 0:
        _check_counts(p0, target, levels)
        return width
    goal = p0 * (1.0 + growth_rate(p0, target, levels)) ** extend
    # P(w) = a w^2 + b w + c
    a = depth - 1
    b = n_in + n_out + (depth if biases else 0)
    c = (n_out if biases else 0) - goal
    w = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return max(1, int(round(w)))


def extended_trajectory(p_start: int, p0: int, target: float, levels: int, extend: int) -> list[int]:
    """The counts an extended run prunes along: ``[P_start, P_{-k+1}, ..., P_{-1}, P0, ..., PT]``.

    `p_start` is the extended network's actual count (close to P_{-k}); the k - 1
    intermediate targets are round(P0 (1 + g)^j), so after k levels the run holds
    exactly P0 and follows the base trajectory from there.
    """
    base = trajectory(p0, target, levels)
    if extend == 0:
        return base
    if p_start < p0:
        raise ValueError(f"an extended network must hold at least P0={p0} prunable parameters, got {p_start}")
    g = growth_rate(p0, target, levels)
    middle = [int(round(p0 * (1.0 + g) ** j)) for j in range(extend - 1, 0, -1)]
    return [int(p_start), *middle, *base]
