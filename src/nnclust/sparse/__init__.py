"""Sparse models and model surgery (Sparana): CSR execution, compaction (dead units out,
bias folded), the model functions for dense and sparse models alike; parameter
selection, model mixing, the vulcanizer and the tracker (`nnclust.sparse.selection`,
`.mixing`, `.vulcanizer`, `.tracker`)."""

from nnclust.sparse.compaction import FORMATS, Compaction, compact, hidden_units, nonzero_parameters
from nnclust.sparse.csr import CSRLinear, SparseConversionError, SparseMLP, csr_from_dense, mlp_layers, to_csr
from nnclust.sparse.functions import (
    accuracy,
    output_accuracy,
    outputs,
    partial_outputs,
    top1_top2_ratio,
    top_k_accuracy,
)
from nnclust.sparse.measure import model_nbytes, peak_inference_memory, time_inference

__all__ = [
    "FORMATS",
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
