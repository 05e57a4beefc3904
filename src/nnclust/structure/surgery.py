"""Removing hidden units from an MLP's weight layers, their constant output folded into
the next layer's bias: the one implementation of dead-unit removal in the project.

The normalizers (`delete_dead_neurons` with removal) and sparse compaction both call it.

A hidden unit u of layer g with constant activation c_u adds W_{g+1}[:, u] * c_u to the
next layer's pre-activations for every input, so deleting u and adding that vector to
the next bias leaves the network's function unchanged. `remove_units` does this for
given units (with c_u = ReLU(b_u), exact when u has no nonzero incoming weight);
`compact_layers` finds every unit that can go without changing any output, using
`nnclust.structure.connectivity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.connectivity import backward_reach, constant_activations, forward_reach


class SurgeryError(ValueError):
    """The layers cannot be operated on (not an MLP, batch norm not folded, bad indices)."""


@dataclass(frozen=True)
class Removal:
    """What a removal did: the new layers and, per hidden layer, the original indices
    of the units that were kept."""

    layers: list[WeightLayer]
    kept: list[np.ndarray]
    units_removed: int = 0

    @property
    def units_before(self) -> int:
        return int(sum(k.size for k in self.kept)) + self.units_removed

    @property
    def units_after(self) -> int:
        return int(sum(k.size for k in self.kept))


def _check_mlp(layers: Sequence[WeightLayer]) -> None:
    for lay in layers:
        if lay.kind != "fc":
            raise SurgeryError(f"'{lay.name}' is a {lay.kind} layer; removing units works on MLPs (fc layers) only")
        if lay.bn_scale is not None:
            raise SurgeryError(
                f"'{lay.name}' is followed by batch norm; fold it first with "
                "nnclust.structure.transforms.fold_batch_norm_into_layers"
            )
    for prev, cur in zip(layers, layers[1:]):
        if cur.n_in != prev.n_out:
            raise SurgeryError(f"'{cur.name}' reads {cur.n_in} inputs but '{prev.name}' has {prev.n_out} outputs")


def fold_and_remove(
    layers: Sequence[WeightLayer], remove: Sequence[np.ndarray], constants: Sequence[np.ndarray]
) -> Removal:
    """Delete hidden units and fold their constant activations into the next biases.

    Parameters
    ----------
    layers : fc weight layers in forward order, batch norm folded.
    remove : one bool array per hidden layer (len(layers) - 1), True = delete.
    constants : one float array per hidden layer: the activation each deleted unit is
        taken to have for every input (entries of kept units are ignored).
    """
    layers = list(layers)
    _check_mlp(layers)
    if len(remove) != len(layers) - 1 or len(constants) != len(layers) - 1:
        raise SurgeryError(f"need one mask and one constant array per hidden layer ({len(layers) - 1})")
    masks = [np.asarray(r, bool) for r in remove]
    for g, (m, lay) in enumerate(zip(masks, layers)):
        if m.shape != (lay.n_out,):
            raise SurgeryError(f"remove[{g}] has shape {m.shape}; layer '{lay.name}' has {lay.n_out} units")
    out, kept = [], []
    for i, lay in enumerate(layers):
        keep_out = ~masks[i] if i < len(masks) else np.ones(lay.n_out, bool)
        keep_in = ~masks[i - 1] if i > 0 else np.ones(lay.n_in, bool)
        bias = np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias, np.float64).copy()
        if i > 0 and masks[i - 1].any():
            gone = masks[i - 1]
            c = np.nan_to_num(np.asarray(constants[i - 1], np.float64)[gone])
            bias = bias + lay.weight[:, gone] @ c
        weight = lay.weight[keep_out][:, keep_in]
        mask = None if lay.mask is None else lay.mask[keep_out][:, keep_in]
        has_bias = lay.bias is not None or (i > 0 and masks[i - 1].any())
        out.append(replace(lay, weight=weight, bias=bias[keep_out] if has_bias else None, mask=mask))
        if i < len(masks):
            kept.append(np.flatnonzero(keep_out))
    return Removal(layers=out, kept=kept, units_removed=int(sum(m.sum() for m in masks)))


def remove_units(layers: Sequence[WeightLayer], remove: Sequence[np.ndarray]) -> Removal:
    """Delete the given hidden units, each folded in as the constant ReLU(bias).

    Exact for units without nonzero incoming weights, or without nonzero outgoing ones;
    for other units it is the approximation that unit deletion makes.
    """
    constants = [np.maximum(np.zeros(lay.n_out) if lay.bias is None else lay.bias, 0.0) for lay in layers[:-1]]
    return fold_and_remove(layers, remove, constants)


def compact_layers(layers: Sequence[WeightLayer]) -> Removal:
    """Remove every hidden unit that can go without changing any output.

    A unit that no input reaches has a constant activation (`constant_activations`),
    folded into the next biases; a unit that reaches no output cannot change one. What
    stays are the units both reached from an input and reaching an output. Deleting one
    unit can leave another without inputs or outputs; reachability sees such chains at
    once, so the result is final (compacting again removes nothing).
    """
    layers = list(layers)
    _check_mlp(layers)
    weights = [lay.weight for lay in layers]
    fed = forward_reach(weights)
    feeds = backward_reach(weights)
    constants = constant_activations(weights, [lay.bias for lay in layers], fed)
    remove = [~(fed[g] & feeds[g]) for g in range(1, len(layers))]
    return fold_and_remove(layers, remove, constants)
