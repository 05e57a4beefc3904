"""Damaged run-folder JSON through every reader of it: each read either succeeds or
fails with one user error (the command line prints it as one line), never with a
traceback of some other exception."""

import json
import shutil

import pytest

import spectral_cluster_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments import ablate, train
from nnclust.experiments.sacred_setup import USER_ERRORS, RunFolderObserver
from nnclust.normalizers.tree import runs_from_folder
from nnclust.storage import lineage, paths, tables
from nnclust.storage.mongo_import import run_folders
from nnclust.storage.refs import load_model_ref, resolve_model

MOONS = {
    "dataset": {"name": "moons", "n_samples": 120},
    "model": {"name": "mlp", "hidden": [6]},
    "epochs": 2,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 1},
    "progress": False,
    "seed": 1,
}
# Values put in place of a field: every JSON type, and the empty ones.
ODD_VALUES = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"a": 1}]
ODD_NESTED = [None, True, 1.5, "x", [1], {}]
FILES = ("run.json", "config.json", "info.json", "metrics.json")
# The readers of each file (every reader reads run.json).
READS = {
    "config.json": {"model=clustering run", "clustering=", "test data of a model", "resume= config", "runs table"},
    "info.json": {"runs table", "lineage", "evolution tree"},
    "metrics.json": {"runs table"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    run_in_process(train_model.ex, [RunFolderObserver(str(root / "training_runs"))], MOONS)
    train_folder = root / "training_runs" / "1"
    run_in_process(
        spectral_cluster_model.ex, [RunFolderObserver(str(root / "clustering_runs"))],
        {"model": str(train_folder), "num_clusters": 2, "plot": False, "seed": 1},
    )  # fmt: skip
    # a resume point, as a stopped run would have
    shutil.copy(train_folder / paths.UNPRUNED_MODEL, train_folder / paths.RESUME_STATE)
    return root


def _mutations(original: str):
    """Damaged versions of one JSON file's text."""
    yield ""
    for cut in sorted({1, len(original) // 3, len(original) // 2, len(original) - 2}):
        yield original[:cut]
    for whole in ODD_VALUES + ["not json", "\x00\xff"]:
        yield whole if isinstance(whole, str) and whole.startswith(("not", "\x00")) else json.dumps(whole)
    obj = json.loads(original)
    for key, value in obj.items():
        for odd in ODD_VALUES:
            yield json.dumps({**obj, key: odd})
        if isinstance(value, dict):  # one level down: result.labels, config.model, info.data ...
            for sub in value:
                for odd in ODD_NESTED:
                    yield json.dumps({**obj, key: {**value, sub: odd}})


def _readers(root):
    train_folder, cluster_folder = root / "training_runs" / "1", root / "clustering_runs" / "1"
    return {
        "model=training run": lambda: load_model_ref(train_folder),
        "model=clustering run": lambda: resolve_model(cluster_folder),
        "clustering=": lambda: ablate.load_clustering(str(cluster_folder)),
        "test data of a model": lambda: ablate.test_data_of(train_folder / paths.PRUNED_MODEL),
        "resume= config": lambda: train.resume_config({"resume": str(train_folder)}),
        "resume= state": lambda: train.load_resume_state(str(train_folder)),
        "runs table": lambda: tables.load_runs([root / "training_runs", root / "clustering_runs"]),
        "--mark-died": lambda: tables.main([str(root / "training_runs"), "--mark-died"]),
        "lineage": lambda: lineage.data_source(str(train_folder)),
        "evolution tree": lambda: runs_from_folder(root / "training_runs"),
        "mongo_import": lambda: run_folders([train_folder, cluster_folder]),
    }


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("experiment", ["training_runs", "clustering_runs"])
def test_damaged_run_json_gives_one_line_errors(name, experiment, store, recwarn):
    path = store / experiment / "1" / name
    original = path.read_text() if path.is_file() else None  # a clustering run records no info
    readers = {k: v for k, v in _readers(store).items() if name == "run.json" or k in READS[name]}
    tracebacks, errors, mutants = [], 0, 0
    try:
        for text in _mutations(original or "{}"):
            mutants += 1
            for reader, read in readers.items():
                path.write_text(text)
                try:
                    out = read()
                    # the runs table names a damaged run in its row instead of failing
                    errors += reader == "runs table" and tables.DAMAGED in out["status"].tolist()
                except USER_ERRORS as exc:
                    errors += 1
                    assert str(exc).strip(), reader
                except Exception as exc:  # a traceback on the command line
                    tracebacks.append(f"{reader} on {text[:60]!r}: {type(exc).__name__}: {exc}")
    finally:
        path.write_text(original) if original is not None else path.unlink()
    assert not tracebacks, f"{len(tracebacks)} of {mutants * len(readers)} reads:\n" + "\n".join(tracebacks[:15])
    assert mutants > 10 and errors > mutants // 2  # damage is noticed, not read past
