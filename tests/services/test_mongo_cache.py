"""model=mongo:... downloads are cached per server, database and run, and checked on
every use: a reset database, another server or a damaged copy is fetched anew."""

from __future__ import annotations

import uuid

import gridfs
import pymongo
import pytest
import torch

from nnclust.nets.checkpoint import load_checkpoint, save_checkpoint
from nnclust.storage import paths
from nnclust.storage.refs import RunReferenceError, artifact_from_ref

ARCH = {"model": {"name": "mlp", "hidden": [4]}, "input_shape": [2], "num_classes": 2}


def _store_run(db, tmp_path, fill: float) -> None:
    """Run 1 of `db`, holding a checkpoint whose weights are all `fill`."""
    model = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(model.weight, fill)
    path = save_checkpoint(tmp_path / f"{fill}.pt", model, ARCH)
    file_id = gridfs.GridFS(db).put(path.read_bytes(), filename="artifact://runs/1/unpruned_model.pt")
    db.runs.replace_one({"_id": 1}, {"_id": 1, "artifacts": [{"name": paths.UNPRUNED_MODEL, "file_id": file_id}]},
                        upsert=True)  # fmt: skip


def _weight(path) -> float:
    return float(load_checkpoint(path).state_dict["weight"][0, 0])


def test_a_reset_database_and_a_damaged_copy_are_fetched_anew(mongod, tmp_path):
    name = f"cache_{uuid.uuid4().hex[:8]}"
    client = pymongo.MongoClient(mongod.url)
    ref, cache = f"mongo:127.0.0.1:{mongod.port}:{name}:1", tmp_path / "cache"
    _store_run(client[name], tmp_path, 1.0)
    first = artifact_from_ref(ref, cache)
    assert _weight(first) == 1.0 and f"127.0.0.1_{mongod.port}" in first.parts
    client.drop_database(name)  # a reset: run 1 is now another run
    _store_run(client[name], tmp_path, 2.0)
    assert _weight(artifact_from_ref(ref, cache)) == 2.0
    first.write_bytes(first.read_bytes()[:-10])  # a damaged cached copy
    assert _weight(artifact_from_ref(ref, cache)) == 2.0
    client[name].fs.files.delete_many({})
    client[name].fs.chunks.delete_many({})
    with pytest.raises(RunReferenceError, match="GridFS does not hold it.*mongo_import"):
        artifact_from_ref(ref, tmp_path / "other_cache")
    client.drop_database(name)


def test_two_servers_with_the_same_database_and_run_id_stay_apart(mongod, tmp_path):
    from services import start_mongod, stop_mongod

    from .conftest import free_port

    other = start_mongod(port=free_port(), home=tmp_path / "other")
    try:
        name, cache = f"cache_{uuid.uuid4().hex[:8]}", tmp_path / "cache"
        _store_run(pymongo.MongoClient(mongod.url)[name], tmp_path, 1.0)
        _store_run(pymongo.MongoClient(other.url)[name], tmp_path, 3.0)
        assert _weight(artifact_from_ref(f"mongo:127.0.0.1:{mongod.port}:{name}:1", cache)) == 1.0
        assert _weight(artifact_from_ref(f"mongo:127.0.0.1:{other.port}:{name}:1", cache)) == 3.0
        assert _weight(artifact_from_ref(f"mongo:127.0.0.1:{mongod.port}:{name}:1", cache)) == 1.0
    finally:
        stop_mongod(other)
