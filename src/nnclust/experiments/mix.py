"""Mix models of one architecture into a new checkpoint: the body of ``src/mix_models.py``.

The run records its parents in its info (``parents``: every model's reference and
checkpoint sha256; ``parent``: the first, so the evolution tree of
`nnclust.normalizers.tree` shows the mixed model under it, the edge labelled
``mix:<method>``).
"""

from __future__ import annotations

from nnclust.core.constraints import Check, Interval, Options
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.sparse import MIXERS
from nnclust.storage import paths
from nnclust.storage.lineage import parent_record, sha256
from nnclust.storage.refs import load_model_ref

CONSTRAINTS = {
    "models": Check(lambda m: isinstance(m, list) and len(m) >= 2 and all(isinstance(x, str) for x in m),
                    "a list of at least two model references (files or run folders)"),
    "method": Options(MIXERS),
    "keep": Interval(0, 1, closed="right"),
}  # fmt: skip


def mix_job(run, models: list, method: str, keep: float) -> dict:
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
    tmp = scratch("mix-")
    save_checkpoint(tmp / paths.MIXED_MODEL, model, first.architecture)
    add_artifact(run, tmp, paths.MIXED_MODEL)
    parents = [parent_record(m, path) for m, (path, _) in zip(models, loaded)]
    info = getattr(run, "info", None)
    if info is not None:
        info["parents"] = parents
        info["parent"] = parents[0]
        info["normalizer"] = {"name": f"mix:{method}", "options": {"keep": keep, "with": [str(m) for m in models[1:]]}}
        info["checkpoint_sha256"] = sha256(tmp / paths.MIXED_MODEL)
    return {"method": method, "parents": [str(m) for m in models], "checkpoint": paths.MIXED_MODEL}
