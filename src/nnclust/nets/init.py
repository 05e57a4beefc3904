"""Initialisation registry: how an MLP's or CNN's weights and biases are drawn.

IMP results depend on it: a normal init lets two concatenated moons tasks split, while
Kaiming-uniform weights with zero biases may not. So the choice is config, not code.

``initialize(model, name, bias, std, generator, bias_constant)`` re-draws every fc/conv
layer:

- weights by `INITS[name]`: ``normal`` (N(0, std^2)), ``kaiming_uniform`` (He et al.,
  U(-b, b) with b = sqrt(6 / fan_in), the ReLU gain, as open_lth's ``kaiming_uniform``),
  ``xavier`` (Glorot & Bengio, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), as
  ``torch.nn.init.xavier_uniform_``), or ``default`` (PyTorch's ``nn.Linear``/``nn.Conv2d``
  reset: Kaiming-uniform with a = sqrt(5), i.e. b = 1 / sqrt(fan_in));
- biases by `BIAS_INITS[bias]`: ``zero``; ``constant``: every bias `bias_constant`
  (Sparana's ``initialize_weights('Xavier', bias_constant=0.1)``); or ``same``: drawn
  from the weights' distribution (for ``default``, PyTorch's U(-1/sqrt(fan_in),
  1/sqrt(fan_in))).

All draws come from `generator` (a CPU torch.Generator, e.g. the run's ``init`` stream),
layer by layer in forward order, weights before biases.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nnclust.core.registry import Registry

if TYPE_CHECKING:
    import torch

# The draws use the tensors' own methods (what torch.nn.init.normal_ and uniform_ call),
# so that this module, read by config checks for its names, imports no torch.


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel): in and out times the kernel size."""
    field = int(weight[0, 0].numel()) if weight.dim() > 2 else 1
    return int(weight[0].numel()), int(weight.shape[0]) * field


def _normal(t: torch.Tensor, fans: tuple[int, int], std: float, gen: torch.Generator) -> None:
    t.normal_(0.0, std, generator=gen)


def _kaiming_uniform(t: torch.Tensor, fans: tuple[int, int], std: float, gen: torch.Generator) -> None:
    bound = math.sqrt(6.0 / fans[0])
    t.uniform_(-bound, bound, generator=gen)


def _xavier(t: torch.Tensor, fans: tuple[int, int], std: float, gen: torch.Generator) -> None:
    bound = math.sqrt(6.0 / (fans[0] + fans[1]))
    t.uniform_(-bound, bound, generator=gen)


def _default(t: torch.Tensor, fans: tuple[int, int], std: float, gen: torch.Generator) -> None:
    # kaiming_uniform_(a=sqrt(5)) as nn.Linear.reset_parameters: gain sqrt(2/(1+5)), bound = 1/sqrt(fan_in)
    bound = 1.0 / math.sqrt(fans[0])
    t.uniform_(-bound, bound, generator=gen)


# name -> draw(tensor, (fan_in, fan_out) of its layer, std, generator), in place.
INITS = Registry(
    "init", {"normal": _normal, "kaiming_uniform": _kaiming_uniform, "xavier": _xavier, "default": _default}
)
BIAS_INITS = Registry("bias init", {"zero": "zero", "constant": "constant", "same": "same"})
# bias_constant is read only by bias "constant" (0.1 is Sparana's example).
INIT_DEFAULTS = {"name": "default", "bias": "same", "std": 0.1, "bias_constant": 0.1}


def initialize(
    model, name: str = "default", bias: str = "same", std: float = 0.1, generator=None, bias_constant: float = 0.1
):
    """Re-draw the weights and biases of every layer of `model` in place; returns it."""
    import torch

    from nnclust.nets.validate import layer_modules

    draw = INITS[name]
    bias_rule = BIAS_INITS[bias]
    if not (isinstance(std, (int, float)) and std > 0 and math.isfinite(std)):
        raise ValueError(f"init std must be a number > 0, got {std!r}")
    if isinstance(bias_constant, bool) or not (
        isinstance(bias_constant, (int, float)) and math.isfinite(bias_constant)
    ):
        raise ValueError(f"init bias_constant must be a finite number, got {bias_constant!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in layer_modules(model):
            w = m.linear.weight
            fans = _fans(w)
            draw(w, fans, std, gen)
            if m.linear.bias is not None:
                if bias_rule == "zero":
                    m.linear.bias.zero_()
                elif bias_rule == "constant":
                    m.linear.bias.fill_(bias_constant)
                else:
                    draw(m.linear.bias, fans, std, gen)
    return model
