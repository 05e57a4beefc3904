"""A MongoDB outage in the middle of a run: the record that reaches MongoDB is marked
as an incomplete copy, the run prints the command that repairs it, and that command
makes the copy whole."""

from __future__ import annotations

import uuid

import pymongo
import pymongo.errors
import pytest

import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.storage import mongo, paths, records
from nnclust.storage.mongo_import import import_run
from nnclust.storage.tables import load_runs

from .conftest import MOONS


class _Outage:
    """Stands in for a collection or GridFS whose `method` fails the first `times` calls
    that `when(kwargs)` picks."""

    def __init__(self, real, method: str, times: int, when=lambda kwargs: True):
        self.real, self.method, self.left, self.when = real, method, times, when

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if name != self.method:
            return attr

        def call(*args, **kwargs):
            if self.left > 0 and self.when(kwargs):
                self.left -= 1
                raise pymongo.errors.ServerSelectionTimeoutError("server went away")
            return attr(*args, **kwargs)

        return call


@pytest.mark.parametrize("lost", ["metrics", "artifact"])
def test_a_record_that_lost_part_of_the_run_is_marked_and_repaired(lost, mongod, tmp_path, capsys):
    spec = f"{mongod.url}/t{uuid.uuid4().hex[:10]}"
    folder = tmp_path / "training_runs"
    obs = mongo.observer(spec)
    if lost == "metrics":
        obs.metrics = _Outage(obs.metrics, "update_one", 1)  # the end-of-run metrics: every point
    else:
        # the dense checkpoint (the sources saved at the start still reach GridFS)
        obs.fs = _Outage(obs.fs, "put", 1, lambda kwargs: kwargs.get("filename", "").endswith(paths.UNPRUNED_MODEL))
    run = run_in_process(train_model.ex, [obs, RunFolderObserver(str(folder))], MOONS)
    db = mongo.connect(spec)
    doc = db.runs.find_one({"_id": run._id})
    mark = doc["info"][mongo.INCOMPLETE_KEY]
    repair = f"python -m nnclust.storage.mongo_import -m {spec} {folder / '1'}"
    assert doc["status"] == "COMPLETED" and mark["repair"] == repair
    assert repair in capsys.readouterr().err
    assert load_runs(spec).loc[0, "info.incomplete_copy.repair"] == repair  # the table shows it too
    stored = sum(len(m["values"]) for m in db.metrics.find({"run_id": run._id}))
    logged = sum(len(m["values"]) for m in records.read_metrics(folder / "1").values())
    assert stored + mark["metric_points"] == logged  # every point is in MongoDB or counted as lost
    if lost == "metrics":
        assert mark["metric_points"] > 0 and mark["artifacts"] == []
    else:  # from the failed upload on, nothing more is sent
        assert mark["artifacts"] == [paths.UNPRUNED_MODEL, paths.PRUNED_MODEL, paths.TRAINING_CURVES]
        assert not {a["name"] for a in doc["artifacts"]} & set(mark["artifacts"])

    assert import_run(folder / "1", spec) == run._id
    doc = db.runs.find_one({"_id": run._id})
    assert mongo.INCOMPLETE_KEY not in doc["info"]
    assert {paths.UNPRUNED_MODEL, paths.PRUNED_MODEL} <= {a["name"] for a in doc["artifacts"]}
    assert len(db.metrics.find_one({"run_id": run._id, "name": "test_accuracy"})["values"]) == MOONS["epochs"]
    pymongo.MongoClient(mongod.url).drop_database(db.name)
