"""Run ids of the stores without a server: the folder store numbers its own runs
whatever id another observer hands it, and a MongoDB import gives each new run the
next free id. MongoDB is replaced by an in-memory stand-in that answers the few
queries the import makes (the server tests run the same paths against a real mongod)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sacred.observers import RunObserver

from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import RunFolderObserver, make_experiment, record_stores
from nnclust.storage import mongo, mongo_import


class FirstWithId(RunObserver):
    """An observer that starts first and names the run id, as MongoDB's does."""

    priority = 100

    def __init__(self, run_id):
        self.run_id = run_id

    def started_event(self, *args, **kwargs):
        return self.run_id


def test_the_folder_store_numbers_its_runs_itself(tmp_path):
    ex = make_experiment("run_ids")
    ex.main(lambda: 1)
    first = run_in_process(ex, [FirstWithId(7), RunFolderObserver(str(tmp_path))])
    second = run_in_process(ex, [FirstWithId(7), RunFolderObserver(str(tmp_path))])
    assert first._id == second._id == 7  # the run's id is the first observer's
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["1", "2"]
    assert json.loads((tmp_path / "2" / "run.json").read_text())["status"] == "COMPLETED"


def test_record_stores_names_the_folder_and_mongo_copies(tmp_path):
    class Run:
        info = {}
        observers = []

    folder = RunFolderObserver(str(tmp_path))
    folder.dir = str(tmp_path / "3")

    class Mongo:
        run_entry = {"_id": 12}

        class runs:  # noqa: N801 - the collection attribute of Sacred's MongoObserver
            class database:  # noqa: N801
                name = "db"

    Run.observers = [folder, Mongo()]
    assert record_stores(Run) == {"folder": {"path": str(tmp_path / "3"), "id": 3}, "mongo": {"db": "db", "id": 12}}
    assert Run.info["stores"]["folder"]["id"] == 3


class Collection:
    def __init__(self):
        self.docs = []

    @staticmethod
    def _get(doc, key):
        for part in key.split("."):
            doc = (doc or {}).get(part)
        return doc

    def _matches(self, doc, query):
        for key, want in query.items():
            have = self._get(doc, key)
            if isinstance(want, dict):
                if have is None or not (want["$gte"] <= have <= want["$lte"]):
                    return False
            elif have != want:
                return False
        return True

    def find_one(self, query, projection=None, sort=None):
        found = [d for d in self.docs if self._matches(d, query)]
        if sort:
            (key, direction), *_ = sort
            found.sort(key=lambda d: d[key], reverse=direction < 0)
        return found[0] if found else None

    def insert_one(self, doc):
        if any(d["_id"] == doc["_id"] for d in self.docs):
            raise ValueError(f"duplicate key _id {doc['_id']}")
        self.docs.append(dict(doc))

    def update_one(self, query, update, upsert=False):
        doc = self.find_one(query)
        if doc is None:
            if not upsert:
                return
            doc = dict(query)
            self.docs.append(doc)
        doc.update(update["$set"])


class Database:
    def __init__(self):
        self.runs, self.metrics = Collection(), Collection()


class GridFS:
    def __init__(self, db):
        self.db = db

    def put(self, f, filename, content_type=None):
        return filename


@pytest.fixture
def db(monkeypatch):
    import gridfs

    database = Database()
    monkeypatch.setattr(mongo, "connect", lambda spec: database)
    monkeypatch.setattr(gridfs, "GridFS", GridFS)
    return database


def _run_folder(root: Path, name: str, start: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    run = {"experiment": {"name": "train_model"}, "host": {"hostname": "h"}, "start_time": start,
           "status": "COMPLETED", "result": {"run": name}, "artifacts": []}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "config.json").write_text(json.dumps({"seed": 1}))
    return folder


def test_each_imported_run_gets_the_next_free_id_and_a_reimport_keeps_its_own(db, tmp_path):
    a = _run_folder(tmp_path, "1", "2026-01-01T10:00:00.000001")
    b = _run_folder(tmp_path, "2", "2026-01-01T11:00:00")
    c = _run_folder(tmp_path, "3", "2026-01-01T12:00:00")
    assert [mongo_import.import_run(f, "x") for f in (a, b, c)] == [1, 2, 3]
    assert mongo_import.import_run(b, "x") == 2  # matched by experiment, host and start time
    assert sorted(d["_id"] for d in db.runs.docs) == [1, 2, 3]
    assert db.runs.find_one({"_id": 2})["result"] == {"run": "2"}
    assert db.runs.find_one({"_id": 1})["start_time"] == dt.datetime(2026, 1, 1, 10, 0, 0, 1)


def test_an_import_next_to_runs_mongodb_numbered_continues_after_the_highest(db, tmp_path):
    db.runs.docs.append({"_id": 41, "experiment": {"name": "other"}})
    folder = _run_folder(tmp_path, "1", "2026-01-02T10:00:00")
    assert mongo_import.import_run(folder, "x") == 42


def test_mongo_import_without_a_store_refuses_in_one_line_and_writes_nothing(db, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(mongo.ENV_VAR, raising=False)
    folder = _run_folder(tmp_path, "1", "2026-01-02T10:00:00")
    with pytest.raises(SystemExit) as exit_:
        mongo_import.main([str(folder)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: no MongoDB store named: pass -m HOST:PORT:DB") and mongo.ENV_VAR in err
    assert db.runs.docs == []


@pytest.mark.parametrize("flag", [None, "flaghost:2:flagdb"])
def test_mongo_import_writes_to_the_store_of_m_else_of_the_environment(flag, db, tmp_path, monkeypatch, capsys):
    specs = []
    monkeypatch.setattr(mongo, "connect", lambda spec: specs.append(spec) or db)
    monkeypatch.setenv(mongo.ENV_VAR, "envhost:1:envdb")
    folder = _run_folder(tmp_path, "1", "2026-01-02T10:00:00")
    mongo_import.main([str(folder), *(["-m", flag] if flag else [])])
    assert specs == [flag or "envhost:1:envdb"] and [d["_id"] for d in db.runs.docs] == [1]
    assert capsys.readouterr().out == f"{folder} -> {flag or 'envhost:1:envdb'} run 1\n"


def test_mongo_import_help_says_there_is_no_default_server(capsys):
    with pytest.raises(SystemExit):
        mongo_import.main(["--help"])
    assert "there is no default server" in " ".join(capsys.readouterr().out.split())
