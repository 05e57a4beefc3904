"""MLPs and CNNs in both conventions: one ModuleDict per layer, or a named Sequential."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class LayeredNet(nn.Module):
    """A network made of one ``nn.ModuleDict`` per layer, applied in order.

    The input of an ``fc`` module is flattened first, so images feed MLPs directly and
    conv features feed the classifier head without a separate flatten module.
    """

    def __init__(self, layers: "OrderedDict[str, nn.ModuleDict]"):
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            for key, module in layer.items():
                if key == "fc" and x.dim() > 2:
                    x = x.flatten(1)
                x = module(x)
        return x


def _layer_specs(input_shape, num_classes, conv_channels, hidden, kernel_size, max_pool):
    """(kind, in, out, spatial-after) tuples for every weight layer."""
    specs = []
    channels, *spatial = input_shape
    if conv_channels and len(input_shape) != 3:
        raise ValueError(f"a CNN needs image inputs (C, H, W), got input shape {tuple(input_shape)}")
    size = list(spatial)
    for out in conv_channels:
        specs.append(("conv", channels, out))
        channels = out
        if max_pool:
            if min(size) < 2:
                raise ValueError(
                    f"max-pooling after {len(specs)} conv layers shrinks the {tuple(input_shape)} "
                    "input below 1x1; use fewer conv layers or max_pool=False"
                )
            size = [s // 2 for s in size]
    features = channels
    for s in size:
        features *= s
    for out in [*hidden, num_classes]:
        specs.append(("fc", features, out))
        features = out
    return specs


def _modules(kind, n_in, n_out, last, batch_norm, dropout, kernel_size, max_pool):
    mods = []
    if kind == "conv":
        mods.append(("conv", nn.Conv2d(n_in, n_out, kernel_size, padding=kernel_size // 2)))
        if batch_norm:
            mods.append(("bn", nn.BatchNorm2d(n_out)))
        mods.append(("relu", nn.ReLU()))
        if max_pool:
            mods.append(("pool", nn.MaxPool2d(2)))
    else:
        mods.append(("fc", nn.Linear(n_in, n_out)))
        if not last:
            if batch_norm:
                mods.append(("bn", nn.BatchNorm1d(n_out)))
            mods.append(("relu", nn.ReLU()))
    if not last and dropout > 0:
        mods.append(("drop", nn.Dropout(dropout)))
    return mods


def build_network(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (),
    conv_channels: Sequence[int] = (),
    kernel_size: int = 3,
    batch_norm: bool = False,
    dropout: float = 0.0,
    max_pool: bool = True,
    sequential: bool = False,
) -> nn.Module:
    """A ReLU network: conv layers (each optionally with BN and 2x2 max-pool), then fc layers.

    Parameters
    ----------
    input_shape : (features,) or (channels, height, width) of one example.
    num_classes : width of the output layer (logits, no ReLU).
    hidden : widths of the hidden fc layers.
    conv_channels : output channels of the conv layers (empty for an MLP).
    sequential : build an ``nn.Sequential`` with ``<layer>_<module>`` names instead of
        one ``nn.ModuleDict`` per layer; both give the same state-dict values.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    widths = [*conv_channels, *hidden]
    if any(int(w) < 1 for w in widths):
        raise ValueError(f"layer widths must be positive, got {widths}")
    specs = _layer_specs(tuple(input_shape), num_classes, list(conv_channels), list(hidden), kernel_size, max_pool)
    per_layer = [
        _modules(kind, n_in, n_out, i == len(specs) - 1, batch_norm, dropout, kernel_size, max_pool)
        for i, (kind, n_in, n_out) in enumerate(specs)
    ]
    if not sequential:
        return LayeredNet(OrderedDict((f"layer{i}", nn.ModuleDict(OrderedDict(m))) for i, m in enumerate(per_layer)))
    named = OrderedDict()
    previous = None
    for i, mods in enumerate(per_layer):
        if mods[0][0] == "fc" and previous != "fc":
            # nn.Sequential has no implicit flatten, unlike LayeredNet.
            named[f"{i}_flatten"] = nn.Flatten()
        for key, module in mods:
            named[f"{i}_{key}"] = module
        previous = mods[0][0]
    return nn.Sequential(named)
