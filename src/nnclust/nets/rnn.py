"""A small ReLU RNN (the normalizer seed's example RNN) in the layer conventions.

h_t = ReLU(W_in x_t + b + W_rec h_{t-1}) with h_0 = 0, and the output W_out h_T + b_out
read from the last step. Its three linear maps are held as layers ``input``,
``recurrent`` and ``readout`` (one ``nn.ModuleDict`` each), so the layer walk sees the
network unrolled one step: inputs -> hidden -> hidden -> outputs. Code that would treat
that walk as an MLP checks `is_recurrent` first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class ReluRNN(nn.Module):
    """Inputs (n, T, features) -> outputs (n, num_outputs)."""

    recurrent_network = True

    def __init__(self, features: int, hidden_size: int, num_outputs: int):
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive int, got {hidden_size}")
        self.input = nn.ModuleDict(OrderedDict(fc=nn.Linear(features, hidden_size)))
        self.recurrent = nn.ModuleDict(OrderedDict(fc=nn.Linear(hidden_size, hidden_size, bias=False)))
        self.readout = nn.ModuleDict(OrderedDict(fc=nn.Linear(hidden_size, num_outputs)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = self.input.fc(x)  # (n, T, hidden): the input part of every step at once
        h = torch.zeros_like(drive[:, 0])
        for t in range(drive.shape[1]):
            h = torch.relu(drive[:, t] + self.recurrent.fc(h))
        return self.readout.fc(h)


def build_rnn(
    input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (16,), dropout: float = 0.0
) -> ReluRNN:
    """A `ReluRNN` for sequences of shape (T, features) with ``hidden = [width]`` units
    (the same option as the MLP's, so a config switches models by name)."""
    if len(input_shape) != 2:
        raise ValueError(f"relu_rnn reads sequences of shape (steps, features), got input shape {tuple(input_shape)}")
    if len(hidden) != 1:
        raise ValueError(f"relu_rnn has one recurrent layer; give hidden=[width], got hidden={list(hidden)}")
    if dropout:
        raise ValueError(f"relu_rnn has no dropout; set dropout=0, got {dropout}")
    return ReluRNN(int(input_shape[1]), int(hidden[0]), int(num_classes))


def is_recurrent(model) -> bool:
    return bool(getattr(model, "recurrent_network", False))
