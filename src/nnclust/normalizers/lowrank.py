"""Combining always-active ReLUs: the normalizer document's "combine ReLUs with large
biases", as a pure function over fc weight layers (numpy float64).

A hidden unit whose pre-activation is positive on every input of the data acts there
as a linear unit. A group A of such units in hidden layer g adds

    W_{g+1}[:, A] (W_g[A] h + b_g[A]) = M h + W_{g+1}[:, A] b_g[A],  M = W_{g+1}[:, A] W_g[A]

to the next layer's pre-activations (h: the layer's inputs). With the SVD M = U S V^T
cut to rank r, the group is replaced by r units with incoming weights sqrt(S_k) V_k,
outgoing weights sqrt(S_k) U_k and a bias large enough that each stays active on the
data; the next layer's bias cancels those biases. On the data the output changes only
by the dropped singular values (none when r = rank M).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnclust.nets.weight_layer import WeightLayer
from nnclust.nets.weight_layer import mlp_forward as forward


def _bias(lay: WeightLayer) -> np.ndarray:
    return np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias, np.float64)


def energy_rank(s: np.ndarray, energy_tol: float) -> int:
    """The smallest r whose first r singular values `s` (decreasing) keep all but a
    fraction `energy_tol` of sum s^2 (0 for a zero matrix)."""
    total = float((s**2).sum())
    if total == 0.0:
        return 0
    dropped = total - np.cumsum(s**2)  # energy left out by rank 1, 2, ...
    return int(np.argmax(dropped <= energy_tol * total)) + 1


def combine_large_bias_units(
    layers: Sequence[WeightLayer],
    x: np.ndarray,
    energy_tol: float = 1e-12,
    margin: float = 1.0,
    min_preactivation: float = 0.0,
) -> list[WeightLayer]:
    """Replace the always-active units of each hidden layer by fewer units of a
    low-rank factorisation of their linear map; layers from the input on.

    Parameters
    ----------
    layers : fc weight layers in forward order, batch norm folded.
    x : inputs (n, ...), the data on which a unit counts as always active.
    energy_tol : fraction of sum s^2 of the group's map M that may be dropped when
        choosing the rank (`energy_rank`); 1e-12 keeps the numerical rank.
    margin : each new unit's pre-activation is at least this on `x`.
    min_preactivation : a unit is always active when its pre-activation exceeds this
        on every input of `x`.

    A layer is changed only when the rank r is below the group's size. The new units
    replace the group's first r positions (the others are removed). New units and their
    outgoing weights are dense: where the layer has a mask, it is True on them.
    """
    layers = list(layers)
    for g in range(len(layers) - 1):
        # The inputs of layer g in the network as changed so far.
        h_in = np.asarray(x, np.float64).reshape(len(x), -1) if g == 0 else forward(layers, x)[1][g - 1]
        lay, nxt = layers[g], layers[g + 1]
        pre = h_in @ lay.weight.T + _bias(lay)
        active = pre.min(axis=0) > min_preactivation
        group = np.flatnonzero(active)
        if group.size < 2:
            continue
        m = nxt.weight[:, group] @ lay.weight[group]
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        r = energy_rank(s, energy_tol)
        if r == 0 and group.size == lay.n_out:
            r = 1  # a layer keeps one unit (carrying a zero map when M is zero)
        if r >= group.size:
            continue
        root = np.sqrt(s[:r])
        w_new = root[:, None] * vt[:r]  # (r, n_in)
        out_new = u[:, :r] * root[None, :]  # (n_next, r)
        b_new = margin - (h_in @ w_new.T).min(axis=0)
        # The group's constant part and the new units' biases both go into the next bias.
        next_bias = _bias(nxt) + nxt.weight[:, group] @ _bias(lay)[group] - out_new @ b_new
        slots, gone = group[:r], group[r:]
        keep = np.ones(lay.n_out, bool)
        keep[gone] = False
        weight, bias, out_w = lay.weight.copy(), _bias(lay).copy(), nxt.weight.copy()
        weight[slots], bias[slots] = w_new, b_new
        out_w[:, group] = 0.0
        out_w[:, slots] = out_new
        in_mask = None if lay.mask is None else lay.mask.copy()
        out_mask = None if nxt.mask is None else nxt.mask.copy()
        if in_mask is not None:
            in_mask[slots] = True
        if out_mask is not None:
            out_mask[:, slots] = True
        layers[g] = replace(lay, weight=weight[keep], bias=bias[keep], mask=None if in_mask is None else in_mask[keep])
        layers[g + 1] = replace(
            nxt, weight=out_w[:, keep], bias=next_bias, mask=None if out_mask is None else out_mask[:, keep]
        )
    return layers
