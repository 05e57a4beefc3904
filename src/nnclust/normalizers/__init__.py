"""Normal forms of ReLU MLPs: a registry of normalizers (exact, approximate,
data-dependent, crude), the metrics of every derived model, and the evolution tree of
which model was derived from which (rebuilt from the parent links of stored runs)."""

from nnclust.core.lazy import lazy_exports
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

# |w| <= SPARSITY_TOL counts as zero in the `sparsity` metric (the seed's tolerance).
SPARSITY_TOL = 0.01

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
# The metrics need torch; they are imported when first read.
__getattr__, __dir__ = lazy_exports(
    __name__, ["nnclust.normalizers.metrics:METRICS", "nnclust.normalizers.metrics:model_metrics"]
)
