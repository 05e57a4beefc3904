"""Sparsity-aware initialisation: Glorot and He with each unit's real fan-in and fan-out.

Dense Glorot/He scale a weight by the layer's fan-in (and fan-out); under a mask a unit
sees only its kept connections, so with dense scaling its pre-activation variance
shrinks by the kept fraction (10x at 90% sparsity) and differs from unit to unit when
fan-in is uneven. Here unit j's fan-in is its kept incoming entries and input i's
fan-out its kept outgoing entries (kernel positions counted, as torch counts them):

- ``he``:     w_ji ~ N(0, 2 / fan_in_j)
- ``glorot``: w_ji ~ N(0, 2 / (fan_in_j + fan_out_i))

Masked-out weights, and so every weight of a unit left with no connection, are zero;
biases start at zero. ``default`` keeps the module's own (dense) initialisation. With
no mask, or an all-True one, ``he`` and ``glorot`` are the usual dense schemes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nnclust.core import seeding
from nnclust.nets.validate import layer_modules
from nnclust.pruning.registry import SPARSE_INITS as INITS


def he_std(mask: torch.Tensor) -> torch.Tensor:
    fan_in = mask.flatten(1).sum(1).double()  # (out,)
    std = torch.where(fan_in > 0, (2.0 / fan_in.clamp(min=1)).sqrt(), torch.zeros_like(fan_in))
    return std.view(-1, *([1] * (mask.dim() - 1))).expand(mask.shape)


def glorot_std(mask: torch.Tensor) -> torch.Tensor:
    m = mask.double()
    fan_in = m.flatten(1).sum(1).view(-1, *([1] * (mask.dim() - 1)))  # (out, 1[, 1, 1])
    fan_out = m.sum(0, keepdim=True)  # (1, in[, kh, kw]): kernel positions of input i
    if mask.dim() == 4:  # an input channel's fan-out counts all its kernel positions
        fan_out = fan_out.sum((2, 3), keepdim=True)
    total = fan_in + fan_out
    return torch.where(total > 0, (2.0 / total.clamp(min=1)).sqrt(), torch.zeros_like(total)).expand(mask.shape)


@torch.no_grad()
def sparse_init(model: torch.nn.Module, scheme: str, masks: Mapping[str, torch.Tensor] | None, seed: int) -> None:
    """Re-initialise every fc/conv of `model` in place with `scheme` under `masks`.

    `masks` maps ``<linear prefix>.weight`` to a bool tensor (True = kept); a layer
    without one counts as dense. Layer i draws its normals from the stream
    ``("sparse_init", i)`` of `seed`. ``scheme="default"`` leaves the model untouched.
    """
    std_of = INITS[scheme]
    if std_of is None:
        return
    masks = dict(masks or {})
    for i, lay in enumerate(layer_modules(model)):
        w = lay.linear.weight
        mask = masks.get(f"{lay.linear_key}.weight")
        mask = torch.ones(w.shape, dtype=torch.bool) if mask is None else mask.cpu().bool()
        std = std_of(mask)
        gen = seeding.torch_generator(seed, "sparse_init", i)
        noise = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        w.copy_((noise * std * mask).to(w.dtype))
        if lay.linear.bias is not None:
            lay.linear.bias.zero_()
