"""How much of a network's permutation symmetry a sparsity mask leaves (pure functions).

The hidden units of a dense layer are interchangeable: permuting them (with their
incoming and outgoing weights) gives the same function, so an L-hidden-layer, N-wide
dense net has N!^L equivalent orderings. Under a mask, two units can only swap if they
have the same incoming *and* outgoing pattern; a layer whose units fall into groups of
identical patterns of sizes c_1, c_2, ... keeps prod_k c_k! symmetries.

Only hidden units count: inputs and outputs carry meaning and are not interchangeable.
A unit with no incoming or no outgoing connection is *zeroed* and left out of the
groups. Masks are given as a list of bool arrays in forward order, shaped like the
weights: (out, in) for fc, (out, in, kh, kw) for conv; an fc after a conv takes the
conv's channels flattened channel-major, (C, H, W) -> C*H*W, as ``Tensor.flatten`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from nnclust.structure.connectivity import backward_reach, forward_reach

LOG10_E = 1.0 / math.log(10.0)


def _as_list(masks) -> list[np.ndarray]:
    if isinstance(masks, Mapping):
        masks = list(masks.values())
    out = []
    for m in masks:
        m = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
        if m.ndim not in (2, 4):
            raise ValueError(f"masks must be 2-D (fc) or 4-D (conv) arrays, got shape {m.shape}")
        out.append(m.astype(bool))
    return out


def _outgoing(mask_next: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, k) outgoing pattern of each unit of the group that `mask_next` reads."""
    if mask_next.ndim == 4:  # conv: unit c feeds (out, kh, kw) entries
        if mask_next.shape[1] != n_units:
            raise ValueError(f"a conv mask with {mask_next.shape[1]} input channels follows a layer of {n_units} units")
        return mask_next.transpose(1, 0, 2, 3).reshape(n_units, -1)
    n_in = mask_next.shape[1]
    if n_in % n_units:
        raise ValueError(f"an fc mask with {n_in} inputs follows a layer of {n_units} units")
    per_unit = n_in // n_units  # spatial positions of a channel, 1 after an fc
    return mask_next.reshape(mask_next.shape[0], n_units, per_unit).transpose(1, 0, 2).reshape(n_units, -1)


def log10_factorial(n) -> np.ndarray:
    """log10(n!) through log-gamma, exact enough and finite for any width."""
    return np.array([math.lgamma(int(k) + 1) * LOG10_E for k in np.ravel(n)]).reshape(np.shape(n))


def unit_symmetry(incoming: np.ndarray, outgoing: np.ndarray) -> dict:
    """Symmetry statistics of one group of units.

    Parameters
    ----------
    incoming : bool (n_units, a), each unit's incoming pattern.
    outgoing : bool (n_units, b), each unit's outgoing pattern.

    Returns
    -------
    ``total_units``, ``zeroed_units`` (no incoming or no outgoing connection),
    ``unique_units`` (distinct patterns among the others), ``group_sizes`` (sizes of
    the groups of identical patterns, descending) and ``symmetries_log10``
    (log10 of prod (group size)!).
    """
    n = incoming.shape[0]
    alive = incoming.any(1) & outgoing.any(1)
    patterns = np.concatenate([incoming[alive], outgoing[alive]], axis=1)
    if patterns.shape[0]:
        # Packed bytes make the row comparison in np.unique 8x cheaper for wide layers.
        _, counts = np.unique(np.packbits(patterns, axis=1), axis=0, return_counts=True)
    else:
        counts = np.zeros(0, int)
    return {
        "total_units": int(n),
        "zeroed_units": int(n - alive.sum()),
        "unique_units": int(len(counts)),
        "group_sizes": sorted((int(c) for c in counts), reverse=True),
        "symmetries_log10": float(log10_factorial(counts).sum()),
    }


def layer_symmetries(masks) -> list[dict]:
    """`unit_symmetry` of every hidden group: the outputs of each layer but the last."""
    masks = _as_list(masks)
    out = []
    for m, nxt in zip(masks, masks[1:]):
        n_units = m.shape[0]
        out.append(unit_symmetry(m.reshape(n_units, -1), _outgoing(nxt, n_units)))
    return out


def _unit_blocks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """(n_out, n_in) unit-to-unit patterns: a conv kernel or an fc's per-channel inputs
    count as one edge if any entry is kept."""
    blocks = []
    for i, m in enumerate(masks):
        if m.ndim == 4:
            blocks.append(m.any(axis=(2, 3)))
        elif i and masks[i - 1].ndim == 4:
            c = masks[i - 1].shape[0]
            blocks.append(m.reshape(m.shape[0], c, -1).any(-1))
        else:
            blocks.append(m)
    return blocks


def effective_masks(masks) -> list[np.ndarray]:
    """The masks with every connection that lies on no input-to-output path removed.

    A unit ablated by an earlier layer (no path from any input) ablates what it feeds,
    and a unit that reaches no output makes its incoming connections useless. A
    connection u -> v is on such a path exactly when u is reached from the inputs and v
    reaches the outputs (`structure.connectivity`'s forward and backward reach).
    """
    masks = _as_list(masks)
    blocks = [b.astype(np.float64) for b in _unit_blocks(masks)]
    fed, feeds = forward_reach(blocks), backward_reach(blocks)
    out = []
    for g, m in enumerate(masks):
        src, dst = fed[g], feeds[g + 1]
        if m.ndim == 4:
            keep = dst[:, None, None, None] & src[None, :, None, None]
        else:
            per = m.shape[1] // src.size
            keep = dst[:, None] & np.repeat(src, per)[None, :]
        out.append(m & keep)
    return out


def mask_sparsity(masks) -> float:
    """Fraction of masked-out entries over all masks."""
    masks = _as_list(masks)
    total = sum(m.size for m in masks)
    return float(sum(m.size - m.sum() for m in masks) / total) if total else 0.0


def symmetry_stats(masks, effective: bool = True) -> dict:
    """Whole-network symmetry statistics of `masks` (a list, or a dict in layer order).

    Returns plain JSON types: sums over hidden layers of ``total_units``,
    ``zeroed_units``, ``unique_units``; ``permutation_log10`` (log10 of the product of
    every layer's symmetries) and ``permutation_num_digits`` (its decimal digits);
    ``sparsity``; ``layers`` (per-layer counts and ``symmetries_log10``); and, when
    `effective`, the same for `effective_masks` under ``effective``.
    """
    masks = _as_list(masks)
    layers = layer_symmetries(masks)
    log10 = float(sum(lay["symmetries_log10"] for lay in layers))
    stats = {key: int(sum(lay[key] for lay in layers)) for key in ("total_units", "zeroed_units", "unique_units")}
    stats.update(
        {
            "permutation_log10": log10,
            # The product is a power of two or has a factor 3, so it is a power of ten
            # only when it is 1: floor(log10) + 1 is its digit count.
            "permutation_num_digits": int(math.floor(log10 + 1e-12)) + 1,
            "sparsity": mask_sparsity(masks),
            "layers": [{k: v for k, v in lay.items() if k != "group_sizes"} for lay in layers],
        }
    )
    if effective:
        stats["effective"] = symmetry_stats(effective_masks(masks), effective=False)
    return stats


def dense_masks(shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """All-True masks of the given weight shapes (a dense network)."""
    return [np.ones(tuple(s), bool) for s in shapes]
