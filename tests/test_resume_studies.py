"""Shuffle studies and IMP runs killed (SIGKILL) at chosen instants, including while
`run.json` is rewritten: the runs table reads the folder, --mark-died records the death
and clears the debris, and ``resume=`` finishes the run once, with the numbers of an
uninterrupted run and without computing the finished shuffles or levels again."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tests import test_kill

import imp_experiment
import shuffle_and_cluster
import train_model
from nnclust.clustering import study
from nnclust.core import scratch
from nnclust.exec.grid import run_in_process
from nnclust.exec.parallel import map_tasks
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.storage import paths, records
from nnclust.storage.refs import RunReferenceError
from nnclust.storage.tables import load_runs, main, mark_died, remove_debris

SRC = Path(__file__).resolve().parents[1] / "src"
TRAIN = {
    "dataset": {"name": "moons", "n_samples": 200, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [12, 12]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "epochs": 2,
    "batch_size": 32,
    "progress": False,
    "seed": 2,
}
SHUFFLE = {"num_clusters": 3, "num_shuffles": 6, "n_init": 3, "spread_searches": 2, "progress": False, "seed": 5}
# Dropout (the global torch RNG) and late rewinding (a snapshot of level 0) both carry
# state from one level to the next.
IMP = {
    "dataset": {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 200, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [8, 8], "dropout": 0.1},
    "init": {"name": "normal", "bias": "same", "std": 0.3},
    "optimizer": {"name": "adam", "lr": 0.02},
    "imp": {"levels": 3, "target_params": 20, "max_epochs": 3, "rewind": "late", "rewind_step": 2},
    "progress": False,
    "num_threads": 1,
    "seed": 4,
}
# tests/test_kill.py's KILLER (the `count`-th rename onto a file named `target` whose new
# content holds `needle` kills the process first), with the study saving its progress
# after every n-cut, so that the count names one instant.
KILLER = (
    """
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import nnclust.experiments.shuffle
nnclust.experiments.shuffle.SAVE_EVERY = 0.0
"""
    + test_kill.KILLER
)
# (script, file renamed onto, needle, count) -> shuffles or levels finished and saved at the kill
SHUFFLE_KILLS = {
    # the network's n-cuts and shuffle 0 saved; shuffle 1's save cut short
    "progress write": (paths.SHUFFLE_PROGRESS, "", 3, 1),
    # every n-cut saved; the record of the histogram artifact cut short
    "run.json rewrite": ("run.json", paths.SHUFFLE_HISTOGRAM, 1, SHUFFLE["num_shuffles"]),
}
IMP_KILLS = {
    # level 0 saved; level 1's state cut short
    "level state": (paths.IMP_RESUME_STATE, "", 2, 1),
    # levels 0 and 1 saved; the record of level 2's checkpoint cut short
    "run.json rewrite": ("run.json", paths.imp_level_model(2), 1, 2),
}


def _in_process(script, folder: Path, config: dict):
    return run_in_process(script.ex, [RunFolderObserver(str(folder))], config)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained model, and an uninterrupted shuffle study and IMP run for reference."""
    root = tmp_path_factory.mktemp("world")
    _in_process(train_model, root / "train", TRAIN)
    shuffle_cfg = {**SHUFFLE, "model": str(root / "train" / "1")}
    shuffle_ref = _in_process(shuffle_and_cluster, root / "shuffle", shuffle_cfg)
    imp_ref = _in_process(imp_experiment, root / "imp", IMP)
    return {
        "train": root / "train" / "1",
        "shuffle_config": shuffle_cfg,
        "shuffle": (shuffle_ref.result, root / "shuffle" / "1"),
        "imp": (imp_ref.result, root / "imp" / "1"),
    }


def _kill(tmp_path: Path, script: str, config: dict, kill: tuple) -> Path:
    target, needle, count, _ = kill
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(SRC), "KILL_AT": target, "KILL_IF": needle, "KILL_COUNT": str(count)}
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(SRC / script), "-F", str(tmp_path / "runs"), "with", str(cfg)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]  # killed, at the chosen point
    return tmp_path / "runs" / "1"


def _read_mark_and_clean(dead: Path, capsys) -> list:
    """The table reads the dead run; --mark-died's steps record it DIED and remove the
    temporary file of the write the kill cut short; the dead run's scratch folders (returned)
    go too."""
    assert records.status(dead) == "RUNNING" and load_runs(dead.parent)["status"].tolist() == ["RUNNING"]
    debris = records.temp_files(dead)
    assert debris, sorted(p.name for p in dead.iterdir())
    assert mark_died(dead.parent, died_after=0) == [1]
    assert remove_debris(dead.parent) == debris and not records.temp_files(dead)
    main([str(dead.parent)])
    assert "DIED" in capsys.readouterr().out
    scratch_root = dead.parents[1] / "tmp"
    removed = scratch.remove_dead(scratch_root)
    assert not any(scratch_root.iterdir())
    return removed


def _resumed_once(script, dead: Path, state: str) -> Path:
    """The parent names its successor and has no resume point left; a second resume is
    refused, without a run folder."""
    successor = dead.parent / "2"
    assert not (dead / state).exists() and not (successor / state).exists()
    assert (dead / paths.RESUMED_BY).read_text().strip() == str(successor)
    with pytest.raises(RunReferenceError, match=r"already resumed, as .*2"):
        _in_process(script, dead.parent, {"resume": str(dead)})
    assert sorted(p.name for p in dead.parent.iterdir() if p.name.isdigit()) == ["1", "2"]  # none for the refusal
    return successor


@pytest.mark.parametrize("point", list(SHUFFLE_KILLS))
def test_a_killed_shuffle_study_resumes_to_the_same_result(point, tmp_path, world, capsys, monkeypatch):
    dead = _kill(tmp_path, "shuffle_and_cluster.py", world["shuffle_config"], SHUFFLE_KILLS[point])
    finished = SHUFFLE_KILLS[point][3]
    saved = records.read_json(dead / paths.SHUFFLE_PROGRESS)
    assert sorted(map(int, saved["shuffles"])) == list(range(finished)) and len(saved["true_ncuts"]) == 3
    # the histogram's scratch exists only once every shuffle is done
    assert bool(_read_mark_and_clean(dead, capsys)) == (point == "run.json rewrite")

    computed = []
    real, real_true = study._shuffled_graph, study._true_ncuts
    monkeypatch.setattr(study, "_shuffled_graph", lambda i, **kw: computed.append(i) or real(i, **kw))
    monkeypatch.setattr(study, "_true_ncuts", lambda *a: computed.append("network") or real_true(*a))
    resumed = _in_process(shuffle_and_cluster, dead.parent, {"resume": str(dead)})
    ref_result, ref_folder = world["shuffle"]
    assert resumed.config["seed"] == SHUFFLE["seed"] and resumed.config["num_shuffles"] == SHUFFLE["num_shuffles"]
    assert resumed.result == ref_result  # floats compared exactly
    assert computed == list(range(finished, SHUFFLE["num_shuffles"]))  # the network and finished shuffles not redone
    successor = _resumed_once(shuffle_and_cluster, dead, paths.SHUFFLE_PROGRESS)
    assert (successor / paths.SHUFFLE_HISTOGRAM).stat().st_size > 0
    assert (
        json.loads((successor / "run.json").read_text())["result"]
        == json.loads((ref_folder / "run.json").read_text())["result"]
    )


def _same_checkpoint(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert x.state_dict.keys() == y.state_dict.keys() and x.masks.keys() == y.masks.keys()
    assert all(torch.equal(x.state_dict[k], y.state_dict[k]) for k in x.state_dict)
    assert all(torch.equal(x.masks[k], y.masks[k]) for k in x.masks)


@pytest.mark.parametrize("point", list(IMP_KILLS))
def test_a_killed_imp_run_resumes_to_the_same_numbers(point, tmp_path, world, capsys, monkeypatch):
    dead = _kill(tmp_path, "imp_experiment.py", IMP, IMP_KILLS[point])
    finished = IMP_KILLS[point][3]
    assert load_checkpoint(dead / paths.IMP_RESUME_STATE).extra["imp"]["level"] == finished - 1
    assert _read_mark_and_clean(dead, capsys)  # the level checkpoints' scratch

    import nnclust.training

    trained = []
    real = nnclust.training.train
    monkeypatch.setattr(nnclust.training, "train", lambda *a, **kw: trained.append(kw["seed"]) or real(*a, **kw))
    resumed = _in_process(imp_experiment, dead.parent, {"resume": str(dead)})
    ref_result, ref_folder = world["imp"]
    assert resumed.result == ref_result
    assert len(trained) == IMP["imp"]["levels"] + 1 - finished  # the finished levels are not trained again
    successor = _resumed_once(imp_experiment, dead, paths.IMP_RESUME_STATE)
    for name in [paths.imp_level_model(i) for i in range(IMP["imp"]["levels"] + 1)] + [paths.PRUNED_MODEL]:
        _same_checkpoint(successor / name, ref_folder / name)
    with np.load(successor / paths.IMP_STATES) as got, np.load(ref_folder / paths.IMP_STATES) as want:
        assert got.files == want.files and all(np.array_equal(got[k], want[k]) for k in want.files)
    assert {k: v["values"] for k, v in records.read_metrics(successor).items()} == {
        k: v["values"] for k, v in records.read_metrics(ref_folder).items()
    }


@pytest.mark.parametrize("script", [shuffle_and_cluster, imp_experiment], ids=["shuffle", "imp"])
def test_resume_refuses_what_it_cannot_continue(script, tmp_path, world):
    """One line each, and no run folder: a completed run, another experiment's run, a
    folder that is no run, and a run that died before saving anything."""
    name = "shuffle" if script is shuffle_and_cluster else "imp"
    ref_folder = world[name][1]
    runs = tmp_path / "runs"
    with pytest.raises(RunReferenceError, match="COMPLETED; there is nothing to resume"):
        _in_process(script, runs, {"resume": str(ref_folder)})
    with pytest.raises(RunReferenceError, match=f"that is a train_model run; {script.ex.path} resumes only its own"):
        _in_process(script, runs, {"resume": str(world["train"])})
    with pytest.raises(RunReferenceError, match=f"no config.json there; point it at an? {script.ex.path} run folder"):
        _in_process(script, runs, {"resume": str(tmp_path)})
    early = tmp_path / "early"
    early.mkdir()
    run = json.loads((ref_folder / "run.json").read_text())
    (early / "run.json").write_text(json.dumps({**run, "status": "RUNNING"}))
    (early / "config.json").write_text((ref_folder / "config.json").read_text())
    with pytest.raises(RunReferenceError, match=r"the run \(RUNNING\) saved no .*Start it again instead"):
        _in_process(script, runs, {"resume": str(early)})
    assert not runs.exists()


def test_a_study_skips_what_it_was_given_and_reports_the_rest(world):
    """The n-cuts given as done are taken as they are (a marker value shows it), the rest
    are computed and reported once each, and the network's n-cuts are reported first."""
    from nnclust.nets.layers import extract_layers
    from nnclust.storage.refs import load_model_ref

    _, ckpt = load_model_ref(str(world["train"]))
    layers = extract_layers(ckpt)
    kw = {"n_init": 3, "spread_searches": 2, "seed": 5, "progress": False}
    full = study.shuffle_significance(layers, 3, 5, **kw)
    reported = []
    part = study.shuffle_significance(
        layers, 3, 5, done={1: 7.0, 3: full["shuffled_ncuts"][3]}, on_result=lambda i, x: reported.append((i, x)), **kw
    )
    assert part["shuffled_ncuts"] == [*full["shuffled_ncuts"][:1], 7.0, *full["shuffled_ncuts"][2:]]
    assert reported[0] == (None, [full["true_ncut"], *full["true_ncut_searches"]])
    assert reported[1:] == [(i, full["shuffled_ncuts"][i]) for i in (0, 2, 4)]
    truth = [full["true_ncut"], *full["true_ncut_searches"]]
    done = dict(enumerate(full["shuffled_ncuts"]))
    again = study.shuffle_significance(layers, 3, 5, done=done, done_true=truth, **kw)
    assert again == full
    with pytest.raises(ValueError, match="done_true holds 2 n-cuts; 1 \\+ spread_searches is 3"):
        study.shuffle_significance(layers, 3, 5, done_true=truth[:2], **kw)


def test_a_gpu_study_skips_whole_batches_only(world, monkeypatch):
    """On the GPU path a batch is solved whole or not at all, so every batch holds the
    same shuffles as in an uninterrupted study (the CPU stands in for the GPU here)."""
    import nnclust.clustering.batched as batched
    from nnclust.nets.layers import extract_layers
    from nnclust.storage.refs import load_model_ref

    real, sizes = batched.batched_spectral_embeddings, []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        batched,
        "batched_spectral_embeddings",
        lambda a, k, device, **kw: sizes.append(len(a)) or real(a, k, "cpu", **kw),
    )
    kmeans = batched.batched_kmeans
    monkeypatch.setattr(batched, "batched_kmeans", lambda emb, k, n, rngs, device: kmeans(emb, k, n, rngs, "cpu"))
    layers = extract_layers(load_model_ref(str(world["train"]))[1])
    kw = {"n_init": 3, "spread_searches": 2, "seed": 5, "progress": False, "device": "cuda", "batch_size": 2}
    full = study.shuffle_significance(layers, 3, 5, **kw)
    assert sizes == [2, 2, 1]
    sizes.clear()
    truth = [full["true_ncut"], *full["true_ncut_searches"]]
    part = study.shuffle_significance(
        layers, 3, 5, done=dict(enumerate(full["shuffled_ncuts"][:3])), done_true=truth, **kw
    )
    assert part == full and sizes == [2, 1]  # shuffles 0-1 skipped; 2-3 solved together again; 4


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_map_tasks_reports_each_result_as_it_arrives(n_jobs):
    seen = []
    out = map_tasks(abs, [-3, 1, -2], n_jobs, progress=False, on_result=lambda i, r: seen.append((i, r)))
    assert out == [3, 1, 2] and sorted(seen) == [(0, 3), (1, 1), (2, 2)]
