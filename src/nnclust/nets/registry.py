"""Model registry: the config's ``model.name`` picks a builder, the other keys are its options.

The registry names its builders by `Lazy` reference: the names, option keys and
defaults are known to config checks without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from nnclust.core.config import check_keys
from nnclust.core.lazy import Lazy, lazy_exports
from nnclust.core.registry import Registry

if TYPE_CHECKING:
    from torch import nn

# The builders' and the layer walk's names, re-exported here; each imports torch when first read.
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.nets.builders:LayeredNet",
        "nnclust.nets.builders:build_network",
        "nnclust.nets.validate:LayerModules",
        "nnclust.nets.validate:ModelConventionError",
        "nnclust.nets.validate:layer_modules",
    ],
)
_build_network = Lazy("nnclust.nets.builders:build_network")

_MLP_KEYS = ("hidden", "batch_norm", "dropout")
_CNN_KEYS = ("conv_channels", "hidden", "kernel_size", "batch_norm", "dropout", "max_pool")
_SYM_CNN_KEYS = ("filters", "depth", "dropout", "dense")

# name -> (builder, accepted option keys, defaults)
MODELS = Registry(
    "model",
    {
        "mlp": (partial(_build_network, sequential=False), _MLP_KEYS, {"hidden": [128, 128]}),
        "mlp_sequential": (partial(_build_network, sequential=True), _MLP_KEYS, {"hidden": [128, 128]}),
        "cnn": (
            partial(_build_network, sequential=False),
            _CNN_KEYS,
            {"conv_channels": [16, 32], "hidden": [64], "batch_norm": True},
        ),
        "cnn_sequential": (
            partial(_build_network, sequential=True),
            _CNN_KEYS,
            {"conv_channels": [16, 32], "hidden": [64], "batch_norm": True},
        ),
        # The weight-symmetry models (nets/symmetry_models.py).
        "mnist_fc": (
            Lazy("nnclust.nets.symmetry_models:mnist_fc"),
            ("width", "depth", "dropout"),
            {"width": 32, "depth": 3},
        ),
        "mnist_cnn": (Lazy("nnclust.nets.symmetry_models:mnist_cnn"), _SYM_CNN_KEYS, {"filters": 16, "depth": 2}),
        "cifar10_cnn": (
            Lazy("nnclust.nets.symmetry_models:cifar10_cnn"),
            _SYM_CNN_KEYS,
            {"filters": 32, "depth": 3, "dense": 128},
        ),
        # The seed's example RNN: inputs of shape (steps, features), readout at the last step.
        "relu_rnn": (Lazy("nnclust.nets.rnn:build_rnn"), ("hidden", "dropout"), {"hidden": [16]}),
    },
)


def model_names() -> list[str]:
    return MODELS.names()


def build_model(spec: Mapping, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Build the network that `spec` (``{"name": ..., **options}``) describes.

    The result is validated against the layer conventions, so every registered
    model can be turned into a graph.
    """
    spec = dict(spec)
    name = spec.pop("name", None)
    builder, keys, defaults = MODELS[name]
    check_keys(f"model ({name})", spec, keys)
    model = builder(input_shape=tuple(input_shape), num_classes=int(num_classes), **{**defaults, **spec})
    from nnclust.nets.validate import layer_modules  # torch, imported once a model exists

    layer_modules(model)
    return model


__all__ = ["MODELS", "build_model", "model_names"]  # and the lazy exports at the top
