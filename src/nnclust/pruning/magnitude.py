"""Masks from scores: keep the highest-scoring weights, globally or per layer. Magnitude
pruning is the case score = |w|; `nnclust.pruning.criteria` supplies the other scores."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch

from nnclust.pruning.registry import SCOPES

_INF = float("inf")


def _prune_smallest(scores: torch.Tensor, sparsity: float, tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """Bool keep-mask zeroing the round(sparsity * n) smallest scores.

    Ties go by `tiebreak` (smallest first) when given, then by position. A score of +inf
    marks a weight that may not be pruned: when fewer weights are eligible than the
    sparsity asks for, all eligible ones go and the rest stay.
    """
    n_prune = int(round(sparsity * scores.numel()))
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    if n_prune:
        flat = scores.flatten()
        if tiebreak is None:
            order = torch.argsort(flat, stable=True)
        else:
            order = torch.argsort(tiebreak.flatten(), stable=True)
            order = order[torch.argsort(flat[order], stable=True)]
        eligible = int((flat != _INF).sum())
        keep[order[: min(n_prune, eligible)]] = False
    return keep


def masks_from_scores(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    previous: Mapping[str, torch.Tensor] | None = None,
    tiebreak: Mapping[str, torch.Tensor] | None = None,
    dense: Collection[str] = (),
) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept), shaped like `scores`, removing the lowest-scoring
    fraction `sparsity` of the weights.

    ``scope="layer"`` prunes each tensor to `sparsity`; ``"global"`` ranks all scores
    together. Weights removed by `previous` masks stay removed (they rank first), so
    pruning is monotone as a schedule raises the sparsity. Tensors named in `dense` are
    not pruned (their masks keep what `previous` kept) and do not count towards the
    sparsity of the others.
    """
    by_scope = SCOPES[scope]
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    previous = previous or {}
    unknown = sorted(set(dense) - set(scores))
    if unknown:
        raise ValueError(f"dense tensors {unknown} are not among the scored ones {list(scores)}")
    flat, ties = {}, {}
    for name, s in scores.items():
        if name in dense:
            continue
        s = s.detach().flatten().double().cpu()
        if name in previous:
            s = torch.where(previous[name].flatten().cpu(), s, torch.full_like(s, -1.0))
        flat[name] = s
        if tiebreak is not None:
            ties[name] = tiebreak[name].detach().flatten().double().cpu()
    keep = by_scope(flat, sparsity, ties or None) if flat else {}
    out = {}
    for name, s in scores.items():
        if name in keep:
            out[name] = keep[name].reshape(s.shape)
        elif name in previous:
            out[name] = previous[name].cpu().bool().clone()
        else:
            out[name] = torch.ones(s.shape, dtype=torch.bool)
    return out


def magnitude_masks(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    previous: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) with the fraction `sparsity` of smallest |w| removed
    (`masks_from_scores` with score |w|)."""
    return masks_from_scores({n: w.detach().abs() for n, w in weights.items()}, sparsity, scope, previous)


def layer_scope(scores, sparsity, tiebreak=None) -> dict[str, torch.Tensor]:
    """Each tensor pruned to `sparsity` on its own."""
    return {n: _prune_smallest(s, sparsity, None if tiebreak is None else tiebreak[n]) for n, s in scores.items()}


def global_scope(scores, sparsity, tiebreak=None) -> dict[str, torch.Tensor]:
    """All scores ranked together: layers end up with different sparsities."""
    ties = None if tiebreak is None else torch.cat([tiebreak[n] for n in scores])
    keep = _prune_smallest(torch.cat(list(scores.values())), sparsity, ties)
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i : i + s.numel()]
        i += s.numel()
    return out


def sparsity_of(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of masked-out entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return float(sum((~m).sum().item() for m in masks.values()) / total) if total else 0.0


@torch.no_grad()
def apply_masks(model, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the masked-out entries (False or 0) of the parameters named in `masks`, in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))
