"""Split a narrow sub-model off the last layers of an MLP, train it alone, and merge it back.

For each of the last `m` hidden layers, k units are selected (S) and the rest (R) are
collapsed into one "mean unit". With P_g the (k+1, n_g) map that keeps the rows of S
and averages the rows of R, and Q_g the (n_g, k+1) map that keeps the columns of S and
sums the columns of R, the sub-model's layer g is

    M_g = P_g W_g Q_{g-1},    c_g = P_g b_g

(Q of the unsplit layer before is the identity; P of the output layer too). The mean
unit takes the average incoming weights and bias of R and sends the summed outgoing
weights of R: where the units of R compute the same activation a, it reproduces their
total contribution exactly, sum_u W[:, u] a. The sub-model reads the (frozen)
activations of the layer below the split, so only its k+1 units per layer are trained.

Merging back writes W_g + A_g dM_g B_{g-1} with A_g = P_g's right inverse that gives
every unit of R the mean row's change and B = Q's left inverse that spreads a summed
column's change evenly over R. Then P W' Q = M + dM: the merged model projects onto
the trained sub-model exactly, and with no training (dM = 0) it is the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from nnclust.core import seeding
from nnclust.nets.weight_layer import WeightLayer, mlp_forward


class VulcanizerError(ValueError):
    """A split that cannot be made (k out of range, not an MLP, ...)."""


@dataclass(frozen=True)
class Split:
    """Where the sub-model sits: layers[first:] are the split layers (the last is the
    output layer); `selected[i]` / `rest[i]` are the unit indices of hidden layer
    first + i."""

    first: int
    selected: list[np.ndarray]
    rest: list[np.ndarray]


def _rows(n: int, sel: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, A): P averages the rest into the last row; A is its right inverse."""
    k = sel.size
    p = np.zeros((k + 1, n))
    p[np.arange(k), sel] = 1.0
    p[k, rest] = 1.0 / rest.size
    a = np.zeros((n, k + 1))
    a[sel, np.arange(k)] = 1.0
    a[rest, k] = 1.0
    return p, a


def _cols(n: int, sel: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q, B): Q keeps the columns of `sel` and sums the rest into the last one; B is its
    left inverse. They are A and P of `_rows`: the map that gives every unit of the rest
    a row's value also sums a column over them, and the average inverts that sum."""
    p, a = _rows(n, sel, rest)
    return a, p


def choose_units(importance: np.ndarray, k: int, rule: str = "max", seed: int = 0, width: float = 0.25) -> np.ndarray:
    """Indices (sorted) of k units: the k most important (``"max"``), or k drawn without
    replacement with weight exp(-(rank / (width * n))^2 / 2), rank 0 the most important
    (``"gaussian"``)."""
    importance = np.asarray(importance, np.float64)
    n = importance.size
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise VulcanizerError(f"k must be an int in [1, {n - 1}] for a layer of {n} units, got {k!r}")
    order = np.argsort(-importance, kind="stable")
    if rule == "max":
        return np.sort(order[:k])
    if rule == "gaussian":
        rank = np.empty(n)
        rank[order] = np.arange(n)
        w = np.exp(-0.5 * (rank / (width * n)) ** 2)
        return np.sort(seeding.rng(seed, "vulcanizer.units").choice(n, size=k, replace=False, p=w / w.sum()))
    raise VulcanizerError(f"unknown unit rule {rule!r}; valid rules are ['gaussian', 'max']")


def _check(layers: Sequence[WeightLayer]) -> None:
    for lay in layers:
        if lay.kind != "fc" or lay.bn_scale is not None:
            raise VulcanizerError(f"'{lay.name}': the vulcanizer splits MLPs (fc layers, batch norm folded first)")


def make_split(layers: Sequence[WeightLayer], importances: Sequence[np.ndarray], k: int, m: int, rule="max", seed=0):
    """The split of the last `m` hidden layers, keeping `k` units of each, chosen from
    `importances` (one array per hidden layer, as `unit_importance` gives)."""
    layers = list(layers)
    _check(layers)
    hidden = len(layers) - 1
    if not isinstance(m, (int, np.integer)) or not 1 <= m <= hidden:
        raise VulcanizerError(f"m must be an int in [1, {hidden}] (the network has {hidden} hidden layers), got {m!r}")
    first = hidden - m
    selected, rest = [], []
    for i, g in enumerate(range(first, hidden)):
        sel = choose_units(importances[g], k, rule, seeding.int_seed(seed, "vulcanizer.layer", i))
        selected.append(sel)
        rest.append(np.setdiff1d(np.arange(layers[g].n_out), sel))
    return Split(first=first, selected=selected, rest=rest)


def project(layers: Sequence[WeightLayer], split: Split) -> list[WeightLayer]:
    """The sub-model's layers (layers[split.first:], narrowed)."""
    layers = list(layers)
    out = []
    for i, lay in enumerate(layers[split.first :]):
        w = lay.weight
        b = np.zeros(lay.n_out) if lay.bias is None else lay.bias
        if i < len(split.selected):
            p, _ = _rows(lay.n_out, split.selected[i], split.rest[i])
            w, b = p @ w, p @ b
        if i > 0:
            q, _ = _cols(lay.n_in, split.selected[i - 1], split.rest[i - 1])
            w = w @ q
        out.append(replace(lay, weight=w, bias=b, mask=None))
    return out


def merge(layers: Sequence[WeightLayer], split: Split, trained: Sequence[WeightLayer]) -> list[WeightLayer]:
    """The full layers with the trained sub-model written back (see the module text)."""
    layers = list(layers)
    before = project(layers, split)
    if len(trained) != len(before) or any(t.weight.shape != b.weight.shape for t, b in zip(trained, before)):
        raise VulcanizerError("the trained sub-model does not have the shape of this split's sub-model")
    out = layers[: split.first]
    for i, (lay, old, new) in enumerate(zip(layers[split.first :], before, trained)):
        dw = new.weight - old.weight
        db = (np.zeros(lay.n_out) if new.bias is None else new.bias) - old.bias
        if i < len(split.selected):
            _, a = _rows(lay.n_out, split.selected[i], split.rest[i])
            dw, db = a @ dw, a @ db
        if i > 0:
            _, b_inv = _cols(lay.n_in, split.selected[i - 1], split.rest[i - 1])
            dw = dw @ b_inv
        bias = (np.zeros(lay.n_out) if lay.bias is None else lay.bias) + db
        out.append(replace(lay, weight=lay.weight + dw, bias=bias))
    return out


def forward_below(layers: Sequence[WeightLayer], split: Split, x: np.ndarray) -> np.ndarray:
    """The activations the sub-model reads: the input pushed through layers[:first]."""
    below = list(layers)[: split.first]
    if not below:
        return np.asarray(x, np.float64).reshape(len(x), -1)
    return np.maximum(mlp_forward(below, x)[0], 0.0)


def unit_importance(layers: Sequence[WeightLayer], x: np.ndarray) -> list[np.ndarray]:
    """Per hidden layer: each unit's mean activation on `x` (n, n_in) times the L1 norm of
    its outgoing weights, the size of what it sends on average."""
    layers = list(layers)
    _, hidden = mlp_forward(layers, x)
    return [h.mean(axis=0) * np.abs(nxt.weight).sum(axis=0) for h, nxt in zip(hidden, layers[1:])]


def mean_unit_masks(sub_layers: Sequence[WeightLayer], split: Split) -> dict[str, np.ndarray]:
    """Trainable-entry masks (True = train) for the sub-model as `mlp_from_layers` names
    it (``layer<i>.fc.weight`` / ``.bias``) that freeze every mean unit: its incoming row
    and bias, and its outgoing column.

    Trained this way, the full model's collapsed units keep their parameters; with m = 1
    the merged model's logits then change by exactly what the sub-model's did.
    """
    masks = {}
    for i, lay in enumerate(sub_layers):
        w = np.ones(lay.weight.shape, bool)
        b = np.ones(lay.n_out, bool)
        if i < len(split.selected):
            w[-1, :] = False  # the mean unit's incoming row
            b[-1] = False
        if i > 0:
            w[:, -1] = False  # what the previous mean unit sends
        masks[f"layer{i}.fc.weight"] = w
        masks[f"layer{i}.fc.bias"] = b
    return masks
