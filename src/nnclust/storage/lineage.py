"""Lineage of derived models: where a model came from and what it was trained on.

Derived-model runs (normalize, compact, mix) record ``parent`` (the reference, its run,
and the sha256 of the parent checkpoint), their own ``checkpoint_sha256``, and ``data``
(the data source of the training run), so that trees and probes are rebuilt from the
run store alone. `derived_info` builds these entries as plain JSON values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nnclust.storage import records
from nnclust.storage.refs import mongo_run


def sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run_folder_of(ref: str) -> Path | None:
    """The run folder a reference names: the folder itself, or the folder holding the file."""
    p = Path(ref)
    for cand in (p, p.parent):
        if cand.is_dir() and (cand / "run.json").is_file():
            return cand
    return None


def _source_from(info: dict) -> dict | None:
    # Training and normalize runs record their data source in info["data"]. Runs from
    # before that have none: their split seed was Sacred's per-function seed, which the
    # config does not hold, so guessing it would mix training data into the probe.
    data = info.get("data")
    if data and not isinstance(data, dict):
        raise records.DamagedRecordError(f"the run's info 'data' is a {type(data).__name__}, not a data source")
    return dict(data) if data else None


def data_source(ref: str) -> dict | None:
    """Where the model `ref` was trained: ``{"dataset": spec, "data_root": str,
    "split_seed": int}`` from the ``data`` info of its run (training or normalize), or
    None for a plain file or a run without it."""
    ref = str(ref)
    if ref.startswith("mongo:"):
        _, doc = mongo_run(ref)
        return _source_from(doc.get("info") or {})
    folder = _run_folder_of(ref)
    if folder is None:
        return None
    # A folder store keeps a run's info in info.json (MongoDB in the run document).
    return _source_from(records.read_info(folder))


def parent_run(ref: str) -> str | None:
    """The run a model reference lies in (its folder, or the mongo reference), or None."""
    if ref.startswith("mongo:"):
        return ref
    folder = _run_folder_of(ref)
    return None if folder is None else str(folder)


def parent_record(ref, path) -> dict:
    """The ``parent`` info of a model derived from `ref` (resolved to checkpoint `path`)."""
    return {"ref": str(ref), "run": parent_run(str(ref)), "sha256": sha256(path)}


def derived_info(
    parent: dict, normalizer: dict, checkpoint_sha256: str, data: dict | None, parents: list[dict] | None = None
) -> dict:
    """The lineage entries of a derived model's run info: ``parent``, ``normalizer``
    (name and options), ``checkpoint_sha256``, ``data`` and, for a model of several
    parents, ``parents`` (the first of them is ``parent``).

    Every value is a fresh copy made through JSON. Sacred stores the info with
    jsonpickle, which writes a Python object met a second time as a back-reference
    (``{"py/id": 2}``) instead of its contents; a run store must hold plain references
    that any reader (the evolution tree, pandas, MongoDB queries) can follow.
    """
    info = {"parent": parent, "normalizer": normalizer, "checkpoint_sha256": checkpoint_sha256, "data": data}
    if parents is not None:
        info["parents"] = parents
    return json.loads(json.dumps(info))
