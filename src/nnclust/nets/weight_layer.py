"""The weight-layer record that all graph analyses read (numpy only, no torch).

Kept apart from `nnclust.nets.layers`, which builds these records from torch modules, so
that shuffle workers do not pay for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class WeightLayer:
    """One linear transform with the batch norm that follows it folded into a scale.

    Attributes
    ----------
    name : state-dict prefix of the linear module (e.g. ``layer0.fc`` or ``0_fc``).
    kind : ``"fc"`` (weight shape (out, in)) or ``"conv"`` (weight (out, in, kh, kw)).
    weight, bias : float64 arrays; pruned entries are 0.
    bn_scale : gamma / sqrt(running_var + eps), shape (out,), or None without batch norm.
    mask : bool array shaped like `weight` (True = kept), or None when unpruned.
    bn_shift : beta - running_mean * bn_scale, shape (out,): with `bn_scale`, batch norm in
        eval mode maps z to z * bn_scale + bn_shift. None without batch norm, or when the
        source held no running mean and beta (the graph needs only the scale).
    bn_gamma, bn_std : the batch norm's gamma and sqrt(running_var + eps), shape (out,),
        whose ratio is `bn_scale`; kept apart so a shuffle can permute them
        independently, as nn-clustering-pytorch's does. None without batch norm.
    """

    name: str
    kind: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    bn_scale: np.ndarray | None = None
    mask: np.ndarray | None = None
    bn_shift: np.ndarray | None = None
    bn_gamma: np.ndarray | None = None
    bn_std: np.ndarray | None = None

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    def with_weight(self, weight: np.ndarray, bn_scale: np.ndarray | None = None) -> "WeightLayer":
        return replace(self, weight=weight, bn_scale=self.bn_scale if bn_scale is None else bn_scale)


@dataclass(frozen=True)
class SparseWeightLayer:
    """A weight layer held as its nonzero weights: what a weight graph reads of a layer.

    The fields are `WeightLayer`'s, with the dense weight replaced by `shape`,
    `positions` and `values`, and without bias, mask and bn_shift, which no graph reads.
    Shuffles of a pruned network's layers and the graphs built from them cost O(nnz)
    on this form, against O(size) on dense weights.

    Attributes
    ----------
    shape : the weight's shape, (out, in) or (out, in, kh, kw).
    positions : int64 (nnz,), distinct flat (C-order) indices into the weight, any order.
    values : float64 (nnz,), the weights at `positions`; every other weight is 0.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    positions: np.ndarray
    values: np.ndarray
    bn_scale: np.ndarray | None = None
    bn_gamma: np.ndarray | None = None
    bn_std: np.ndarray | None = None

    @classmethod
    def of(cls, layer: WeightLayer) -> "SparseWeightLayer":
        """The nonzero weights of a dense layer, in C order."""
        w = np.asarray(layer.weight)
        positions = np.flatnonzero(w)
        return cls(
            layer.name,
            layer.kind,
            tuple(w.shape),
            positions,
            w.ravel()[positions],
            layer.bn_scale,
            layer.bn_gamma,
            layer.bn_std,
        )

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_in(self) -> int:
        return int(self.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.shape[0])

    def dense(self) -> np.ndarray:
        """The weight as a dense float64 array of `shape`."""
        out = np.zeros(self.shape)
        out.flat[self.positions] = self.values
        return out


def mlp_forward(layers, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(outputs (n, n_out), hidden activations [(n, width_g)]) of fc weight layers (batch
    norm folded) on inputs `x` (n, ...), flattened to (n, n_in): ReLU after every layer
    but the last, a missing bias read as zero; float64 throughout. The numpy forward pass
    that analyses of weight layers share."""
    h = np.asarray(x, np.float64).reshape(len(x), -1)
    hidden = []
    for i, lay in enumerate(layers):
        h = h @ lay.weight.T + (0.0 if lay.bias is None else np.asarray(lay.bias, np.float64))
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
            hidden.append(h)
    return h, hidden
