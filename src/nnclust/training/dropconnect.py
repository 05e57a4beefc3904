"""Drop-connect (Wan et al. 2013; Sparana's ``dropout``, which zeroes weights): during
training each weight of every fc and conv layer is zeroed with probability p, a fresh
mask at every forward pass, the kept ones scaled by 1 / (1 - p) so that the expected
pre-activation is unchanged and evaluation uses the plain weights.

A training callback that, at the start of training, puts a forward hook on each layer's
linear module; the hook acts only in training mode and leaves the parameters untouched
(the optimizer sees the masked gradient through the product).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nnclust.core import seeding
from nnclust.nets.registry import layer_modules


def dropconnect_weight(weight: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """`weight` with each entry zeroed with probability `p` (a draw of
    ``torch.rand(weight.shape, generator=generator)`` below p, on the CPU) and the rest
    times 1 / (1 - p)."""
    keep = torch.rand(weight.shape, generator=generator) >= p
    return weight * keep.to(weight.device, weight.dtype) / (1.0 - p)


class DropConnect:
    """Drop-connect with probability `p` in [0, 1), masks drawn from the ``dropconnect``
    stream of `seed`. ``p = 0`` puts no hook and draws nothing, so training is that of
    a run without it. The generator state is part of `state_dict`, so a resumed run draws
    the masks an uninterrupted one would."""

    def __init__(self, p: float, seed: int):
        if not 0 <= p < 1:
            raise ValueError(f"dropconnect={p} is not allowed: expected a probability in [0, 1), 0 = off")
        self.p = float(p)
        self.generator = seeding.torch_generator(seed, "dropconnect")
        self.handles: list = []

    def _hook(self, module: nn.Module, inputs, output):
        if not module.training:
            return None
        weight = dropconnect_weight(module.weight, self.p, self.generator)
        if isinstance(module, nn.Linear):
            return F.linear(inputs[0], weight, module.bias)
        return module._conv_forward(inputs[0], weight, module.bias)

    def on_train_start(self, state) -> None:
        if self.p > 0 and not self.handles:
            self.handles = [m.linear.register_forward_hook(self._hook) for m in layer_modules(state.model)]

    def remove(self) -> None:
        """Take the hooks off the model (training done)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, saved: dict) -> None:
        self.generator.set_state(saved["generator"])
