"""Normalizers of ReLU MLPs as pure functions over fc weight layers (numpy float64).

Each takes a list of `WeightLayer` (fc, batch norm folded, forward order) and returns a
new list; the input is never modified. The exact ones leave the network's function
unchanged; the approximate and data-dependent ones change it by what they remove,
which the caller measures (`max_output_change`). Unit removal goes through
`nnclust.structure.surgery` (the one dead-unit removal with bias folding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnclust.nets.weight_layer import WeightLayer
from nnclust.nets.weight_layer import mlp_forward as forward
from nnclust.structure.surgery import fold_and_remove, remove_units
from nnclust.structure.transforms import relu_rescale_layers

# Factor of the seed's dead-unit rule ||w_in|| * ||w_out|| * 1.1 < threshold, kept so
# that thresholds read the same as there.
DEAD_FACTOR = 1.1


class NormalizerError(ValueError):
    """A normalizer cannot be applied (wrong model type, missing data, bad option, or a
    setting that would leave a layer without units)."""


def _check_keeps_units(remove: Sequence[np.ndarray], option: str) -> None:
    for g, r in enumerate(remove):
        if r.size and r.all():
            raise NormalizerError(
                f"{option} would delete all {r.size} units of hidden layer {g + 1}, leaving no network; "
                "lower it (or use keep_shape=True where offered)"
            )


def _bias(lay: WeightLayer) -> np.ndarray:
    return np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias, np.float64)


def _permute_unit(layers: list[WeightLayer], g: int, order: np.ndarray) -> None:
    """Reorder the units of hidden layer g (rows of layer g, columns of layer g+1) in place."""
    lay, nxt = layers[g], layers[g + 1]
    layers[g] = replace(
        lay,
        weight=lay.weight[order],
        bias=None if lay.bias is None else np.asarray(lay.bias)[order],
        mask=None if lay.mask is None else lay.mask[order],
    )
    layers[g + 1] = replace(nxt, weight=nxt.weight[:, order], mask=None if nxt.mask is None else nxt.mask[:, order])


def _sorted_sum(a: np.ndarray, axis: int) -> np.ndarray:
    # Summing sorted values makes the score independent of the order of the terms, so
    # permuted copies of a network get bit-identical scores (and the same sort).
    return np.sort(a, axis=axis).sum(axis=axis)


def sort_scores(layers: Sequence[WeightLayer], include_bias: bool = False) -> list[np.ndarray]:
    """Per hidden layer, the sort score of each unit, shape (width_g,): sum |incoming| +
    sum |outgoing| (the document's rule), plus |bias| with `include_bias`."""
    scores = []
    for g in range(len(layers) - 1):
        lay, nxt = layers[g], layers[g + 1]
        score = _sorted_sum(np.abs(lay.weight), 1) + _sorted_sum(np.abs(nxt.weight), 0)
        scores.append(score + np.abs(_bias(lay)) if include_bias else score)
    return scores


def sort_neurons(layers: Sequence[WeightLayer], include_bias: bool = False) -> list[WeightLayer]:
    """Each hidden layer ordered by decreasing sum |incoming| + sum |outgoing| (with
    `include_bias`, + |bias|), the next layer's columns permuted to match, from the
    input layer on. Exact.

    Ties keep their current relative order (a stable sort: of two units with equal
    scores the one with the lower index comes first), so the result is deterministic
    and sorting again changes nothing; tied units of a permuted copy may end up in
    another order (see `rescale_relu` for what a normal form still leaves open).
    """
    layers = list(layers)
    for g in range(len(layers) - 1):
        score = sort_scores(layers[g : g + 2], include_bias)[0]
        _permute_unit(layers, g, np.argsort(-score, kind="stable"))
    return layers


def rescale_relu(layers: Sequence[WeightLayer]) -> list[WeightLayer]:
    """Every hidden unit's (incoming weights, bias) scaled to unit L2 norm, the factor
    moved to its outgoing weights (`structure.transforms.relu_rescale_layers`). Exact;
    units with zero incoming weights and bias are left alone.

    With `sort_neurons` after it, this gives a normal form: two networks that differ by
    a permutation of hidden units and a positive rescaling of each get the same weights.
    Left open: units of equal sort score (their order is the input order), and units
    with zero (w_in, b), whose outgoing weights keep any scale.
    """
    return relu_rescale_layers(list(layers))


def _pad_units(layers: list[WeightLayer], kept: list[np.ndarray], widths: list[int]) -> list[WeightLayer]:
    """Append zero units (zero in, bias and out; mask False) to each hidden layer until it
    has its original width again: the seed's shape-keeping convention."""
    out = list(layers)
    for g, width in enumerate(widths):
        extra = width - out[g].n_out
        if extra <= 0:
            continue
        lay, nxt = out[g], out[g + 1]
        out[g] = replace(
            lay,
            weight=np.vstack([lay.weight, np.zeros((extra, lay.n_in))]),
            bias=np.concatenate([_bias(lay), np.zeros(extra)]),
            mask=None if lay.mask is None else np.vstack([lay.mask, np.zeros((extra, lay.n_in), bool)]),
        )
        out[g + 1] = replace(
            nxt,
            weight=np.hstack([nxt.weight, np.zeros((nxt.n_out, extra))]),
            mask=None if nxt.mask is None else np.hstack([nxt.mask, np.zeros((nxt.n_out, extra), bool)]),
        )
    return out


def dead_scores(layers: Sequence[WeightLayer]) -> list[np.ndarray]:
    """Per hidden layer, ||w_in|| * ||w_out|| * 1.1 of each unit (L2 norms of its
    incoming and outgoing weights), shape (width_g,)."""
    return [
        np.linalg.norm(layers[g].weight, axis=1) * np.linalg.norm(layers[g + 1].weight, axis=0) * DEAD_FACTOR
        for g in range(len(layers) - 1)
    ]


def delete_dead_neurons(
    layers: Sequence[WeightLayer], threshold: float = 0.0, keep_shape: bool = False
) -> list[WeightLayer]:
    """Delete hidden units with ||w_in|| * ||w_out|| * 1.1 <= `threshold`.

    Each deleted unit's constant ReLU(bias) contribution is folded into the next
    layer's bias (`structure.surgery.remove_units`), so deleting units without incoming
    weights, or without outgoing ones, is exact; the default threshold 0 deletes exactly
    those. With `keep_shape` the layers keep their widths: the kept units come first,
    then zero units in place of the deleted ones (the seed's convention).
    """
    layers = list(layers)
    remove = [s <= threshold for s in dead_scores(layers)]
    if keep_shape:
        # A layer may lose every unit here: the padding gives it its width back.
        removal = remove_units(layers, remove)
        return _pad_units(removal.layers, removal.kept, [lay.n_out for lay in layers[:-1]])
    _check_keeps_units(remove, f"threshold={threshold}")
    return remove_units(layers, remove).layers


def combine_duplicate_neurons(
    layers: Sequence[WeightLayer], threshold: float = 0.0, epsilon: float = 1e-8, keep_shape: bool = False
) -> list[WeightLayer]:
    """Merge pairs of hidden units whose (w_in, b) lie within `threshold` (Euclidean),
    closest pair first, until no pair is left; layers from the input on.

    The merged unit takes the mean (w_in, b) of the pair and the sum of their outgoing
    weights, so merging exact duplicates is exact. Units with ||(w_in, b)|| <= `epsilon`
    are dead, not duplicates, and never merged. With `keep_shape` (the seed's placement)
    each hidden layer lists its merged units first, then the untouched ones, then zero
    units where merged partners were.
    """
    layers = list(layers)
    widths = [lay.n_out for lay in layers[:-1]]
    for g in range(len(layers) - 1):
        lay, nxt = layers[g], layers[g + 1]
        vec = np.hstack([lay.weight, _bias(lay)[:, None]])
        out_w = nxt.weight.copy()
        in_mask = None if lay.mask is None else lay.mask.copy()
        out_mask = None if nxt.mask is None else nxt.mask.copy()
        alive = np.linalg.norm(vec, axis=1) > epsilon
        merged = np.zeros(lay.n_out, bool)
        gone = np.zeros(lay.n_out, bool)
        while alive.sum() >= 2:
            idx = np.flatnonzero(alive)
            d = np.linalg.norm(vec[idx, None, :] - vec[None, idx, :], axis=2)
            d[np.diag_indices_from(d)] = np.inf
            k = int(np.argmin(d))  # the closest pair; argmin takes the first of equal ones
            a, b = idx[k // len(idx)], idx[k % len(idx)]
            if d.flat[k] > threshold:
                break
            i, j = min(a, b), max(a, b)
            vec[i] = (vec[i] + vec[j]) / 2
            out_w[:, i] += out_w[:, j]
            out_w[:, j] = 0.0
            if in_mask is not None:
                in_mask[i] |= in_mask[j]
            if out_mask is not None:
                out_mask[:, i] |= out_mask[:, j]
            alive[j], gone[j], merged[i] = False, True, True
        has_bias = lay.bias is not None or gone.any()
        layers[g] = replace(lay, weight=vec[:, :-1], bias=vec[:, -1] if has_bias else None, mask=in_mask)
        layers[g + 1] = replace(nxt, weight=out_w, mask=out_mask)
        if keep_shape:
            order = np.concatenate([np.flatnonzero(merged), np.flatnonzero(~merged & ~gone), np.flatnonzero(gone)])
            _permute_unit(layers, g, order)
            gone = gone[order]
        # Partners' outgoing weights are now zero: removing them (constant 0) is exact.
        layers = fold_and_remove(
            layers,
            [gone if h == g else np.zeros(layers[h].n_out, bool) for h in range(len(layers) - 1)],
            [np.zeros(layers[h].n_out) for h in range(len(layers) - 1)],
        ).layers
    if keep_shape:
        return _pad_units(layers, [], widths)
    return layers


def delete_constant_neurons(layers: Sequence[WeightLayer], x: np.ndarray, threshold: float = 0.0) -> list[WeightLayer]:
    """Delete hidden units whose activation variance on inputs `x` (n, ...) is <=
    `threshold`, each folded into the next bias as its mean activation on `x`.

    Exact on `x` (and wherever the unit stays constant) for threshold 0; units are
    judged on the activations of the network as given, all layers at once.
    """
    layers = list(layers)
    _, hidden = forward(layers, x)
    remove = [h.var(axis=0) <= threshold for h in hidden]
    _check_keeps_units(remove, f"threshold={threshold}")
    return fold_and_remove(layers, remove, [h.mean(axis=0) for h in hidden]).layers
