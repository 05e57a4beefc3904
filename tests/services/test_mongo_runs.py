"""Experiments stored in a real MongoDB: read back, loaded into pandas, used as model=,
through the command line, and completed after an outage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import gridfs
import pymongo
import pytest
from sacred.observers import FileStorageObserver

import spectral_cluster_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.storage import mongo
from nnclust.storage.mongo_import import import_run
from nnclust.storage.tables import load_runs
from services import start_mongod, stop_mongod

from .conftest import MOONS, free_port

ROOT = Path(__file__).resolve().parents[2]


def run_with(module, observers, **config):
    return run_in_process(module.ex, observers, config)


@pytest.fixture
def db_name():
    return f"t{uuid.uuid4().hex[:10]}"


def test_run_is_stored_read_back_and_loaded_into_pandas(mongod, db_name, tmp_path):
    spec = f"{mongod.url}/{db_name}"
    folder = tmp_path / "training_runs"
    run = run_with(train_model, [mongo.observer(spec), FileStorageObserver(str(folder))], **MOONS)
    db = pymongo.MongoClient(mongod.url)[db_name]
    doc = db.runs.find_one({"_id": run._id})
    assert doc["status"] == "COMPLETED" and doc["result"] == run.result
    assert doc["config"]["model"]["hidden"] == [10] and doc["config"]["seed"] == 4
    metric = db.metrics.find_one({"run_id": run._id, "name": "test_accuracy"})
    assert len(metric["values"]) == 3 and metric["steps"] == [0, 1, 2]
    artifacts = {a["name"]: a["file_id"] for a in doc["artifacts"]}
    assert set(artifacts) == {"unpruned_model.pt", "pruned_model.pt", "training_curves.png"}
    stored = gridfs.GridFS(db).get(artifacts["pruned_model.pt"]).read()
    assert stored == (folder / "1" / "pruned_model.pt").read_bytes()
    # one interface for both stores
    from_mongo, from_folder = load_runs(spec), load_runs(folder)
    for col in ("result.test_accuracy", "result.sparsity", "config.model.hidden", "metric.test_loss", "status"):
        assert from_mongo.loc[0, col] == from_folder.loc[0, col]
    assert load_runs(spec, where={"seed": 5}).empty and len(load_runs(spec, status="COMPLETED")) == 1


def test_mongo_run_reference_loads_the_checkpoint_from_gridfs(mongod, db_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = f"{mongod.url}/{db_name}"
    run_with(train_model, [mongo.observer(spec), FileStorageObserver("training_runs")], **MOONS)
    ref = f"mongo:127.0.0.1:{mongod.port}:{db_name}:1"
    from_mongo = run_with(spectral_cluster_model, [], model=ref, num_clusters=3, plot=False, seed=1)
    from_folder = run_with(spectral_cluster_model, [], model="training_runs/1", num_clusters=3, plot=False, seed=1)
    assert from_mongo.result["ncut"] == from_folder.result["ncut"]
    cached = os.path.join("models", "mongo", f"127.0.0.1_{mongod.port}", db_name, "1")
    assert from_mongo.result["checkpoint"].startswith(cached)
    with pytest.raises(ValueError, match="no run 7"):
        run_with(spectral_cluster_model, [], model=f"mongo:127.0.0.1:{mongod.port}:{db_name}:7", plot=False)


def test_command_line_stores_into_mongo_without_leaking_credentials(mongod, db_name, tmp_path):
    admin = pymongo.MongoClient(mongod.url).admin
    user = f"u{uuid.uuid4().hex[:6]}"
    admin.command("createUser", user, pwd="s3cret-pw", roles=["root"])
    url = f"mongodb://{user}:s3cret-pw@127.0.0.1:{mongod.port}/{db_name}?authSource=admin"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "src" / "train_model.py"), "with", "dataset.name=moons", "model.hidden=[6]"]
    cmd += ["epochs=2", "progress=False", "seed=2", "-m", url]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = pymongo.MongoClient(mongod.url)[db_name].runs.find_one({})
    assert doc["status"] == "COMPLETED" and doc["config"]["seed"] == 2
    stored = json.dumps(doc, default=str) + (tmp_path / "training_runs" / "1" / "run.json").read_text()
    assert "s3cret-pw" not in stored and "s3cret-pw" not in out.stdout + out.stderr
    # the folder copy is always kept
    assert (tmp_path / "training_runs" / "1" / "pruned_model.pt").is_file() is False  # no pruning configured
    assert (tmp_path / "training_runs" / "1" / "unpruned_model.pt").is_file()


def test_unreachable_mongo_at_start_is_a_clear_command_line_error(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NNCLUST_MONGO": f"127.0.0.1:{port}:nnclust"}
    cmd = [sys.executable, str(ROOT / "src" / "train_model.py"), "with", "dataset.name=moons", "epochs=1"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"cannot reach MongoDB at mongodb://127.0.0.1:{port}" in out.stderr and "make mongo-up" in out.stderr


def test_server_stopped_mid_run_loses_nothing(tmp_path, db_name):
    home = tmp_path / "mongo"
    server = start_mongod(port=free_port(), home=home)
    spec = f"{server.url}/{db_name}"
    folder = tmp_path / "training_runs"
    observers = [mongo.observer(spec), FileStorageObserver(str(folder))]
    config = {**MOONS, "epochs": 40, "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 20}}
    box = {}

    def work():
        box["run"] = run_with(train_model, observers, **config)

    thread = threading.Thread(target=work)
    try:
        thread.start()
        runs = pymongo.MongoClient(server.url, serverSelectionTimeoutMS=2000)[db_name].runs
        deadline = time.time() + 60
        while runs.count_documents({}) == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert runs.find_one({})["status"] == "RUNNING"
        stop_mongod(server)  # the server goes away in the middle of the run
        thread.join(timeout=300)
        assert not thread.is_alive()
        run = box["run"]
        assert json.loads((folder / "1" / "run.json").read_text())["status"] == "COMPLETED"
        server = start_mongod(port=server.port, home=home)  # back, with the same data folder
        db = pymongo.MongoClient(server.url)[db_name]
        assert db.runs.find_one({})["status"] == "RUNNING"  # what reached Mongo before the outage
        run_id = import_run(folder / "1", spec)
        assert db.runs.count_documents({}) == 1 and run_id == run._id
        doc = db.runs.find_one({"_id": run_id})
        assert doc["status"] == "COMPLETED" and doc["result"] == run.result
        assert len(db.metrics.find_one({"run_id": run_id, "name": "test_accuracy"})["values"]) == 40
        names = {a["name"]: a["file_id"] for a in doc["artifacts"]}
        assert gridfs.GridFS(db).get(names["pruned_model.pt"]).read() == (folder / "1" / "pruned_model.pt").read_bytes()
        assert import_run(folder / "1", spec) == run_id  # importing again changes nothing
        assert len(doc["artifacts"]) == len(db.runs.find_one({"_id": run_id})["artifacts"])
    finally:
        thread.join(timeout=300)
        stop_mongod(home)


def test_folder_and_mongo_stores_coexist_in_any_history(mongod, db_name, tmp_path):
    """A folder with runs 1 and 2 next to a fresh database: the folder keeps its own
    numbering (no FileExistsError, nothing lost), and each copy names the other."""
    from nnclust.experiments.sacred_setup import RunFolderObserver

    spec = f"{mongod.url}/{db_name}"
    folder = tmp_path / "training_runs"
    for _ in range(2):
        run_with(train_model, [RunFolderObserver(str(folder))], **MOONS)
    both = run_with(train_model, [RunFolderObserver(str(folder)), mongo.observer(spec)], **MOONS)
    db = pymongo.MongoClient(mongod.url)[db_name]
    doc = db.runs.find_one({"_id": both._id})
    assert both._id == 1 and doc["status"] == "COMPLETED"
    stored = json.loads((folder / "3" / "run.json").read_text())
    assert stored["status"] == "COMPLETED" and stored["result"] == doc["result"]
    stores = {"folder": {"path": str(folder / "3"), "id": 3}, "mongo": {"db": db_name, "id": 1}}
    info = json.loads((folder / "3" / "info.json").read_text())  # the folder store keeps info apart
    assert doc["info"]["stores"] == stores and info["stores"] == stores
    # and the other way round: a database ahead of the folder
    other = tmp_path / "fresh_runs"
    again = run_with(train_model, [RunFolderObserver(str(other)), mongo.observer(spec)], **MOONS)
    assert again._id == 2 and (other / "1" / "run.json").is_file()
    assert db.runs.find_one({"_id": 2})["info"]["stores"]["folder"]["id"] == 1


def test_mongo_import_command_writes_to_the_server_of_nnclust_mongo(mongod, db_name, tmp_path):
    folder = tmp_path / "training_runs"
    run_with(train_model, [FileStorageObserver(str(folder))], **MOONS)
    spec = f"{mongod.url}/{db_name}"
    command = [sys.executable, "-m", "nnclust.storage.mongo_import", str(folder / "1")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    refused = subprocess.run(command, capture_output=True, text=True, env={**env, mongo.ENV_VAR: ""}, timeout=60)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1 and "pass -m" in refused.stderr
    done = subprocess.run(command, capture_output=True, text=True, env={**env, mongo.ENV_VAR: spec}, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = pymongo.MongoClient(mongod.url)[db_name].runs.find_one({"_id": 1})
    assert doc["status"] == "COMPLETED" and doc["config"]["seed"] == MOONS["seed"]
    assert {a["name"] for a in doc["artifacts"]} == {"unpruned_model.pt", "pruned_model.pt", "training_curves.png"}
