"""Pruning criteria: how each weight is scored before the lowest scores are pruned.

Every criterion gives each weight w_ij of a layer (output unit i, input j) a score; the
masks then remove the lowest-scoring fraction of the weights, per layer or globally
(`nnclust.pruning.magnitude.masks_from_scores`). Ties go to the smaller |w_ij|, then to
the position. Criteria marked ``needs_data`` read statistics of each layer's *input*
activations a_nj over a data batch of N samples (n = 1..N): the data itself for the first
layer, and for the others what the layer reads, i.e. the previous layer's output after
its batch norm, ReLU, pooling and (eval-mode) dropout (`activation_stats`).

==================  =====================================================================
name                score of w_ij (lowest pruned first)
==================  =====================================================================
``magnitude``       |w_ij|
``mav``             mean activated value, absolute: | w_ij * (1/N) sum_n a_nj |
``maav``            mean absolute activated value: (1/N) sum_n |w_ij a_nj|
                    = |w_ij| * (1/N) sum_n |a_nj|
``activation_rank`` how often input j fires: (1/N) #{n : a_nj != 0}, the same for all of
                    j's outgoing weights, so rarely firing units lose their outgoing
                    weights together (ties, within a unit too, by |w_ij|)
``negative_only``   |w_ij| for w_ij < 0; positive and zero weights are never pruned
``positive_only``   |w_ij| for w_ij > 0; negative and zero weights are never pruned
==================  =====================================================================

MAV and MAAV follow Sparana's lobotomizer (``get_MAV``, ``get_MAAV``: the per-sample
products w_ij a_nj accumulated over a batch, then the absolute value of their mean, or
the mean of their absolute values). After a ReLU every a_nj >= 0, so the two scores
differ only where a layer's inputs can be negative: in practice the first layer, for
signed data. On image data in [0, 1] (digits, MNIST) they are the same score.

For conv weights (out, in, kh, kw) the input statistics are taken per input channel over
all positions and apply to every kernel tap. The sign-restricted criteria cannot reach a
sparsity above the share of weights of their sign: they then prune all weights of that
sign and stop there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from nnclust.pruning.magnitude import masks_from_scores
from nnclust.pruning.registry import CRITERIA


@dataclass(frozen=True)
class InputStats:
    """Statistics of one layer's input over a data batch, one entry per input feature
    (fc) or channel (conv), float64: the mean of a, the mean of |a|, and the fraction
    of samples (and positions) with a != 0."""

    mean: torch.Tensor
    mean_abs: torch.Tensor
    fire_rate: torch.Tensor
    num_samples: int


def _per_input(w: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`values` (one per input feature or channel) broadcast against `w`."""
    if values.numel() != w.shape[1]:
        raise ValueError(f"input statistics have {values.numel()} entries; the weight reads {w.shape[1]} inputs")
    return values.reshape((1, -1) + (1,) * (w.dim() - 2))


def magnitude_score(w: torch.Tensor, stats=None) -> torch.Tensor:
    return w.abs()


def mav_score(w: torch.Tensor, stats: InputStats) -> torch.Tensor:
    return (w * _per_input(w, stats.mean)).abs()


def maav_score(w: torch.Tensor, stats: InputStats) -> torch.Tensor:
    return w.abs() * _per_input(w, stats.mean_abs)


def activation_rank_score(w: torch.Tensor, stats: InputStats) -> torch.Tensor:
    return _per_input(w, stats.fire_rate).expand_as(w).clone()


def _sign_only(w: torch.Tensor, sign: int) -> torch.Tensor:
    return torch.where(w * sign > 0, w.abs(), torch.full_like(w, float("inf")))


def negative_only_score(w: torch.Tensor, stats=None) -> torch.Tensor:
    return _sign_only(w, -1)


def positive_only_score(w: torch.Tensor, stats=None) -> torch.Tensor:
    return _sign_only(w, +1)


def criterion_masks(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    criterion: str = "magnitude",
    scope: str = "layer",
    previous: Mapping[str, torch.Tensor] | None = None,
    stats: Mapping[str, InputStats] | None = None,
    keep_last_dense: bool = False,
) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) pruning the fraction `sparsity` of lowest-scoring weights.

    Parameters
    ----------
    weights : weight tensors by state-dict name, in forward order.
    criterion : a `CRITERIA` name.
    scope : ``"layer"`` (each tensor to `sparsity`) or ``"global"`` (ranked together).
    previous : masks of an earlier step; what they removed stays removed.
    stats : `InputStats` by weight name, for criteria that need data (`activation_stats`).
    keep_last_dense : leave the last tensor unpruned (its mask keeps what `previous`
        kept); `sparsity` then applies to the others.
    """
    spec = CRITERIA[criterion]
    if spec.needs_data:
        if stats is None:
            raise ValueError(
                f"pruning criterion {criterion!r} scores weights by their input activations and needs data: "
                "pass stats=activation_stats(model, x) (training takes pruning.criterion_samples training examples)"
            )
        missing = [n for n in weights if n not in stats]
        if missing:
            raise ValueError(f"pruning criterion {criterion!r}: no activation statistics for {missing}")
    scores, ties = {}, {}
    for name, w in weights.items():
        w = w.detach().double().cpu()
        scores[name] = spec.score(w, stats[name] if spec.needs_data else None)
        ties[name] = w.abs()
    dense = [list(weights)[-1]] if keep_last_dense and weights else []
    return masks_from_scores(scores, sparsity, scope, previous, ties if spec.tiebreak_by_magnitude else None, dense)


@torch.no_grad()
def activation_stats(model, x: torch.Tensor, batch_size: int = 1024) -> dict[str, InputStats]:
    """`InputStats` of the input of every fc/conv layer of `model` over the samples `x`,
    keyed by weight name (``<linear key>.weight``, as `prunable_weights` names them).

    The model runs in eval mode (dropout off, batch norm on running statistics) on its
    own device, in batches of `batch_size`; its mode is restored afterwards. No random
    numbers are drawn.
    """
    from nnclust.nets.validate import layer_modules

    mods = layer_modules(model)
    sums: dict[str, list[torch.Tensor]] = {}
    counts: dict[str, int] = {}

    def hook_for(name: str, kind: str):
        def hook(module, inputs):
            a = inputs[0].detach().double()
            if kind == "fc":
                a = a.flatten(1)
                dims, per = (0,), a.shape[0]
            else:
                dims, per = (0, 2, 3), a.shape[0] * a.shape[2] * a.shape[3]
            parts = (a.sum(dims), a.abs().sum(dims), (a != 0).double().sum(dims))
            if name in sums:
                sums[name] = [s + p for s, p in zip(sums[name], parts)]
            else:
                sums[name] = list(parts)
            counts[name] = counts.get(name, 0) + per

        return hook

    handles = [m.linear.register_forward_pre_hook(hook_for(f"{m.linear_key}.weight", m.kind)) for m in mods]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size].to(device, dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not sums:
        raise ValueError("activation_stats needs at least one sample, got an empty batch")
    return {
        name: InputStats(*(t.cpu() / counts[name] for t in parts), num_samples=len(x)) for name, parts in sums.items()
    }
