"""Cluster lesions: which weights a lesion of a unit set removes, random unit sets of
the same make-up, and the p-value of a lesion's accuracy drop against them.

Pure functions over numpy arrays. Nodes are those of a `nnclust.structure.graph.Graph`
(all nodes, removed ones included, in graph order); `group` (n_nodes,) gives each
node's group, and a layer joins its `in_group` to its `out_group`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer

# How a unit set is lesioned; the entries describe each mode.
LESION_MODES = Registry(
    "lesion mode",
    {
        "weights": "zero every weight whose two ends are both in the set (nn-clustering-pytorch's lesion test)",
        "silence": "zero every weight leaving a unit of the set: its activation no longer reaches the next layer",
    },
)


def layer_groups(layers: Sequence[WeightLayer], group_names: Sequence[str]) -> list[tuple[int, int] | None]:
    """For each layer, the (in group, out group) of the graph it joins, or None for a
    layer outside the graph (e.g. the fc layers under ``cnn_nodes="conv"``)."""
    index = {name: g for g, name in enumerate(group_names)}
    out = []
    for i, lay in enumerate(layers):
        src = "input" if i == 0 else layers[i - 1].name
        out.append((index[src], index[lay.name]) if src in index and lay.name in index else None)
    return out


def _expand(unit_mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A (n_out, n_in) unit-level mask -> a mask shaped like `weight`: kernels of a conv
    layer share their channel pair's entry, and an fc layer after a flatten repeats a
    channel's entry over that channel's spatial positions."""
    if weight.ndim == 4:
        return unit_mask[:, :, None, None]
    per = weight.shape[1] // unit_mask.shape[1]
    return np.repeat(unit_mask, per, axis=1) if per > 1 else unit_mask


def lesion_keep_masks(
    layers: Sequence[WeightLayer],
    groups: Sequence[tuple[int, int] | None],
    group: np.ndarray,
    members: np.ndarray,
    mode: str = "weights",
) -> list[np.ndarray | None]:
    """Keep-masks (1.0 kept, 0.0 lesioned), one per layer shaped like its weight, or
    None for a layer the lesion leaves alone.

    `members` is a bool array over all graph nodes (n_nodes,): the lesioned set.
    """
    LESION_MODES[mode]
    members = np.asarray(members, bool)
    if members.shape != group.shape:
        raise ValueError(f"members must be a bool array of shape {group.shape}, got {members.shape}")
    masks = []
    for lay, gs in zip(layers, groups):
        if gs is None:
            masks.append(None)
            continue
        src = members[group == gs[0]]
        dst = members[group == gs[1]]
        if mode == "weights":
            hit = dst[:, None] & src[None, :]
        else:
            hit = np.broadcast_to(src[None, :], (dst.size, src.size))
        masks.append(_expand((~hit).astype(np.float64), lay.weight) if hit.any() else None)
    return masks


def random_unit_set(group: np.ndarray, keep: np.ndarray, like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bool set over all nodes with as many nodes in each group as `like` has, drawn
    without replacement from the kept nodes of that group (`keep`, bool (n_nodes,))."""
    out = np.zeros(group.shape, bool)
    for g in np.unique(group[like]):
        pool = np.flatnonzero((group == g) & keep)
        out[rng.choice(pool, size=int((like & (group == g)).sum()), replace=False)] = True
    return out


def null_statistics(drop: float, null_drops: np.ndarray) -> dict:
    """Mean and sd of the null drops and the one-sided p-value of `drop` among them,
    (1 + #{null >= drop}) / (1 + n): the chance that a random set of the same make-up
    hurts as much; never 0, as befits a finite sample."""
    null_drops = np.asarray(null_drops, dtype=np.float64)
    return {
        "null_mean": float(null_drops.mean()),
        "null_sd": float(null_drops.std(ddof=1)) if null_drops.size > 1 else 0.0,
        "p_value": float((1 + np.sum(null_drops >= drop)) / (1 + null_drops.size)),
    }
