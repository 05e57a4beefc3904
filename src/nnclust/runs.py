"""Run folders, artifact names, and the resolution of ``model=`` references.

One module owns these names, so that a downstream step receives a run reference
and never rebuilds a file name itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnclust.checkpoint import Checkpoint, CheckpointError, load_checkpoint

# Default FileStorage observer folder of each experiment, relative to the working directory.
RUN_DIRS = {
    "train_model": "training_runs",
    "spectral_cluster_model": "clustering_runs",
    "shuffle_and_cluster": "shuffle_clust_runs",
}
UNPRUNED_MODEL = "unpruned_model.pt"
PRUNED_MODEL = "pruned_model.pt"
TRAINING_CURVES = "training_curves.png"
SORTED_ADJACENCY = "adjacency_by_cluster.png"
LAYERED_DRAWING = "network_by_cluster.png"
SHUFFLE_HISTOGRAM = "shuffle_histogram.png"
# A model reference may point at a run of these experiments; their config names the model.
_FORWARDING_KEY = "model"


class RunReferenceError(ValueError):
    """A ``model=`` reference does not lead to a checkpoint."""


def run_dir(experiment: str, root: str | os.PathLike = ".") -> Path:
    """The default observer folder of `experiment`, created if missing."""
    path = Path(root) / RUN_DIRS[experiment]
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunReferenceError(f"cannot read '{path}': {exc}") from exc


def resolve_model(ref: str | os.PathLike, _seen: tuple = ()) -> Path:
    """The checkpoint file that `ref` designates.

    `ref` is a checkpoint file, a run folder (``training_runs/7``) or a MongoDB run
    (``mongo:<db>:<id>`` or ``mongo:<host>:<port>:<db>:<id>``, fetched from GridFS
    into ``models/mongo/``): a training run gives its pruned checkpoint (its dense
    one when it did not prune); a clustering or shuffle run forwards to the model in
    its own config.
    """
    if ref is None or str(ref).strip() == "":
        raise RunReferenceError("no model given: pass model=<checkpoint file> or model=training_runs/<id>")
    ref_s = str(ref)
    if ref_s.startswith("mongo:"):
        from nnclust.mongo import artifact_from_ref

        return artifact_from_ref(ref_s)
    path = Path(ref_s).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "run.json").is_file() or (path / "config.json").is_file():
            for name in (PRUNED_MODEL, UNPRUNED_MODEL):
                if (path / name).is_file():
                    return path / name
            config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
            upstream = config.get(_FORWARDING_KEY)
            if upstream and path.resolve() not in _seen:
                return resolve_model(upstream, (*_seen, path.resolve()))
            raise RunReferenceError(
                f"run folder '{path}' holds no {PRUNED_MODEL} or {UNPRUNED_MODEL} and names no model; "
                "did its training run fail?"
            )
        raise RunReferenceError(f"'{path}' is a folder but not a run folder (no run.json or config.json)")
    raise RunReferenceError(
        f"model reference '{ref_s}' is neither a checkpoint file nor a run folder; "
        "use model=<file.pt>, model=training_runs/<id> or model=mongo:<db>:<id>"
    )


def load_model_ref(ref: str | os.PathLike) -> tuple[Path, Checkpoint]:
    """Resolve and load a model reference; errors name the file and the fix."""
    path = resolve_model(ref)
    try:
        return path, load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"model={ref}: {exc}") from exc
