"""Normal forms of ReLU MLPs: a registry of normalizers (exact, approximate,
data-dependent, crude), the metrics of every derived model, and the evolution tree of
which model was derived from which (rebuilt from the parent links of stored runs)."""

from nnclust.normalizers.metrics import METRICS, SPARSITY_TOL, model_metrics
from nnclust.normalizers.mlp import forward
from nnclust.normalizers.registry import (
    KINDS,
    NORMALIZERS,
    Normalized,
    Normalizer,
    NormalizerError,
    check_options,
    mlp_layers,
    normalize,
)

__all__ = [
    "KINDS",
    "METRICS",
    "NORMALIZERS",
    "SPARSITY_TOL",
    "Normalized",
    "Normalizer",
    "NormalizerError",
    "check_options",
    "forward",
    "mlp_layers",
    "model_metrics",
    "normalize",
]
