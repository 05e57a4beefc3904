"""Sparana's model functions, for dense and sparse models alike.

Each takes a network that follows the project's layer conventions (the `mlp`/`cnn`
registry networks, with or without batch norm) or a `SparseMLP`, and runs it in eval
mode without gradients, in batches, on the model's own device and dtype. Inputs are
(n, *input_shape); labels are int64 class indices (n,).
"""

from __future__ import annotations

import torch
from torch import nn

from nnclust.nets.validate import layer_modules
from nnclust.sparse.csr import SparseMLP


class _Stop(Exception):
    """Raised by a forward hook once the wanted layer has run."""


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    if isinstance(model, SparseMLP):
        return model.device, model.dtype
    p = next(model.parameters())
    return p.device, p.dtype


@torch.no_grad()
def _batched(fn, model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    device, dtype = _placement(model)
    try:
        parts = [fn(x[i : i + batch_size].to(device, dtype)) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("no inputs: x has 0 samples")
    return torch.cat(parts)


def outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs (logits), shape (n, num_classes), on the model's device."""
    return _batched(model, model, x, batch_size)


def _layer_end(model: nn.Module, index: int) -> nn.Module:
    """The last module of weight layer `index`: the one whose output the next layer reads."""
    mods = layer_modules(model)
    if not -len(mods) <= index < len(mods):
        raise IndexError(f"layer {index} is out of range for a model of {len(mods)} weight layers")
    name = mods[index].name
    if isinstance(model, nn.Sequential):
        members = [m for key, m in model.named_children() if key.rsplit("_", 1)[0] == name]
    else:
        members = list(getattr(model, name).values())
    return members[-1]


def partial_outputs(model: nn.Module, x: torch.Tensor, layer: int, batch_size: int = 1024) -> torch.Tensor:
    """Activations after weight layer `layer` (0-based, negative from the end): what the
    next layer reads (after batch norm, ReLU, pooling, eval-mode dropout), or the logits
    for the last layer. Shape (n, units) for fc layers, (n, C, H, W) for conv layers."""
    if isinstance(model, SparseMLP):
        return _batched(lambda xb: model.partial_outputs(xb, layer), model, x, batch_size)
    end = _layer_end(model, layer)

    def run(xb):
        seen = []

        def hook(module, inputs, output):
            seen.append(output)
            raise _Stop

        handle = end.register_forward_hook(hook)
        try:
            model(xb)
        except _Stop:
            pass
        finally:
            handle.remove()
        return seen[0]

    return _batched(run, model, x, batch_size)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of samples whose largest output is at the label."""
    return top_k_accuracy(model, x, y, 1, batch_size)


def top_k_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 5, batch_size: int = 1024) -> float:
    """Fraction of samples whose label is among the `k` largest outputs (ties by index)."""
    return output_accuracy(outputs(model, x, batch_size), y, k)


def output_accuracy(out: torch.Tensor, y: torch.Tensor, k: int = 1) -> float:
    """Top-`k` accuracy of outputs `out` (n, classes) already computed, labels `y` (n,)."""
    if not 1 <= k <= out.shape[1]:
        raise ValueError(f"k must be in [1, {out.shape[1]}] (the number of outputs), got {k}")
    if y.shape != (len(out),):
        raise ValueError(f"labels have shape {tuple(y.shape)}; expected ({len(out)},)")
    top = out.topk(k, dim=1).indices
    return float((top == y.to(top.device).unsqueeze(1)).any(dim=1).double().mean().item())


def top1_top2_ratio(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Per sample, the ratio of the largest to the second-largest softmax output,
    p1 / p2 = exp(z1 - z2) >= 1 for logits z1 >= z2 (a confidence margin). float64, (n,),
    on the CPU; inf where the margin overflows float64."""
    out = outputs(model, x, batch_size).double().cpu()
    if out.shape[1] < 2:
        raise ValueError("the top-1/top-2 ratio needs at least two outputs")
    top2 = out.topk(2, dim=1).values
    return torch.exp(top2[:, 0] - top2[:, 1])
