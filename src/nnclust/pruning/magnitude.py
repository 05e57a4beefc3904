"""Magnitude pruning: masks that keep the largest |w|, globally or per layer."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nnclust.core.registry import Registry


def _prune_smallest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool keep-mask zeroing the round(sparsity * n) smallest scores (ties by position)."""
    n_prune = int(round(sparsity * scores.numel()))
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    if n_prune:
        order = torch.argsort(scores.flatten(), stable=True)
        keep[order[:n_prune]] = False
    return keep


def magnitude_masks(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    previous: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) with a fraction `sparsity` of weights removed.

    ``scope="layer"`` prunes each tensor to `sparsity`; ``"global"`` ranks all
    weights together. Weights removed by `previous` masks stay removed, so pruning
    is monotone as the schedule raises the sparsity.
    """
    by_scope = SCOPES[scope]
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    previous = previous or {}
    scores = {}
    for name, w in weights.items():
        s = w.detach().abs().flatten().double().cpu()
        if name in previous:
            s = torch.where(previous[name].flatten().cpu(), s, torch.full_like(s, -1.0))
        scores[name] = s
    return {n: keep.reshape(weights[n].shape) for n, keep in by_scope(scores, sparsity).items()}


def _layer_scope(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Each tensor pruned to `sparsity` on its own."""
    return {n: _prune_smallest(s, sparsity) for n, s in scores.items()}


def _global_scope(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """All scores ranked together: layers end up with different sparsities."""
    keep = _prune_smallest(torch.cat(list(scores.values())), sparsity)
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i : i + s.numel()]
        i += s.numel()
    return out


# Scope name -> f(flat scores by tensor name, sparsity) -> flat keep-masks by tensor name.
SCOPES = Registry("pruning scope", {"global": _global_scope, "layer": _layer_scope})


def sparsity_of(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of masked-out entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return float(sum((~m).sum().item() for m in masks.values()) / total) if total else 0.0
