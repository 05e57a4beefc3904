"""The resolution of ``model=`` references: checkpoint files, run folders, MongoDB runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from nnclust.storage import mongo
from nnclust.storage.paths import MODEL_ARTIFACTS

if TYPE_CHECKING:
    from nnclust.nets.checkpoint import Checkpoint

# A model reference may point at a run of these experiments; their config names the model.
_FORWARDING_KEY = "model"


class RunReferenceError(ValueError):
    """A ``model=`` reference does not lead to a checkpoint."""


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
    one when it did not prune), a normalize run (``normalized_models/3``) its derived
    checkpoint; a clustering or shuffle run forwards to the model in
    its own config.
    """
    if ref is None or str(ref).strip() == "":
        raise RunReferenceError("no model given: pass model=<checkpoint file> or model=training_runs/<id>")
    ref_s = str(ref)
    if ref_s.startswith("mongo:"):
        return artifact_from_ref(ref_s)
    path = Path(ref_s).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "run.json").is_file() or (path / "config.json").is_file():
            for name in MODEL_ARTIFACTS:
                if (path / name).is_file():
                    return path / name
            config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
            upstream = config.get(_FORWARDING_KEY)
            if isinstance(upstream, str) and upstream and path.resolve() not in _seen:
                return resolve_model(upstream, (*_seen, path.resolve()))
            run = _read_json(path / "run.json") if (path / "run.json").is_file() else {}
            status = run.get("status", "unknown")
            raise RunReferenceError(
                f"run folder '{path}' holds no checkpoint ({' or '.join(MODEL_ARTIFACTS)}): its run is {status}, and a "
                "training run stores its checkpoints only when it completes. Point model= at a completed run "
                "(or resume this one)."
            )
        raise RunReferenceError(f"'{path}' is a folder but not a run folder (no run.json or config.json)")
    raise RunReferenceError(
        f"model reference '{ref_s}' is neither a checkpoint file nor a run folder; "
        "use model=<file.pt>, model=training_runs/<id> or model=mongo:<db>:<id>"
    )


def load_model_ref(ref: str | os.PathLike) -> tuple[Path, Checkpoint]:
    """Resolve and load a model reference; errors name the file and the fix."""
    # Imported here: resolving references (config checks, lineage) needs no torch.
    from nnclust.nets.checkpoint import CheckpointError, load_checkpoint

    path = resolve_model(ref)
    try:
        return path, load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"model={ref}: {exc}") from exc


def mongo_run(ref: str):
    """(database, run document) of ``mongo:<db>:<run id>`` (store from $NNCLUST_MONGO or
    127.0.0.1:27017) or ``mongo:<host>:<port>:<db>:<run id>``."""
    parts = ref.split(":")[1:]
    if len(parts) == 2:
        store = mongo.store_from_env() or f"127.0.0.1:27017:{parts[0]}"
        url, _ = mongo.parse(store)
        db_name, run_id = parts
        spec = f"{url.rstrip('/')}/{db_name}"
    elif len(parts) == 4:
        spec, run_id, db_name = ":".join(parts[:3]), parts[3], parts[2]
    else:
        raise ValueError(f"cannot read {ref!r}; use mongo:<db>:<run id> or mongo:<host>:<port>:<db>:<run id>")
    try:
        run_id = int(run_id)
    except ValueError:
        raise ValueError(f"run id in {ref!r} must be an integer") from None
    db = mongo.connect(spec)
    run = db.runs.find_one({"_id": run_id})
    if run is None:
        raise RunReferenceError(f"no run {run_id} in MongoDB database {db_name!r}")
    return db, run


def artifact_from_ref(ref: str, cache: str | os.PathLike = "models/mongo") -> Path:
    """Fetch a run's checkpoint from GridFS: ``mongo:<db>:<run id>`` (store from
    $NNCLUST_MONGO or 127.0.0.1:27017) or ``mongo:<host>:<port>:<db>:<run id>``."""
    import gridfs

    db, run = mongo_run(ref)
    db_name, run_id = db.name, run["_id"]
    artifacts = {a["name"]: a["file_id"] for a in run.get("artifacts", [])}
    for name in MODEL_ARTIFACTS:
        if name in artifacts:
            target = Path(cache) / db_name / str(run_id) / name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".part")
                tmp.write_bytes(gridfs.GridFS(db).get(artifacts[name]).read())
                tmp.replace(target)
            return target
    upstream = (run.get("config") or {}).get("model")
    if upstream:
        return resolve_model(upstream)
    raise RunReferenceError(f"MongoDB run {run_id} in {db_name!r} has no checkpoint artifact and names no model")
