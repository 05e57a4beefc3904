"""Regularizer registry: the config's ``regularizer.name`` picks a builder of a training callback."""

from __future__ import annotations

from collections.abc import Mapping

from nnclust.core.lazy import Lazy, lazy_exports
from nnclust.core.registry import Registry

# name -> builder taking the section's other keys as a dict; imported (with torch) when
# first looked up, so that config checks read the names for free
REGULARIZERS = Registry(
    "regularizer",
    {
        "clusterability": Lazy("nnclust.regularizers.clusterability.callback:from_config"),
        "l1": Lazy("nnclust.regularizers.l1:l1_from_config"),
    },
)


def build_regularizer(spec: Mapping):
    """The callback that ``{"name": ..., **options}`` describes; an unknown name is a
    ValueError listing the valid ones."""
    spec = dict(spec)
    return REGULARIZERS[spec.pop("name", None)](spec)


__all__ = [
    "REGULARIZERS",
    "ClusterabilityRegularizer",
    "L1Penalty",
    "LaplacianEigensolver",
    "build_regularizer",
    "clusterability_loss",
    "from_config",
    "laplacian_eigenvalues",
    "rescale_hidden_units",
    "weight_graph_edges",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.regularizers.clusterability:ClusterabilityRegularizer",
        "nnclust.regularizers.clusterability:LaplacianEigensolver",
        "nnclust.regularizers.clusterability:clusterability_loss",
        "nnclust.regularizers.clusterability:from_config",
        "nnclust.regularizers.clusterability:laplacian_eigenvalues",
        "nnclust.regularizers.clusterability:rescale_hidden_units",
        "nnclust.regularizers.clusterability:weight_graph_edges",
        "nnclust.regularizers.l1:L1Penalty",
    ],
)
