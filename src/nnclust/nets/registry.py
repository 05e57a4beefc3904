"""Model registry: the config's ``model.name`` picks a builder, the other keys are its options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from torch import nn

from nnclust.core.config import check_keys
from nnclust.core.registry import Registry
from nnclust.nets.builders import LayeredNet, build_network
from nnclust.nets.rnn import build_rnn
from nnclust.nets.symmetry_models import cifar10_cnn, mnist_cnn, mnist_fc
from nnclust.nets.validate import LayerModules, ModelConventionError, layer_modules

_MLP_KEYS = ("hidden", "batch_norm", "dropout")
_CNN_KEYS = ("conv_channels", "hidden", "kernel_size", "batch_norm", "dropout", "max_pool")
_SYM_CNN_KEYS = ("filters", "depth", "dropout", "dense")

# name -> (builder, accepted option keys, defaults)
MODELS = Registry(
    "model",
    {
        "mlp": (partial(build_network, sequential=False), _MLP_KEYS, {"hidden": [128, 128]}),
        "mlp_sequential": (partial(build_network, sequential=True), _MLP_KEYS, {"hidden": [128, 128]}),
        "cnn": (
            partial(build_network, sequential=False),
            _CNN_KEYS,
            {"conv_channels": [16, 32], "hidden": [64], "batch_norm": True},
        ),
        "cnn_sequential": (
            partial(build_network, sequential=True),
            _CNN_KEYS,
            {"conv_channels": [16, 32], "hidden": [64], "batch_norm": True},
        ),
        # The weight-symmetry models (nets/symmetry_models.py).
        "mnist_fc": (mnist_fc, ("width", "depth", "dropout"), {"width": 32, "depth": 3}),
        "mnist_cnn": (mnist_cnn, _SYM_CNN_KEYS, {"filters": 16, "depth": 2}),
        "cifar10_cnn": (cifar10_cnn, _SYM_CNN_KEYS, {"filters": 32, "depth": 3, "dense": 128}),
        # The seed's example RNN: inputs of shape (steps, features), readout at the last step.
        "relu_rnn": (build_rnn, ("hidden", "dropout"), {"hidden": [16]}),
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
    layer_modules(model)
    return model


__all__ = [
    "MODELS",
    "LayerModules",
    "LayeredNet",
    "ModelConventionError",
    "build_model",
    "build_network",
    "layer_modules",
    "model_names",
]
