"""Clusterability regularizer: the small eigenvalues of the weight graph's normalized Laplacian.

The term is the mean of eigenvalues 2..k+1 (ascending, the first being the trivial 0)
of L = I - D^-1/2 A D^-1/2, where A is the weight graph of `nnclust.structure.graph.build_graph`
with ``normalize=False`` and ``cnn_nodes="full"``: |w| edges for fc layers, kernel L1
norms for conv layers, the flatten summing |w| over a channel's spatial positions, batch
norm folded in as gamma / sqrt(running_var + eps) on each output unit's incoming edges,
and only the components that join inputs to outputs. Small values mean the graph falls
apart into k weakly joined clusters (Cheeger), so adding the term to the loss makes the
network more clusterable.

The edge weights are built from the live parameters as torch tensors, so autograd
carries the chain rule through abs, the batch-norm scale and the conv L1 sums. The
eigenvalues themselves go through `LaplacianEigenvalues`, whose backward is the analytic
eigenvalue derivative. For an edge of weight w between nodes p and q (A_pq = A_qp = w,
so both degrees change), with u the unit eigenvector of eigenvalue lambda and
y = D^-1/2 u, first-order perturbation theory (d lambda = u^T dL u) gives

    d lambda / d w = (1 - lambda) (y_p^2 + y_q^2) - 2 y_p y_q.

So the backward costs O(edges * k) and never forms a dense matrix, whereas autograd
through a dense ``eigh`` costs O(N^3) time and several N x N matrices.
"""

from nnclust.core.lazy import lazy_exports

# The `cluster_gradient_config` section of training, and the options of the
# "clusterability" regularizer: the one place its defaults are written (importing this
# package does not import torch, so config checks read them for free).
CONFIG_DEFAULTS = {"lambda": 0.01, "num_eigs": 3, "frequency": 1, "normalize": True}

__all__ = [
    "CONFIG_DEFAULTS",
    "METHODS",
    "UNIT_NORM",
    "ClusterabilityRegularizer",
    "EdgeCache",
    "EdgeList",
    "LaplacianEigensolver",
    "LaplacianEigenvalues",
    "clusterability_loss",
    "from_config",
    "laplacian_eigenvalues",
    "rescale_hidden_units",
    "weight_graph_edges",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.regularizers.clusterability.autograd:LaplacianEigenvalues",
        "nnclust.regularizers.clusterability.autograd:clusterability_loss",
        "nnclust.regularizers.clusterability.autograd:laplacian_eigenvalues",
        "nnclust.regularizers.clusterability.callback:ClusterabilityRegularizer",
        "nnclust.regularizers.clusterability.callback:from_config",
        "nnclust.regularizers.clusterability.edges:EdgeCache",
        "nnclust.regularizers.clusterability.edges:EdgeList",
        "nnclust.regularizers.clusterability.edges:weight_graph_edges",
        "nnclust.regularizers.clusterability.eigensolver:METHODS",
        "nnclust.regularizers.clusterability.eigensolver:LaplacianEigensolver",
        "nnclust.structure.transforms:UNIT_NORM",
        "nnclust.structure.transforms:rescale_hidden_units",
    ],
)
