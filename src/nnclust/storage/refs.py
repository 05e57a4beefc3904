"""The resolution of ``model=`` references: checkpoint files, run folders, MongoDB runs."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from nnclust.storage import mongo, records
from nnclust.storage.paths import MODEL_ARTIFACTS, RESUME_STATE

if TYPE_CHECKING:
    from nnclust.nets.checkpoint import Checkpoint

# Beside each cached GridFS download: which file it is and the sha256 of its bytes.
CACHE_NOTE = ".source.json"
# A model reference may point at a run of these experiments; their config names the model.
_FORWARDING_KEY = "model"


class RunReferenceError(ValueError):
    """A ``model=`` reference does not lead to a checkpoint."""


def _read_json(path: Path) -> dict:
    try:
        return records.read_json(path)
    except records.DamagedRecordError as exc:
        raise RunReferenceError(str(exc)) from None


def completed_run(path: Path, ref: str, key: str = "model") -> None:
    """Raise unless the run folder `path` records a COMPLETED run: a killed, failed or
    still running run may hold checkpoints that are not its final ones (or half-copied)."""
    if not (path / records.RUN).is_file():
        raise RunReferenceError(f"{key}={ref}: '{path}' has no run.json, so whether its run completed is unknown")
    try:
        status = records.status(path)
    except records.DamagedRecordError as exc:
        raise RunReferenceError(f"{key}={ref}: {exc}") from None
    if status == "COMPLETED":
        return
    hint = f"Point {key}= at a completed run"
    if (path / RESUME_STATE).is_file():
        hint += f", or finish this one first: python src/train_model.py with resume={path}"
    elif status == "RUNNING":
        hint += " (a run killed outright stays RUNNING: `python -m nnclust.storage.tables <its store> --mark-died`)"
    raise RunReferenceError(
        f"run folder '{path}' holds no checkpoint of a finished run: its run is {status or 'without a status'}, "
        f"and a model is taken from a run only when it completes. {hint}."
    )


def resolve_model(ref: str | os.PathLike, _seen: tuple = ()) -> Path:
    """The checkpoint file that `ref` designates.

    `ref` is a checkpoint file, a run folder (``training_runs/7``) or a MongoDB run
    (``mongo:<db>:<id>`` or ``mongo:<host>:<port>:<db>:<id>``, fetched from GridFS
    into ``models/mongo/``): a training run gives its pruned checkpoint (its dense
    one when it did not prune), a normalize run (``normalized_models/3``) its derived
    checkpoint; a clustering or shuffle run forwards to the model in
    its own config. A run folder must record a COMPLETED run.
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
        if (path / records.RUN).is_file() or (path / records.CONFIG).is_file():
            completed_run(path, ref_s)
            for name in MODEL_ARTIFACTS:
                if (path / name).is_file():
                    return path / name
            config = _read_json(path / records.CONFIG) if (path / records.CONFIG).is_file() else {}
            upstream = config.get(_FORWARDING_KEY)
            if isinstance(upstream, str) and upstream and path.resolve() not in _seen:
                return resolve_model(upstream, (*_seen, path.resolve()))
            # A run with several checkpoints (a fixed_param weight-symmetry run keeps one
            # per depth) names none of them for you: the message lists them.
            others = sorted(p.name for p in path.glob("*.pt") if p.name != RESUME_STATE)
            if others:
                raise RunReferenceError(
                    f"run folder '{path}' holds {', '.join(others)} but no single model checkpoint; "
                    f"pass one of them as a file, e.g. model={path / others[0]}"
                )
            raise RunReferenceError(
                f"run folder '{path}' holds no checkpoint ({' or '.join(MODEL_ARTIFACTS)}) and names no model; "
                "point model= at a training, normalize, compact or mix run"
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


def _store_of(ref: str) -> tuple[str, str, int]:
    """(store spec, database name, run id) of a ``mongo:`` reference."""
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
    return spec, db_name, run_id


def mongo_run(ref: str):
    """(database, run document) of ``mongo:<db>:<run id>`` (store from $NNCLUST_MONGO or
    127.0.0.1:27017) or ``mongo:<host>:<port>:<db>:<run id>``."""
    spec, db_name, run_id = _store_of(ref)
    db = mongo.connect(spec)
    run = db.runs.find_one({"_id": run_id})
    if run is None:
        raise RunReferenceError(f"no run {run_id} in MongoDB database {db_name!r}")
    return db, run


def server_key(spec: str) -> str:
    """The server of a store spec as a folder name (``127.0.0.1_27017``), without credentials."""
    url, _ = mongo.parse(spec)
    hosts = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    return re.sub(r"[^\w.\-]", "_", hosts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached(target: Path, file_id) -> bool:
    """Whether `target` is the GridFS file `file_id`, whole: the note written beside it
    at download names that file and the sha256 of its bytes, and both still match."""
    note = target.with_name(target.name + CACHE_NOTE)
    if not (target.is_file() and note.is_file()):
        return False
    try:
        recorded = records.read_json(note)
    except records.DamagedRecordError:
        return False
    return recorded.get("file_id") == str(file_id) and recorded.get("sha256") == _sha256(target)


def artifact_from_ref(ref: str, cache: str | os.PathLike = "models/mongo") -> Path:
    """Fetch a run's checkpoint from GridFS: ``mongo:<db>:<run id>`` (store from
    $NNCLUST_MONGO or 127.0.0.1:27017) or ``mongo:<host>:<port>:<db>:<run id>``.

    The copy is cached under ``<cache>/<host>_<port>/<db>/<run id>/``, and used again
    only while it is the file the run now names, byte for byte (another server, a
    reset database or a damaged copy is fetched anew)."""
    import gridfs

    spec, _, _ = _store_of(ref)
    db, run = mongo_run(ref)
    db_name, run_id = db.name, run["_id"]
    artifacts = {a.get("name"): a.get("file_id") for a in run.get("artifacts") or [] if isinstance(a, dict)}
    for name in MODEL_ARTIFACTS:
        if name in artifacts:
            target = Path(cache) / server_key(spec) / db_name / str(run_id) / name
            if not _cached(target, artifacts[name]):
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    data = gridfs.GridFS(db).get(artifacts[name]).read()
                except gridfs.errors.NoFile:
                    raise RunReferenceError(
                        f"MongoDB run {run_id} in {db_name!r} names artifact {name!r}, but GridFS does not hold it; "
                        "upload the run again with `python -m nnclust.storage.mongo_import <its run folder>`"
                    ) from None
                records.write_bytes(target, data)
                note = {"file_id": str(artifacts[name]), "sha256": hashlib.sha256(data).hexdigest()}
                records.write_json(target.with_name(target.name + CACHE_NOTE), note)
            return target
    upstream = (run.get("config") or {}).get("model")
    if upstream:
        return resolve_model(upstream)
    raise RunReferenceError(f"MongoDB run {run_id} in {db_name!r} has no checkpoint artifact and names no model")
