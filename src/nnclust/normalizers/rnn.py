"""The seed's RNN prototype: deleting dead hidden units of a `ReluRNN`.

Only `delete_dead_neurons` applies to recurrent networks; the MLP normalizers refuse
them (permuting or rescaling a recurrent unit must act on both sides of W_rec).
"""

from __future__ import annotations

import numpy as np
import torch

from nnclust.nets.rnn import ReluRNN
from nnclust.normalizers.mlp import NormalizerError


def _arrays(model: ReluRNN) -> dict[str, np.ndarray]:
    get = lambda t: t.detach().double().numpy().copy()  # noqa: E731
    return {
        "w_in": get(model.input.fc.weight),
        "b": get(model.input.fc.bias),
        "w_rec": get(model.recurrent.fc.weight),
        "w_out": get(model.readout.fc.weight),
        "b_out": get(model.readout.fc.bias),
    }


def unit_norms(model: ReluRNN) -> np.ndarray:
    """(hidden, 4) L2 norms of each unit's input weights, recurrent-in weights (its row
    of W_rec), recurrent-out weights (its column) and readout weights."""
    a = _arrays(model)
    return np.stack(
        [
            np.linalg.norm(a["w_in"], axis=1),
            np.linalg.norm(a["w_rec"], axis=1),
            np.linalg.norm(a["w_rec"], axis=0),
            np.linalg.norm(a["w_out"], axis=0),
        ],
        axis=1,
    )


def delete_dead_units(model: ReluRNN, threshold: float = 0.0) -> ReluRNN:
    """A new `ReluRNN` without the hidden units whose input, recurrent-in,
    recurrent-out and readout weights all have L2 norm <= `threshold`.

    A deleted unit's activation is taken as ReLU(b_u) and its readout contribution
    W_out[:, u] ReLU(b_u) is folded into the readout bias; its recurrent-out weights are
    dropped. With all four weight groups zero (threshold 0) the unit never influences
    anything, and removal is exact.
    """
    dead = (unit_norms(model) <= threshold).all(axis=1)
    if dead.all():
        raise NormalizerError(
            f"threshold={threshold} would delete all {dead.size} hidden units of the RNN, leaving no network; lower it"
        )
    a, keep = _arrays(model), ~dead
    new = ReluRNN(a["w_in"].shape[1], int(keep.sum()), a["w_out"].shape[0])
    b_out = a["b_out"] + a["w_out"][:, dead] @ np.maximum(a["b"][dead], 0.0)
    values = {
        new.input.fc.weight: a["w_in"][keep],
        new.input.fc.bias: a["b"][keep],
        new.recurrent.fc.weight: a["w_rec"][keep][:, keep],
        new.readout.fc.weight: a["w_out"][:, keep],
        new.readout.fc.bias: b_out,
    }
    with torch.no_grad():
        for param, value in values.items():
            param.copy_(torch.from_numpy(value))
    return new.eval()


def hidden_units(model_layers) -> int:
    """Hidden units of an RNN (its layers: input, recurrent, readout) with any nonzero
    input, recurrent-in, recurrent-out or readout weight."""
    w_in, w_rec, w_out = (lay.weight for lay in model_layers)
    used = (
        (np.abs(w_in).sum(1) > 0) | (np.abs(w_rec).sum(1) > 0) | (np.abs(w_rec).sum(0) > 0) | (np.abs(w_out).sum(0) > 0)
    )
    return int(used.sum())
