"""Sparse models and model surgery (Sparana): CSR execution, compaction (dead units out,
bias folded), the model functions for dense and sparse models alike; parameter
selection, model mixing, the vulcanizer and the tracker (`nnclust.sparse.selection`,
`.mixing`, `.vulcanizer`, `.tracker`)."""

from nnclust.core.lazy import Lazy, lazy_exports
from nnclust.core.registry import Registry

# Defined here, with nothing heavy imported, because config checks read them: the
# formats a compacted model is stored in (``compact(..., format)``), and the methods
# of `nnclust.sparse.mixing.mix`.
FORMATS = ("dense", "csr")
MIXERS = Registry(
    "mixing method",
    {
        name: Lazy(f"nnclust.sparse.mixing:{name}")
        for name in ("average", "weighted", "rank_and_zero", "replace_by_nonzero")
    },
)

__all__ = [
    "FORMATS",
    "MIXERS",
    "CSRLinear",
    "Compaction",
    "SparseConversionError",
    "SparseMLP",
    "accuracy",
    "compact",
    "csr_from_dense",
    "hidden_units",
    "mlp_layers",
    "model_nbytes",
    "nonzero_parameters",
    "output_accuracy",
    "outputs",
    "partial_outputs",
    "peak_inference_memory",
    "time_inference",
    "to_csr",
    "top1_top2_ratio",
    "top_k_accuracy",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.sparse.compaction:Compaction",
        "nnclust.sparse.compaction:compact",
        "nnclust.sparse.compaction:hidden_units",
        "nnclust.sparse.compaction:nonzero_parameters",
        "nnclust.sparse.csr:CSRLinear",
        "nnclust.sparse.csr:SparseConversionError",
        "nnclust.sparse.csr:SparseMLP",
        "nnclust.sparse.csr:csr_from_dense",
        "nnclust.sparse.csr:mlp_layers",
        "nnclust.sparse.csr:to_csr",
        "nnclust.sparse.functions:accuracy",
        "nnclust.sparse.functions:output_accuracy",
        "nnclust.sparse.functions:outputs",
        "nnclust.sparse.functions:partial_outputs",
        "nnclust.sparse.functions:top1_top2_ratio",
        "nnclust.sparse.functions:top_k_accuracy",
        "nnclust.sparse.measure:model_nbytes",
        "nnclust.sparse.measure:peak_inference_memory",
        "nnclust.sparse.measure:time_inference",
    ],
)
