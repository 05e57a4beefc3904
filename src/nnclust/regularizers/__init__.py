"""Regularizer registry: the config's ``regularizer.name`` picks a builder of a training callback."""

from __future__ import annotations

from collections.abc import Mapping

from nnclust.core.registry import Registry
from nnclust.regularizers.clusterability import (
    ClusterabilityRegularizer,
    LaplacianEigensolver,
    clusterability_loss,
    from_config,
    laplacian_eigenvalues,
    rescale_hidden_units,
    weight_graph_edges,
)
from nnclust.regularizers.l1 import L1Penalty, l1_from_config

# name -> builder taking the section's other keys as a dict
REGULARIZERS = Registry("regularizer", {"clusterability": from_config, "l1": l1_from_config})


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
