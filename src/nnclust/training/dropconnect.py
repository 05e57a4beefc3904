"""Drop-connect (Wan et al. 2013; Sparana's ``dropout``, which zeroes weights): during
training each weight of every fc and conv layer is zeroed with probability p, a fresh
mask at every forward pass, the kept ones scaled by 1 / (1 - p) so that the expected
pre-activation is unchanged and evaluation uses the plain weights.

A training callback that, at the start of training, gives each layer's linear module a
forward of its own (an instance attribute over the class's ``forward``): in training
mode it runs the layer once with the masked weight, in eval mode the module's own
forward. The parameters stay untouched; the optimizer sees the masked gradient through
the product. A forward hook could only replace an output already computed with the
plain weight, doing each layer's product twice.
"""

from __future__ import annotations

import types

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
        self.modules: list[nn.Module] = []

    def _forward(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return type(module).forward(module, x)
        weight = dropconnect_weight(module.weight, self.p, self.generator)
        if isinstance(module, nn.Linear):
            return F.linear(x, weight, module.bias)
        return module._conv_forward(x, weight, module.bias)

    def on_train_start(self, state) -> None:
        if self.p > 0 and not self.modules:
            self.modules = [m.linear for m in layer_modules(state.model)]
            for module in self.modules:
                # bound to the module, so that a deep copy of the model binds it to the copy
                module.forward = types.MethodType(self._forward, module)

    def remove(self) -> None:
        """Give the layers back their class's forward (training done)."""
        for module in self.modules:
            del module.forward
        self.modules = []

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, saved: dict) -> None:
        self.generator.set_state(saved["generator"])
