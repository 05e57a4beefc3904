"""Function-preserving transforms of a ReLU network's weights: batch-norm folding and
ReLU rescaling, on weight arrays and on the stored weights of sparse layers (for
graphs), and in place on a live module (for training with the clusterability
regularizer). The one place for both."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnclust.nets.weight_layer import SparseWeightLayer, WeightLayer

# Incoming L2 norm that `rescale_hidden_units` gives every hidden unit (He-style scale).
UNIT_NORM = math.sqrt(2.0)

# What `relu_rescale` adds to each incoming norm before dividing by it, as
# nn-clustering-pytorch's `normalize_weights_array` does: a unit whose incoming weights
# decayed to ~1e-9 without being pruned stays nearly disconnected instead of being
# blown up to unit norm. 0 divides by the norm itself (units of norm 0 left as they are).
NORMALIZE_EPS = 1e-5


def fold_batch_norm(layers: list[WeightLayer]) -> list[np.ndarray]:
    """Weights with each output unit scaled by its batch-norm factor gamma/sqrt(var+eps)."""
    out = []
    for lay in layers:
        w = lay.weight
        if lay.bn_scale is not None:
            w = w * lay.bn_scale.reshape((-1,) + (1,) * (w.ndim - 1))
        out.append(w)
    return out


def fold_batch_norm_into_layers(layers: list[WeightLayer]) -> list[WeightLayer]:
    """Layers with their (eval-mode) batch norm folded into weight and bias: z * scale +
    shift becomes (W * scale) x + (b * scale + shift). The function is unchanged; the
    result has no batch norm. Needs `bn_shift` (running mean and beta) where there is a
    batch norm."""
    out = []
    for lay in layers:
        if lay.bn_scale is None:
            out.append(lay)
            continue
        if lay.bn_shift is None:
            raise ValueError(
                f"batch norm after '{lay.name}' has no running mean or beta in this state dict; "
                "folding it into the bias needs both"
            )
        scale = lay.bn_scale.reshape((-1,) + (1,) * (lay.weight.ndim - 1))
        bias = np.zeros(lay.n_out) if lay.bias is None else lay.bias
        out.append(
            replace(
                lay,
                weight=lay.weight * scale,
                bias=bias * lay.bn_scale + lay.bn_shift,
                bn_scale=None,
                bn_shift=None,
                bn_gamma=None,
                bn_std=None,
            )
        )
    return out


def _incoming(weights: list[np.ndarray], i: int) -> np.ndarray:
    """Norm of each output unit's incoming weights in layer i, shape (out,)."""
    w = weights[i]
    return np.sqrt((w.reshape(w.shape[0], -1) ** 2).sum(axis=1))


def _scale_outgoing(weights: list[np.ndarray], i: int, factor: np.ndarray) -> None:
    """Multiply what layer i+1 reads from each unit of layer i by `factor` (in place)."""
    nxt = weights[i + 1]
    n = factor.size
    if nxt.ndim == 4 or nxt.shape[1] == n:
        weights[i + 1] = nxt * factor.reshape((1, n) + (1,) * (nxt.ndim - 2))
    else:  # conv -> fc: each channel feeds a contiguous run of flattened positions
        per = nxt.shape[1] // n
        weights[i + 1] = nxt * np.repeat(factor, per)[None, :]


def relu_rescale(weights: list[np.ndarray], eps: float = NORMALIZE_EPS) -> list[np.ndarray]:
    """Divide every hidden unit's incoming weights by (L2 norm + `eps`) and multiply its
    outgoing weights by the same factor, layer by layer from the input.

    Since ReLU(a x) = a ReLU(x) for a > 0 this leaves the network's function unchanged
    (biases would scale with the incoming weights), so the graph no longer depends on
    which of the equivalent rescalings training happened to reach. With `eps` > 0 (the
    default 1e-5 is nn-clustering-pytorch's) every unit is scaled, and a unit of
    incoming norm << eps keeps tiny incoming weights; with `eps` = 0 every unit gets
    unit incoming norm exactly, and units with no incoming weight are left as they are.
    The last layer (the outputs) is not normalized.
    """
    if eps < 0:
        raise ValueError(f"normalize eps must be >= 0, got {eps}")
    weights = list(weights)
    for i in range(len(weights) - 1):
        norms = _incoming(weights, i)
        factor = norms + eps if eps > 0 else np.where(norms > 0, norms, 1.0)
        w = weights[i]
        weights[i] = w / factor.reshape((-1,) + (1,) * (w.ndim - 1))
        _scale_outgoing(weights, i, factor)
    return weights


def sparse_units(layers: Sequence[SparseWeightLayer]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(output unit, input unit) of every stored weight of each sparse layer, int64 (nnz,).

    The input unit is the unit of the previous layer that the weight reads: its input
    channel for a conv weight (out, in, kh, kw) and, through a conv -> fc flatten (an
    fc layer reading more features than the conv before it has channels), the channel
    whose contiguous run of flattened positions holds the weight's input.
    """
    out = []
    prev_channels = None
    for lay in layers:
        per_in = int(np.prod(lay.shape[2:], dtype=np.int64))  # kernel positions (1 for fc)
        stride = lay.n_in * per_in
        rows = lay.positions // stride
        cols = lay.positions - rows * stride
        if per_in > 1:
            cols //= per_in
        if len(lay.shape) == 2 and prev_channels is not None and lay.n_in != prev_channels:
            cols //= lay.n_in // prev_channels
        out.append((rows, cols))
        prev_channels = lay.n_out if len(lay.shape) == 4 else None
    return out


def fold_batch_norm_sparse(layers: Sequence[SparseWeightLayer], units) -> list[np.ndarray]:
    """`fold_batch_norm` on sparse layers: each layer's values times its batch-norm scale
    at their output unit; `units` from `sparse_units`."""
    return [
        lay.values if lay.bn_scale is None else lay.values * lay.bn_scale[rows] for lay, (rows, _) in zip(layers, units)
    ]


def relu_rescale_sparse(
    values: Sequence[np.ndarray], units, n_out: Sequence[int], eps: float = NORMALIZE_EPS
) -> list[np.ndarray]:
    """`relu_rescale` on the stored weights of sparse layers: `values` (one array per
    layer), their `units` (from `sparse_units`) and each layer's number of output units.
    The same arithmetic entry by entry; only the order of the sums in the norms
    differs, so results agree with the dense form to rounding."""
    if eps < 0:
        raise ValueError(f"normalize eps must be >= 0, got {eps}")
    values = list(values)
    for i in range(len(values) - 1):
        rows = units[i][0]
        norms = np.sqrt(np.bincount(rows, weights=values[i] ** 2, minlength=n_out[i]))
        factor = norms + eps if eps > 0 else np.where(norms > 0, norms, 1.0)
        values[i] = values[i] / factor[rows]
        values[i + 1] = values[i + 1] * factor[units[i + 1][1]]
    return values


def relu_rescale_layers(layers: list[WeightLayer]) -> list[WeightLayer]:
    """Layers with every hidden unit's incoming weights *and bias* scaled to unit L2
    norm (of the joint vector (w_in, b)), the factor moved onto its outgoing weights.

    The bias-aware, exact form of `relu_rescale` (which leaves biases alone because the
    graph reads weights only): ReLU(a (w x + b)) = a ReLU(w x + b) for a > 0, so the
    network's function is unchanged. Layers are processed from the input, so the factor
    moved into layer i+1 is normalized away in its own turn, and a second application
    changes nothing. Units whose (w_in, b) is all zero are left as they are. Batch norm
    must be folded first (`fold_batch_norm_into_layers`); masks are kept (scaling keeps
    the zero pattern).
    """
    for lay in layers:
        if lay.bn_scale is not None:
            raise ValueError(f"'{lay.name}' is followed by batch norm; fold it first with fold_batch_norm_into_layers")
    weights = [lay.weight for lay in layers]
    biases = [None if lay.bias is None else np.asarray(lay.bias, np.float64) for lay in layers]
    for i in range(len(weights) - 1):
        sq = (weights[i].reshape(weights[i].shape[0], -1) ** 2).sum(axis=1)
        if biases[i] is not None:
            sq = sq + biases[i] ** 2
        norms = np.sqrt(sq)
        factor = np.where(norms > 0, norms, 1.0)
        weights[i] = weights[i] / factor.reshape((-1,) + (1,) * (weights[i].ndim - 1))
        if biases[i] is not None:
            biases[i] = biases[i] / factor
        _scale_outgoing(weights, i, factor)
    return [replace(lay, weight=w, bias=b) for lay, w, b in zip(layers, weights, biases)]


def rescale_hidden_units(model, norm: float = UNIT_NORM) -> None:
    """Give every hidden unit incoming parameters of L2 norm `norm`, in place, moving
    the factor onto its outgoing weights; the network function is unchanged.

    ReLU(a x) = a ReLU(x) for a > 0 (max-pool and dropout commute with a, too), so
    dividing a unit's incoming parameters by a and multiplying what the next layer reads
    from it by a leaves every output as it was. A unit's incoming parameters are its
    weights and bias, or, for a unit followed by batch norm, the BN affine pair
    (gamma, beta): BN output does not scale with the pre-BN weights (in eval mode it
    would not even be a pure rescale because of eps), but gamma and beta scale it
    exactly. Across a conv -> fc flatten, channel c feeds the contiguous block
    c*H*W..(c+1)*H*W-1 of the fc inputs. Layers are processed from the input, so that
    the factor moved into layer i+1 is normalized away in its own turn. Units with
    zero norm, and batch norms without affine parameters, are left as they are.
    """
    import torch  # here, not at the top: graph analyses never need torch

    from nnclust.nets.validate import layer_modules

    mods = layer_modules(model)
    with torch.no_grad():
        for m, nxt in zip(mods, mods[1:]):
            if m.bn is not None:
                if m.bn.weight is None:
                    continue
                incoming = [m.bn.weight.unsqueeze(1)] + ([m.bn.bias.unsqueeze(1)] if m.bn.bias is not None else [])
            else:
                w = m.linear.weight
                incoming = [w.view(w.shape[0], -1)]
                if m.linear.bias is not None:
                    incoming.append(m.linear.bias.unsqueeze(1))
            # Run at every regularized training step: few, in-place tensor operations.
            factor = incoming[0].square().sum(dim=1)
            for p in incoming[1:]:
                factor += p.square().sum(dim=1)
            factor = factor.sqrt_().div_(norm)
            factor.masked_fill_(~(factor > 0), 1.0)  # zero-norm units stay as they are
            column = factor.unsqueeze(1)
            for p in incoming:
                p.div_(column)  # views: divides the parameters in place
            w_next = nxt.linear.weight
            n = factor.numel()
            if nxt.kind == "conv":
                w_next.mul_(factor.reshape(1, n, 1, 1))
            elif w_next.shape[1] == n:  # fc -> fc reads each unit once
                w_next.mul_(factor)
            else:  # conv -> fc reads H*W flattened inputs per channel
                w_next.mul_(factor.repeat_interleave(w_next.shape[1] // n))
