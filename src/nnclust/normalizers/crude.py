"""Crude normalizers: retraining with a penalty that pushes a network toward a simpler
form (plain retraining, L1 on weights, L1 on hidden activations, BIMT).

Each works on a live MLP module (float32 torch), trains it in place for a fixed number
of optimizer steps on ``data.x_train``/``data.y_train`` with the dataset's objective,
and returns the per-step loss curve (objective plus penalty). Minibatches are drawn
from the ``normalizer.order`` stream of `seed`, so a seed fixes every number on CPU.
The loop is step-based rather than the epoch-based `nnclust.training.train`, because
these normalizers are specified by a step budget and BIMT swaps units every k steps.

`optimizer` is a `nnclust.training.OPTIMIZERS` name: ``sgd`` is plain SGD (no momentum,
no weight decay) at the constant rate `lr`, ``adam`` is Adam at `lr`. `masks` (bool
tensors keyed by parameter name, True = trainable) are applied before the first step
and after every step, so masked-out entries stay exactly zero: retraining never makes
a pruned network denser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nnclust.core import seeding
from nnclust.nets.validate import layer_modules
from nnclust.training import OBJECTIVES, apply_masks, make_optimizer


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m.linear for m in layer_modules(model)]


def _train_steps(
    model: nn.Module,
    data,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    optimizer: str = "sgd",
    masks: Mapping[str, torch.Tensor] | None = None,
    penalty: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    every: Callable[[int, torch.optim.Optimizer], None] | None = None,
    progress: bool = False,
) -> list[float]:
    """`steps` steps of `optimizer` on the objective (+ ``penalty(model, xb)``), the
    `masks` re-applied after each; `every(step, opt)` runs after that. Returns the
    per-step total loss."""
    obj = OBJECTIVES[data.objective]
    # Momentum 0: the document's retraining is plain SGD (the registry's default
    # momentum is for training runs).
    opt = make_optimizer({"name": optimizer, "lr": lr, "momentum": 0.0}, model.parameters())
    gen = seeding.torch_generator(seed, "normalizer.order")
    n = len(data.x_train)
    order, pos, curve = torch.randperm(n, generator=gen), 0, []
    apply_masks(model, masks or {})
    model.train()
    for step in tqdm(range(steps), desc="normalize", disable=not progress):
        if pos >= n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        xb, yb = data.x_train[idx], data.y_train[idx]
        loss = obj.loss(model(xb), yb)
        if penalty is not None:
            loss = loss + penalty(model, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        apply_masks(model, masks or {})
        curve.append(float(loss.item()))
        if every is not None:
            every(step, opt)
    model.eval()
    return curve


def retrain(model, data, *, steps, lr, batch_size, seed, optimizer="sgd", masks=None, progress=False) -> list[float]:
    """Retrain on the objective alone."""
    return _train_steps(model, data, steps, lr, batch_size, seed, optimizer, masks, progress=progress)


def l1_retrain(
    model, data, *, steps, lr, batch_size, seed, strength, optimizer="sgd", masks=None, progress=False
) -> list[float]:
    """Retrain with ``strength * sum |w|`` over every weight matrix (not the biases)."""

    def penalty(m, xb):
        return strength * sum(lin.weight.abs().sum() for lin in _linears(m))

    return _train_steps(model, data, steps, lr, batch_size, seed, optimizer, masks, penalty, progress=progress)


def l1_activation_retrain(
    model, data, *, steps, lr, batch_size, seed, strength, optimizer="adam", masks=None, progress=False
) -> list[float]:
    """Retrain with ``strength * mean over the batch of sum |h|`` over every hidden
    ReLU output h (read by forward hooks, so any conforming MLP works)."""
    acts: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o: acts.append(o)) for m in model.modules() if isinstance(m, nn.ReLU)
    ]

    def penalty(m, xb):
        term = strength * sum(a.abs().sum() for a in acts) / len(xb)
        acts.clear()
        return term

    try:
        return _train_steps(model, data, steps, lr, batch_size, seed, optimizer, masks, penalty, progress=progress)
    finally:
        for h in hooks:
            h.remove()


def unit_positions(widths: list[int]) -> list[np.ndarray]:
    """x positions in [0, 1] of the units of each layer (inputs first): evenly spaced
    cell centres ``(k + 0.5) / n``; layer g sits at height g."""
    return [(np.arange(n) + 0.5) / n for n in widths]


def _distances(pos: list[np.ndarray]) -> list[np.ndarray]:
    """Euclidean distance between unit k of layer g and unit j of layer g+1 (heights 1
    apart): one (n_{g+1}, n_g) array per weight matrix."""
    return [np.sqrt((b[:, None] - a[None, :]) ** 2 + 1.0) for a, b in zip(pos, pos[1:])]


def wiring_cost(weights: list[np.ndarray], dist: list[np.ndarray]) -> float:
    """sum over weight matrices of sum |W| * distance: BIMT's locality penalty."""
    return float(sum((np.abs(w) * d).sum() for w, d in zip(weights, dist)))


def _permute_units(
    lin: nn.Linear,
    nxt: nn.Linear,
    order: torch.Tensor,
    optimizer: torch.optim.Optimizer | None,
    masks: dict[str, torch.Tensor] | None,
    names: dict[int, str],
) -> None:
    """Reorder the units of `lin` (its rows and bias, the columns of `nxt`) by `order`,
    and with them every per-entry optimizer state (Adam's moments, SGD's momentum) and
    mask of those parameters, so that each unit keeps its own training history."""
    for param, dim in ((lin.weight, 0), (lin.bias, 0), (nxt.weight, 1)):
        if param is None:
            continue
        param.copy_(param.index_select(dim, order))
        state = optimizer.state.get(param, {}) if optimizer is not None else {}
        for key, value in state.items():
            # Scalars such as Adam's step count are shared by all entries.
            if torch.is_tensor(value) and value.shape == param.shape:
                state[key] = value.index_select(dim, order)
        name = names.get(id(param))
        if masks is not None and name in masks:
            masks[name] = masks[name].index_select(dim, order)


def bimt_swaps(
    model: nn.Module,
    dist: list[np.ndarray],
    optimizer: torch.optim.Optimizer | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> list[np.ndarray]:
    """Swap hidden units of each layer (positions fixed) while a swap shortens the
    wiring; returns, per hidden layer, the order made: slot i now holds the unit that
    was in slot ``order[i]``. Function-preserving: a swap permutes rows of layer g and
    columns of layer g+1. The `optimizer`'s per-entry state and the `masks` (keyed by
    parameter name; replaced in the dict) move with their units.

    Unit u placed at slot p costs sum_k |W_g[u, k]| d_g[p, k] + sum_m |W_{g+1}[m, u]|
    d_{g+1}[m, p]; swapping u and v gains C[u,pu] + C[v,pv] - C[u,pv] - C[v,pu]. For
    each unit in turn the best positive swap is made (BIMT's greedy rule).
    """
    lins = _linears(model)
    names = {id(p): n for n, p in model.named_parameters()}
    orders = []
    with torch.no_grad():
        for g in range(len(lins) - 1):
            n = lins[g].weight.shape[0]
            made = np.arange(n)
            for u in range(n):
                w_in = lins[g].weight.abs().double().numpy()
                w_out = lins[g + 1].weight.abs().double().numpy()
                cost = w_in @ dist[g].T + (dist[g + 1].T @ w_out).T  # (unit, slot)
                gain = cost[u, u] + np.diag(cost) - cost[u, :] - cost[:, u]
                gain[u] = 0.0
                v = int(np.argmax(gain))
                if gain[v] <= 1e-12:
                    continue
                order = torch.arange(n)
                order[u], order[v] = v, u
                _permute_units(lins[g], lins[g + 1], order, optimizer, masks, names)
                made[[u, v]] = made[[v, u]]
            orders.append(made)
    return orders


def bimt(
    model, data, *, steps, lr, batch_size, seed, strength, swap_every, optimizer="adam", masks=None, progress=False
) -> list[float]:
    """Brain-inspired modular training (Liu, Gan & Tegmark 2023): units get fixed
    positions (`unit_positions`), the loss adds ``strength * sum |w| * distance``, and
    every `swap_every` steps hidden units are swapped where that shortens the wiring,
    their optimizer state and masks with them (`masks` is updated in place, so the
    caller reads where each unit's mask ended up)."""
    lins = _linears(model)
    widths = [lins[0].weight.shape[1]] + [lin.weight.shape[0] for lin in lins]
    dist = [torch.from_numpy(d).float() for d in _distances(unit_positions(widths))]

    def penalty(m, xb):
        return strength * sum((lin.weight.abs() * d).sum() for lin, d in zip(lins, dist))

    def swap(step, opt):
        if swap_every and (step + 1) % swap_every == 0:
            bimt_swaps(model, [d.double().numpy() for d in dist], opt, masks)

    return _train_steps(model, data, steps, lr, batch_size, seed, optimizer, masks, penalty, swap, progress)
