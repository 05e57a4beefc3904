"""Run storage without a server: store specs, credentials, the unreachable-server error,
and the runs table over folder stores."""

import socket

import pytest
from sacred.observers import FileStorageObserver

import spectral_cluster_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import _pop_mongo_flag
from nnclust.storage import mongo
from nnclust.storage.tables import config_diff, flatten, load_runs, main

MOONS = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"name": "mlp", "hidden": [10]},
    "epochs": 3,
    "batch_size": 32,
    "progress": False,
}


def test_store_specs_parse_in_both_forms():
    assert mongo.parse("127.0.0.1:27017:runs") == ("mongodb://127.0.0.1:27017", "runs")
    assert mongo.parse("localhost:27018") == ("mongodb://localhost:27018", "nnclust")
    assert mongo.parse("mongodb://u:p@127.0.0.1:27017/exp?authSource=admin") == (
        "mongodb://u:p@127.0.0.1:27017/?authSource=admin",
        "exp",
    )
    with pytest.raises(ValueError, match="HOST:PORT:DB"):
        mongo.parse("not a url")


def test_credentials_are_redacted():
    assert mongo.redact("mongodb://alice:s3cret@db:27017/x") == "mongodb://***@db:27017/x"
    assert mongo.redact("alice:s3cret@db:27017") == "***@db:27017"
    assert mongo.redact("mongodb://db:27017/x") == "mongodb://db:27017/x"
    with pytest.raises(ValueError, match=r"\*\*\*@db") as info:
        mongo.parse("alice:s3cret@db")  # unreadable, and the password stays out of the message
    assert "s3cret" not in str(info.value)


def test_mongo_option_is_taken_out_of_sacreds_command_line():
    argv, spec = _pop_mongo_flag(["x.py", "with", "seed=1", "-m", "mongodb://a:b@h:1/db", "-F", "d"])
    assert argv == ["x.py", "with", "seed=1", "-F", "d"] and spec == "mongodb://a:b@h:1/db"
    argv, spec = _pop_mongo_flag(["x.py", "--mongo_db=h:1:db"])
    assert argv == ["x.py"] and spec == "h:1:db"


def test_unreachable_mongo_names_the_url_and_the_fix(monkeypatch):
    monkeypatch.setattr(mongo, "PING_TIMEOUT_MS", 300)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(mongo.MongoUnavailableError, match=rf"127.0.0.1:{port}.*make mongo-up") as info:
        mongo.observer(f"mongodb://bob:hunter2@127.0.0.1:{port}/nnclust")
    assert "hunter2" not in str(info.value)


def _run(module, folder, **config):
    return run_in_process(module.ex, [FileStorageObserver(str(folder))], config)


@pytest.fixture(scope="module")
def folder_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    for seed, hidden in [(1, [10]), (2, [12])]:
        _run(train_model, root / "training_runs", **{**MOONS, "seed": seed, "model": {"name": "mlp", "hidden": hidden}})
    _run(spectral_cluster_model, root / "clustering_runs", model=str(root / "training_runs" / "1"), num_clusters=3)
    return root


def test_runs_table_flattens_config_result_and_last_metrics(folder_store):
    df = load_runs([folder_store / "training_runs", folder_store / "clustering_runs"])
    assert len(df) == 3 and set(df["experiment"]) == {"train_model", "spectral_cluster_model"}
    train = df[df["experiment"] == "train_model"].set_index("run_id")
    assert train.loc[2, "config.model.hidden"] == [12] and train.loc[1, "config.seed"] == 1
    assert train.loc[1, "metric.test_accuracy"] == train.loc[1, "result.test_accuracy"]  # last epoch = final eval
    assert (train["status"] == "COMPLETED").all()
    cluster = df[df["experiment"] == "spectral_cluster_model"].iloc[0]
    assert isinstance(cluster["result.labels"], list) and cluster["config.num_clusters"] == 3


def test_runs_table_filters_and_config_diff(folder_store):
    df = load_runs(folder_store / "training_runs", experiment="train_model", status="COMPLETED")
    assert len(load_runs(folder_store / "training_runs", where={"model.hidden": [12]})) == 1
    assert load_runs(folder_store / "training_runs", status="FAILED").empty
    diff = config_diff(df, 1, 2)
    assert set(diff.index) == {"seed", "model.hidden"}
    assert diff.loc["seed", 1] == 1 and diff.loc["seed", 2] == 2
    with pytest.raises(KeyError, match="no config key 'hidden'"):
        load_runs(folder_store / "training_runs", where={"hidden": 3})
    with pytest.raises(KeyError, match="no run with run_id 9"):
        config_diff(df, 1, 9)


def test_tables_cli_shows_each_experiments_key_config_and_results(folder_store, capsys):
    main([str(folder_store / "training_runs"), str(folder_store / "clustering_runs")])
    train_part, cluster_part = capsys.readouterr().out.split("\n\n")
    head, *rows = train_part.splitlines()[1:]
    assert train_part.startswith("train_model (2 runs)") and cluster_part.startswith("spectral_cluster_model (1 runs)")
    for key in ("config.dataset.name", "config.model.hidden", "config.seed", "config.epochs", "result.test_accuracy"):
        assert key in head.split(), head
    assert "config.num_clusters" not in head and "result.labels" not in cluster_part  # no long list results
    df = load_runs(folder_store / "training_runs")
    accuracy = head.split().index("result.test_accuracy")
    assert [float(r.split()[accuracy]) for r in rows] == df["result.test_accuracy"].tolist()
    assert [r.split()[head.split().index("config.model.hidden")] for r in rows] == ["[10]", "[12]"]
    assert {"config.num_clusters", "result.ncut"} <= set(cluster_part.splitlines()[1].split())


def test_tables_cli_columns_selects_exactly_those(folder_store, capsys):
    main([str(folder_store / "training_runs"), "--columns", "config.seed,run_id"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [["config.seed", "run_id"], ["1", "1"], ["2", "2"]]


@pytest.mark.parametrize("columns", ["run_id,no_such_column", ","])
def test_tables_cli_refuses_an_unknown_column_in_one_line(folder_store, columns, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(folder_store / "training_runs"), "--columns", columns])
    message = str(exit_.value.code)
    assert "\n" not in message and "--columns" in message and "config.seed" in message  # lists the valid ones
    assert ("no_such_column" in message) == (columns != ",")


def test_tables_cli_names_a_missing_folder_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "nnclust.storage.tables", "missing_folder"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(src)},
    )  # fmt: skip
    assert done.returncode != 0 and done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [
        "error: run folder 'missing_folder' does not exist; pass a folder of runs such as training_runs"
    ]
    assert not (tmp_path / "missing_folder").exists()


def test_flatten_keeps_lists_whole():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}


def test_long_metric_series_are_downsampled_but_history_is_whole():
    from nnclust.storage.metric_log import DownsampledLog

    class Sink:
        def __init__(self):
            self.steps = []

        def log_scalar(self, name, value, step):
            self.steps.append(step)

    sink = Sink()
    log = DownsampledLog(sink, max_points=100)
    for step in range(1000):
        log("loss", float(step), step)
    # all of [0, 100), one in 2 of [100, 200), one in 4 of [200, 400), one in 8 of [400, 800), one in 16 after
    expected = [*range(100), *range(100, 200, 2), *range(200, 400, 4), *range(400, 800, 8), *range(800, 1000, 16)]
    assert sink.steps == expected
    assert log.history["loss"] == [float(s) for s in range(1000)]
    with pytest.raises(ValueError, match="max_points"):
        DownsampledLog(sink, max_points=0)


def test_silent_running_runs_are_shown_and_marked_died(tmp_path):
    import datetime
    import json

    from nnclust.storage.tables import load_runs, mark_died, status_of

    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    fresh = {"status": "RUNNING", "heartbeat": "2026-01-01T11:59:30"}  # Sacred writes naive UTC
    stale = {"status": "RUNNING", "heartbeat": "2026-01-01T11:50:00"}
    assert status_of(fresh, now) == "RUNNING" and status_of(stale, now) == "DIED"
    assert status_of({"status": "COMPLETED", "heartbeat": "2000-01-01T00:00:00"}, now) == "COMPLETED"
    mongo_style = {"status": "RUNNING", "heartbeat": datetime.datetime(2026, 1, 1, 11, 57, 59)}
    assert status_of(mongo_style, now, died_after=120) == "DIED"
    assert status_of(mongo_style, now, died_after=150) == "RUNNING"
    # in a folder store: run 1 stopped beating long ago, run 2 is alive now
    beat_now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat()
    for run_id, beat in ((1, "2020-05-01T10:00:00"), (2, beat_now)):
        (tmp_path / str(run_id)).mkdir()
        (tmp_path / str(run_id) / "run.json").write_text(json.dumps({"status": "RUNNING", "heartbeat": beat}))
    assert load_runs(tmp_path)["status"].tolist() == ["DIED", "RUNNING"]
    assert mark_died(tmp_path) == [1]
    assert json.loads((tmp_path / "1" / "run.json").read_text())["status"] == "DIED"
    assert json.loads((tmp_path / "2" / "run.json").read_text())["status"] == "RUNNING"
    assert mark_died(tmp_path) == []
