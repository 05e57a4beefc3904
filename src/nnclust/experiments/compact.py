"""Compact a pruned MLP (dead units out, constants folded into biases), as a dense or CSR
model, and measure what it gains: the body of ``src/compact_model.py``."""

from __future__ import annotations

from nnclust.core import seeding
from nnclust.core.config import plain
from nnclust.core.constraints import Check, Interval, Options
from nnclust.data import load_dataset
from nnclust.experiments import cluster, train
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.sparse import FORMATS
from nnclust.storage import paths
from nnclust.storage.lineage import data_source, parent_record, sha256
from nnclust.storage.refs import load_model_ref

__all__ = ["CONSTRAINTS", "DTYPES", "compact_job"]

DTYPES = ("float32", "float64")  # names of torch dtypes
CONSTRAINTS = {
    "model": cluster.CONSTRAINTS["model"],
    "format": Options(FORMATS),
    "dtype": Options(DTYPES),
    "dataset": Check(
        lambda d: d is None or (isinstance(d, dict) and isinstance(d.get("name"), str)),
        'None (the model\'s training data) or a dataset spec such as {"name": "digits"}',
    ),
    "batch_size": Interval(1, None, integer=True),
    "repeats": Interval(1, None, integer=True),
    "device": train.CONSTRAINTS["device"],
}


def _test_data(model: str, dataset: dict | None, data_root: str, seed: int):
    """(data source, dataset) of the model's test data: the split its training run (or the
    run it derives from) recorded, or `dataset` split with `seed` when given."""
    if dataset is not None:
        source = {"dataset": dataset, "data_root": data_root, "split_seed": seeding.int_seed(seed, "data_split")}
    else:
        source = data_source(model)
        if source is None:
            raise ValueError(
                f"model={model} does not record the data it was trained on (a plain file, or a run from before "
                'runs recorded it), so its test split is unknown; name the data with dataset={"name": ...}'
            )
    spec = dict(source["dataset"])
    return source, load_dataset(spec.pop("name"), root=source["data_root"], seed=source["split_seed"], **spec)


def compact_job(
    run,
    seed: int,
    model: str,
    format: str = "dense",
    dtype: str = "float32",
    dataset: dict | None = None,
    data_root: str = "datasets",
    batch_size: int = 256,
    repeats: int = 20,
    device: str = "cpu",
) -> dict:
    """Compact `model` and store it as the artifact ``compacted_model.pt`` (CSR weights
    for ``format="csr"``). The run's info records the parent (reference, run, sha256),
    ``normalizer`` ``compact:<format>``, the new checkpoint's sha256 and the data source,
    as normalize runs do, so the evolution tree shows compacted models.

    Result: hidden units and nonzero parameters (weights and biases, batch norm folded)
    before and after; `max_output_change` = max |after - before| / max |before| over the
    logits of the model's test data; accuracy before and after; `speedup` = median time
    of the original model over that of the compacted one on a batch of `batch_size` test
    inputs (`repeats` runs each); `memory_ratio` = bytes of the original model's tensors
    over those of the compacted one.
    """
    # Imported here, not at the top, so that the script's print_config and --help need
    # no torch (benchmarks/startup.py times them).
    import torch

    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.nets.layers import mlp_from_layers
    from nnclust.sparse import compact, mlp_layers, model_nbytes, output_accuracy, outputs, time_inference

    dataset = plain(dataset)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    path, ckpt = load_model_ref(model)
    result = compact(ckpt, format, torch_dtype, device)
    if ckpt.architecture is not None:
        original = ckpt.build_model()
    else:  # a plain state dict: the same function, batch norm folded
        original, _ = mlp_from_layers(mlp_layers(ckpt))
    original.to(device, torch_dtype).eval()
    source, data = _test_data(model, dataset, data_root, seed)
    x, y = data.x_test, data.y_test
    before, after = outputs(original, x).double(), outputs(result.model, x).double()
    scale = before.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    batch = x[torch.arange(batch_size) % len(x)].to(device, torch_dtype)
    time_before = time_inference(original, batch, repeats)
    time_after = time_inference(result.model, batch, repeats)
    bytes_before, bytes_after = model_nbytes(original), model_nbytes(result.model)

    tmp = scratch("compact-")
    save_checkpoint(tmp / paths.COMPACTED_MODEL, result.model.cpu(), result.architecture, result.masks)
    add_artifact(run, tmp, paths.COMPACTED_MODEL)
    info = getattr(run, "info", None)
    if info is not None:  # lineage as the normalizers record it, so the evolution tree shows this model
        info["parent"] = parent_record(model, path)
        info["normalizer"] = {"name": f"compact:{format}", "options": {"dtype": dtype}}
        info["checkpoint_sha256"] = sha256(tmp / paths.COMPACTED_MODEL)
        info["data"] = source
    return {
        "format": format,
        "units_before": result.units_before,
        "units_after": result.units_after,
        "hidden_before": [lay.n_out for lay in result.layers_before[:-1]],
        "hidden_after": [lay.n_out for lay in result.removal.layers[:-1]],
        "params_before": result.params_before,
        "params_after": result.params_after,
        "max_output_change": float((after - before).abs().max() / scale),
        "accuracy_before": output_accuracy(before, y),
        "accuracy_after": output_accuracy(after, y),
        "speedup": time_before / time_after,
        "time_before_s": time_before,
        "time_after_s": time_after,
        "batch_size": batch_size,
        "memory_ratio": bytes_before / bytes_after,
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "parent": str(model),
        "checkpoint": paths.COMPACTED_MODEL,
    }
