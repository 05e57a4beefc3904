"""Iterative magnitude pruning (IMP): train, prune to the next trajectory target, rewind.

The loop is independent of how a level is trained: `iterative_magnitude_pruning` calls
``train_level(model, masks, level, callbacks)`` (the experiment passes the training loop
with early stopping and a callback that keeps masked parameters at zero) and then
``on_level(level, model, masks)`` to record what the level left; then
``checkpoint(level, model, masks, rewind_point)`` may save what the next levels need,
and ``resume=`` such a saved state continues with the level after it.

Rewinding (`REWINDS`) resets the survivors after each pruning step: to their initial
values (``init``, the lottery ticket of Frankle & Carbin), to their values after step k
of the first level (``late``, Frankle et al. 2020), or not at all (``none``: fine-tuning
from the trained values). Pruned parameters stay zero in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nnclust.nets.validate import layer_modules
from nnclust.pruning.magnitude import SCOPES, apply_masks, magnitude_masks
from nnclust.pruning.registry import REWINDS


def prunable_parameters(model, prune_biases: bool = True) -> dict[str, torch.nn.Parameter]:
    """The fc/conv weights (and biases when `prune_biases`) of every layer, by state-dict name,
    in forward order, weight before bias."""
    out = {}
    for m in layer_modules(model):
        out[f"{m.linear_key}.weight"] = m.linear.weight
        if prune_biases and m.linear.bias is not None:
            out[f"{m.linear_key}.bias"] = m.linear.bias
    return out


def count_kept(masks: dict[str, torch.Tensor]) -> int:
    return int(sum(int(m.sum()) for m in masks.values()))


def prune_to(params: dict, target: int, scope: str, masks: dict) -> dict[str, torch.Tensor]:
    """Masks keeping the `target` largest-|value| parameters among those `masks` keep.

    ``global`` ranks all parameters together and keeps exactly `target`; ``layer``
    prunes every tensor to the same sparsity 1 - target / total, so the count is exact
    up to one per tensor (rounding).
    """
    total = sum(p.numel() for p in params.values())
    kept = count_kept(masks)
    if not 0 < target <= kept:
        raise ValueError(f"pruning target {target} must be in (0, {kept}] (the parameters kept now)")
    return magnitude_masks(params, 1.0 - target / total, scope, masks)


class StepSnapshot:
    """A training callback that copies the model's state after `step` optimizer steps."""

    def __init__(self, step: int):
        self.step = step
        self.state: dict | None = None

    def on_train_start(self, state) -> None:
        if self.step == 0:
            self.state = _copy(state.model)

    def on_step_end(self, state) -> None:
        if self.state is None and state.step >= self.step:
            self.state = _copy(state.model)


def _copy(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def iterative_magnitude_pruning(
    model,
    targets: Sequence[int],
    train_level: Callable,
    *,
    prune_biases: bool = True,
    scope: str = "global",
    rewind: str = "init",
    rewind_step: int = 0,
    on_level: Callable | None = None,
    checkpoint: Callable | None = None,
    resume: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Run IMP along `targets` (prunable-parameter counts, the first the model's own).

    Level 0 trains the dense model; level i >= 1 prunes to ``targets[i]`` by magnitude
    (`scope` from `SCOPES`), rewinds (`REWINDS`), applies the masks and trains again.
    ``on_level(level, model, masks)`` runs after each level's training, then
    ``checkpoint(level, model, masks, rewind_point)``: with the trained model and the
    masks, the state dict later levels rewind to (None for ``rewind="none"``) is all
    that the remaining levels read. ``resume={"level", "state_dict", "masks",
    "rewind_point"}`` (those values) continues with level ``level + 1``; given the same
    `train_level` randomness, the levels after it equal an uninterrupted run's.
    Returns the final masks (True = kept), keyed by parameter name.
    """
    needs_snapshot = REWINDS[rewind]
    SCOPES[scope]
    params = prunable_parameters(model, prune_biases)
    total = sum(p.numel() for p in params.values())
    if targets[0] != total:
        raise ValueError(f"the trajectory starts at {targets[0]} but the model has {total} prunable parameters")
    if rewind_step < 0:
        raise ValueError(f"rewind_step must be >= 0, got {rewind_step}")
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
    initial = _copy(model)
    snapshot = StepSnapshot(rewind_step) if needs_snapshot else None
    start = 0
    if resume is not None:
        start = _restore(model, resume, masks, len(targets))
        masks = {n: resume["masks"][n].to(m.device) for n, m in masks.items()}
        if snapshot is not None:
            snapshot.state = resume["rewind_point"]
        elif rewind != "none":
            initial = resume["rewind_point"]
    for level, target in enumerate(targets):
        if level < start:
            continue
        if level:
            masks = prune_to(params, int(target), scope, masks)
            if rewind != "none":
                point = snapshot.state if needs_snapshot else initial
                model.load_state_dict(point)
            apply_masks(model, masks)
        extra = [snapshot] if (snapshot is not None and level == 0) else []
        train_level(model, masks, level, extra)
        if snapshot is not None and level == 0 and snapshot.state is None:
            raise ValueError(
                f"late rewinding to step {rewind_step}, but the first level trained fewer steps; lower imp.rewind_step"
            )
        if on_level is not None:
            on_level(level, model, masks)
        if checkpoint is not None:
            point = None if rewind == "none" else snapshot.state if needs_snapshot else initial
            checkpoint(level, model, masks, point)
    return masks


def _restore(model, resume: dict, masks: dict, num_levels: int) -> int:
    """Load a `checkpoint`'s state into `model`; the first level still to run."""
    level = resume["level"]
    if not 0 <= level < num_levels:
        raise ValueError(f"resume: saved level {level} is not one of the levels 0..{num_levels - 1}")
    if set(resume["masks"]) != set(masks):
        raise ValueError(f"resume: saved masks for {sorted(resume['masks'])}, the model prunes {sorted(masks)}")
    model.load_state_dict(resume["state_dict"])
    return level + 1
