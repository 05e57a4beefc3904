"""Partial-model training: choose a subset of parameter entries and train only those.

A selection is a dict of bool tensors shaped like the parameters it covers (True =
trained). Rules (the `SELECTIONS` registry) turn per-entry scores into a selection:
``top_k`` / ``bottom_k`` (the k highest / lowest scores over all covered tensors),
``gaussian`` (k entries drawn without replacement, entry of score rank r with weight
exp(-(r / (width * n))^2 / 2), rank 0 the highest: a draw around the top), ``random``
(k entries uniformly). ``output_classes`` selects whole rows of the last layer (and
their biases), to train the weights of given classes, e.g. classes being added.
Scores are ``magnitude`` |w|, ``gradient`` |dL/dw| on a batch, or any tensors the
caller computes (MAAV from `nnclust.pruning.criteria` where available).

`ParameterSelector` is a training callback that keeps every unselected entry exactly
as it was: its gradient is masked before the optimiser sees it, so no moment
accumulates for it, and after each step it is written back from a snapshot, which also
undoes what weight decay or a momentum carried over from before would have done.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from nnclust.core import seeding
from nnclust.core.registry import Registry


class SelectionError(ValueError):
    """A selection that cannot be made (more entries than exist, unknown names)."""


def _flat(scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([s.detach().flatten().double().cpu() for s in scores.values()])


def _unflat(keep: torch.Tensor, scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = keep[i : i + s.numel()].reshape(s.shape)
        i += s.numel()
    return out


def _count(k, n: int) -> int:
    """`k` as a count: an int, or a float in (0, 1] meaning that fraction of `n`."""
    if isinstance(k, float) and 0 < k <= 1:
        k = int(round(k * n))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise SelectionError(f"k must be a count >= 0 or a fraction in (0, 1], got {k!r}")
    if k > n:
        raise SelectionError(f"cannot select {k} parameters: only {n} are covered")
    return int(k)


def _by_rank(flat: torch.Tensor, k: int, highest: bool) -> torch.Tensor:
    # stable sort: ties go to the earlier entry, so a selection is reproducible
    order = torch.argsort(-flat if highest else flat, stable=True)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    return keep


def top_k(scores, k, seed=0, width=0.1):
    flat = _flat(scores)
    return _unflat(_by_rank(flat, _count(k, flat.numel()), True), scores)


def bottom_k(scores, k, seed=0, width=0.1):
    flat = _flat(scores)
    return _unflat(_by_rank(flat, _count(k, flat.numel()), False), scores)


def gaussian(scores, k, seed=0, width=0.1):
    flat = _flat(scores)
    n = flat.numel()
    k = _count(k, n)
    if not width > 0:
        raise SelectionError(f"width must be > 0, got {width!r}")
    rank = torch.empty(n, dtype=torch.float64)
    rank[torch.argsort(-flat, stable=True)] = torch.arange(n, dtype=torch.float64)
    weight = torch.exp(-0.5 * (rank / (width * n)) ** 2).numpy()
    nonzero = int((weight > 0).sum())
    if k > nonzero:
        raise SelectionError(f"width={width} leaves {nonzero} drawable entries, fewer than k={k}")
    picked = seeding.rng(seed, "selection.gaussian").choice(n, size=k, replace=False, p=weight / weight.sum())
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.from_numpy(picked)] = True
    return _unflat(keep, scores)


def random(scores, k, seed=0, width=0.1):
    flat = _flat(scores)
    n = flat.numel()
    picked = seeding.rng(seed, "selection.random").choice(n, size=_count(k, n), replace=False)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.from_numpy(picked)] = True
    return _unflat(keep, scores)


SELECTIONS = Registry("selection rule", {"top_k": top_k, "bottom_k": bottom_k, "gaussian": gaussian, "random": random})


def select(scores: Mapping[str, torch.Tensor], rule: str, k, seed: int = 0, width: float = 0.1):
    """Bool masks (True = train) shaped like `scores`, by `rule` (a `SELECTIONS` key)."""
    if not scores:
        raise SelectionError("no parameters to select from")
    return SELECTIONS[rule](dict(scores), k, seed, width)


def output_classes(model: torch.nn.Module, classes, weight: str, bias: str | None = None) -> dict:
    """Masks selecting the rows of the output layer `weight` (and `bias`) of `classes`."""
    params = dict(model.named_parameters())
    if weight not in params:
        raise SelectionError(f"no parameter {weight!r}; the model has {sorted(params)}")
    w = params[weight]
    classes = sorted(set(int(c) for c in classes))
    if not classes or classes[0] < 0 or classes[-1] >= w.shape[0]:
        raise SelectionError(f"classes must be in 0..{w.shape[0] - 1}, got {classes}")
    rows = torch.zeros(w.shape[0], dtype=torch.bool)
    rows[classes] = True
    masks = {weight: rows[:, None].expand_as(w).clone()}
    if bias is not None:
        masks[bias] = rows.clone()
    return masks


def magnitude_scores(model: torch.nn.Module, names) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().abs() for n in names}


def criterion_scores(model: torch.nn.Module, criterion: str, x: torch.Tensor | None = None) -> dict:
    """Per-entry scores of every fc/conv weight by a pruning criterion of
    `nnclust.pruning.criteria.CRITERIA` (``magnitude``, ``mav``, ``maav``, ...); those that
    read activations need the data batch `x`."""
    from nnclust.nets.validate import layer_modules
    from nnclust.pruning.criteria import CRITERIA, activation_stats

    crit = CRITERIA[criterion]
    if crit.needs_data and x is None:
        raise SelectionError(f"criterion {criterion!r} scores weights by their activations: pass a data batch x")
    stats = activation_stats(model, x) if crit.needs_data else {}
    weights = {f"{m.linear_key}.weight": m.linear.weight for m in layer_modules(model)}
    return {name: crit.score(w.detach().double().cpu(), stats.get(name)) for name, w in weights.items()}


def gradient_scores(model: torch.nn.Module, names, x, y, loss_fn) -> dict[str, torch.Tensor]:
    """|dL/dw| of one batch (x, y) under `loss_fn(out, y)`."""
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    out = {n: params[n].grad.detach().abs().clone() for n in names}
    model.zero_grad(set_to_none=True)
    return out


class ParameterSelector:
    """Training callback: only the selected entries of `masks` (name -> bool tensor)
    change; parameters not named in `masks` are frozen whole."""

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        self.masks = {k: v.bool() for k, v in masks.items()}
        self._hooks = []
        self._snapshot: dict[str, torch.Tensor] = {}

    def on_train_start(self, state) -> None:
        params = dict(state.model.named_parameters())
        unknown = sorted(set(self.masks) - set(params))
        if unknown:
            raise SelectionError(f"selection names unknown parameters {unknown}; the model has {sorted(params)}")
        for name, p in params.items():
            mask = self.masks.get(name)
            if mask is None:
                mask = torch.zeros_like(p, dtype=torch.bool)
                self.masks[name] = mask
            if mask.shape != p.shape:
                raise SelectionError(f"mask for {name!r} has shape {tuple(mask.shape)}, the parameter {tuple(p.shape)}")
            mask = mask.to(p.device)
            self.masks[name] = mask
            self._snapshot[name] = p.detach().clone()
            self._hooks.append(p.register_hook(lambda g, m=mask: g * m))
        total = sum(m.numel() for m in self.masks.values())
        self.fraction = sum(int(m.sum()) for m in self.masks.values()) / max(total, 1)

    @torch.no_grad()
    def on_step_end(self, state) -> None:
        for name, p in state.model.named_parameters():
            p.copy_(torch.where(self.masks[name], p, self._snapshot[name]))

    def on_epoch_end(self, state) -> None:
        state.metrics["selected_fraction"] = self.fraction

    def remove(self) -> None:
        """Detach the gradient hooks (after training)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
