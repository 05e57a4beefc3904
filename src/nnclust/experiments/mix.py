"""Mix models of one architecture into a new checkpoint: the body of ``src/mix_models.py``.

The run records its lineage as every derived model's does (`storage.lineage.derived_info`):
``parents`` (every model's reference, run and checkpoint sha256), ``parent`` (the
first, so the evolution tree of `nnclust.normalizers.tree` shows the mixed model under
it, the edge labelled ``mix:<method>``), ``checkpoint_sha256`` and ``data``, the data
source of the parents, so that normalizing or compacting the mix measures it on the
same data.
"""

from __future__ import annotations

from nnclust.core.constraints import Check, Interval, Options
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.experiments.normalize import SPARSITY_TOL, float64_outputs, load_source, module_metrics, probe_batch
from nnclust.sparse import MIXERS
from nnclust.storage import paths
from nnclust.storage.lineage import data_source, derived_info, parent_record, sha256
from nnclust.storage.refs import load_model_ref

CONSTRAINTS = {
    "models": Check(lambda m: isinstance(m, list) and len(m) >= 2 and all(isinstance(x, str) for x in m),
                    "a list of at least two model references (files or run folders)"),
    "method": Options(MIXERS),
    "keep": Interval(0, 1, closed="right"),
}  # fmt: skip

# Inputs of the Gaussian probe batch when no parent records its data.
PROBE_SIZE = 256


def mix_job(run, models: list, method: str, keep: float, seed: int = 0) -> dict:
    """Mix `models` with `method` and store the result as ``mixed_model.pt``.

    The mix and each parent are measured on the test split of the parents' data (of
    the first parent that records its data source, when they differ; a seeded Gaussian
    batch, with data metrics None, when none does): ``metrics`` of the mix, ``parent_metrics``
    of the first parent, ``parents_metrics`` of each, and ``max_output_change`` /
    ``relative_output_change`` of the mix against the first parent (float64 outputs).
    """
    # Imported here, not at the top, so that the script's print_config and --help need
    # no torch (benchmarks/startup.py times them).
    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.sparse.mixing import MixError, mix

    loaded = [load_model_ref(m) for m in models]
    archs = [ckpt.architecture for _, ckpt in loaded]
    if any(a != archs[0] for a in archs[1:]):
        raise MixError(f"the models have different architectures: {archs}")
    state = mix([ckpt.state_dict for _, ckpt in loaded], method, keep=keep)
    first = loaded[0][1]
    model = first.build_model() if first.architecture is not None else None
    if model is None:
        raise MixError(f"model={models[0]} is a plain state dict; mixing writes an nnclust checkpoint and needs one")
    model.load_state_dict(state)
    model.eval()
    tmp = scratch("mix-")
    save_checkpoint(tmp / paths.MIXED_MODEL, model, first.architecture)
    add_artifact(run, tmp, paths.MIXED_MODEL)

    input_shape = tuple(first.architecture["input_shape"])
    sources = [data_source(m) for m in models]
    source = next((s for s in sources if s is not None), None)
    x, y, objective = probe_batch(load_source(source, input_shape), input_shape, seed, PROBE_SIZE)
    parent_nets = [ckpt.build_model().eval() for _, ckpt in loaded]
    outs = [float64_outputs(net, x) for net in parent_nets]
    mixed_out = float64_outputs(model, x)
    change = float((mixed_out - outs[0]).abs().max().item())
    parents_metrics = [
        module_metrics(net, out, y, objective, SPARSITY_TOL, ckpt.masks)
        for net, out, (_, ckpt) in zip(parent_nets, outs, loaded)
    ]

    parents = [parent_record(m, path) for m, (path, _) in zip(models, loaded)]
    info = getattr(run, "info", None)
    if info is not None:
        mixing = {"name": f"mix:{method}", "options": {"keep": keep, "with": [str(m) for m in models[1:]]}}
        info.update(derived_info(parents[0], mixing, sha256(tmp / paths.MIXED_MODEL), source, parents))
    return {
        "method": method,
        "parents": [str(m) for m in models],
        "checkpoint": paths.MIXED_MODEL,
        "metrics": module_metrics(model, mixed_out, y, objective, SPARSITY_TOL),
        "parent_metrics": parents_metrics[0],
        "parents_metrics": parents_metrics,
        "max_output_change": change,
        "relative_output_change": change / max(float(outs[0].abs().max().item()), 1e-300),
    }
