"""The models of the weight-symmetry experiments, as thin wrappers of `build_network`.

- ``mnist_fc``: `depth` hidden fc layers of `width` units, ReLU, no batch norm;
- ``mnist_cnn``: `depth` conv layers of `filters` channels, batch norm, 2x2 max-pool;
- ``cifar10_cnn``: the same without batch norm, with a `dense`-wide fc layer before the
  output.

They train on any registry dataset of the right shape (digits by default, MNIST and
CIFAR-10 from local files); ``dropout`` (default 0) follows every hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nnclust.nets.builders import build_network


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def mnist_fc(input_shape: Sequence[int], num_classes: int, width: int, depth: int, dropout: float = 0.0) -> nn.Module:
    """`depth` hidden layers of `width` ReLU units (depth 0 is a linear classifier)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    hidden = [_positive("width", width)] * depth
    return build_network(input_shape, num_classes, hidden=hidden, dropout=dropout)


def _cnn(input_shape, num_classes, filters, depth, dropout, dense, batch_norm) -> nn.Module:
    channels = [_positive("filters", filters)] * _positive("depth", depth)
    hidden = [_positive("dense", dense)] if dense else []
    return build_network(
        input_shape, num_classes, conv_channels=channels, hidden=hidden, batch_norm=batch_norm, dropout=dropout
    )


def mnist_cnn(input_shape, num_classes, filters: int, depth: int, dropout: float = 0.0, dense: int = 0) -> nn.Module:
    """`depth` conv layers of `filters` channels with batch norm, then the output fc
    (after a `dense`-wide hidden fc when `dense` > 0)."""
    return _cnn(input_shape, num_classes, filters, depth, dropout, dense, batch_norm=True)


def cifar10_cnn(input_shape, num_classes, filters: int, depth: int, dropout: float = 0.0, dense: int = 0) -> nn.Module:
    """As `mnist_cnn`, without batch norm."""
    return _cnn(input_shape, num_classes, filters, depth, dropout, dense, batch_norm=False)


def mnist_fc_parameters(n_in: int, n_out: int, width: int, depth: int) -> int:
    """Weights and biases of a dense `mnist_fc`."""
    sizes = [n_in, *([width] * depth), n_out]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def width_for_budget(n_in: int, n_out: int, depth: int, budget: int) -> int:
    """The `mnist_fc` width whose dense parameter count is closest to `budget`.

    The count is (depth - 1) w^2 + (n_in + n_out + depth) w + n_out, increasing in w,
    so the best width is next to the positive root of count = budget.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1 to solve for a width, got {depth}")
    a, b, c = depth - 1, n_in + n_out + depth, n_out - budget
    root = -c / b if a == 0 else (-b + (b * b - 4 * a * c) ** 0.5) / (2 * a)
    lo = max(1, int(root))
    candidates = [w for w in (lo, lo + 1) if w >= 1]
    return min(candidates, key=lambda w: (abs(mnist_fc_parameters(n_in, n_out, w, depth) - budget), w))
