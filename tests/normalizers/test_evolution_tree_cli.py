"""The evolution tree's command line, drawing and text form, on hand-written run folders
(run.json, info.json and checkpoint bytes: what `tree.runs_from_folder` reads)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import evolution_tree
from nnclust.normalizers import tree
from nnclust.storage import paths

SRC = Path(__file__).resolve().parents[2] / "src"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(folder: Path, experiment: str, result: dict, info: dict | None = None, ckpt: tuple[str, bytes] | None = None):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"experiment": {"name": experiment}, "status": "COMPLETED",
                                                 "result": result}))  # fmt: skip
    (folder / "info.json").write_text(json.dumps(info or {}))
    if ckpt:
        (folder / ckpt[0]).write_bytes(ckpt[1])


def _derived(parent_folder: Path, parent_bytes: bytes, name: str, options: dict, own: bytes) -> dict:
    return {"parent": {"ref": str(parent_folder), "run": str(parent_folder), "sha256": _sha(parent_bytes)},
            "normalizer": {"name": name, "options": options}, "checkpoint_sha256": _sha(own)}  # fmt: skip


@pytest.fixture
def store(tmp_path):
    """train 1 -> sort_neurons (normalize 1) -> compact:dense (compact 1), and trains 2..9
    with nothing derived. Returns the root folder."""
    train, norm, comp = (tmp_path / paths.RUN_DIRS[e] for e in ("train_model", "normalize_model", "compact_model"))
    for i in range(1, 10):
        result = {"test_accuracy": 0.5 + i / 100, "test_loss": 0.25, "sparsity": 0.6, "num_parameters": 100 + i}
        _run(train / str(i), "train_model", result, ckpt=(paths.PRUNED_MODEL, b"train%d" % i))
    metrics = {"accuracy": 0.93, "loss": 0.2, "hidden_neurons": 24, "sparsity": 0.6}
    _run(norm / "1", "normalize_model", {"metrics": metrics, "parent_metrics": {**metrics, "accuracy": 0.92},
                                        "max_output_change": 1e-7},
         _derived(train / "1", b"train1", "sort_neurons", {"include_bias": False}, b"sorted"),
         (paths.NORMALIZED_MODEL, b"sorted"))  # fmt: skip
    compact = {"accuracy_before": 0.93, "accuracy_after": 0.93, "units_before": 24, "units_after": 17,
               "params_before": 300, "params_after": 210, "max_output_change": 2e-7}  # fmt: skip
    _run(comp / "1", "compact_model", compact,
         _derived(norm / "1", b"sorted", "compact:dense", {"dtype": "float32"}, b"compact"),
         (paths.COMPACTED_MODEL, b"compact"))  # fmt: skip
    return tmp_path


def _forest(root: Path) -> list[tree.Node]:
    return tree.build_forest(
        [r for d in evolution_tree.DEFAULT_STORES if (root / d).is_dir() for r in tree.runs_from_folder(root / d)]
    )


def test_compacted_and_childless_trained_models_carry_their_metrics(store):
    roots = _forest(store)
    nodes = {n.label: n for r in roots for n, _, _ in r.walk()}
    assert nodes["compact_model 1"].metrics == {"accuracy": 0.93, "hidden_neurons": 17, "nonzero_parameters": 210}
    assert nodes["train_model 1"].metrics["accuracy"] == 0.92  # measured by its child, on the child's data
    assert nodes["train_model 5"].metrics == {"accuracy": 0.55, "loss": 0.25, "num_parameters": 105}
    box = tree.box_text(nodes["compact_model 1"]).splitlines()
    assert box == ["compact:dense(dtype=float32)", "compact_model 1", "acc 0.93, units 17", "nonzero 210, Δout 2e-07"]


def test_the_layout_packs_trees_into_bands_with_parents_over_children(store):
    roots = _forest(store)
    pos = tree.layout(roots, band_slots=4)
    for r in roots:
        for node, _, parent in r.walk():
            x, y = pos[id(node)]
            if parent is not None:
                assert pos[id(parent)][1] == y + 1  # one level above its child
            if node.children:
                xs = [pos[id(c)][0] for c in node.children]
                assert x == (xs[0] + xs[-1]) / 2
    # nine trees of one leaf each (the chain is one leaf wide): bands of 4, 4 and 1 slots
    assert sorted({x for x, _ in pos.values()}) == [0.0, 1.0, 2.0, 3.0]
    assert len(set(pos.values())) == len(pos)  # no two boxes in one place
    tops = sorted({pos[id(r)][1] for r in roots}, reverse=True)
    assert tops == [0.0, -3.3, -4.6]  # the first band holds the 3-level chain, the second single boxes


def test_the_drawing_stays_a_normal_size_and_the_text_lies_beside_it(store, monkeypatch, capsys):
    monkeypatch.chdir(store)
    text = evolution_tree.main([])
    png = store / paths.RUN_DIRS["normalize_model"] / paths.EVOLUTION_TREE
    assert (png.with_suffix(".txt")).read_text() == text + "\n"
    assert text.splitlines()[:3] == [
        "train_model 1  loss=0.2 acc=0.92 units=24 sparsity=0.6",
        "└── sort_neurons(include_bias=False) Δout=1e-07  [normalize_model 1]  loss=0.2 acc=0.93 units=24 sparsity=0.6",
        "    └── compact:dense(dtype=float32) Δout=2e-07  [compact_model 1]  acc=0.93 units=17 nonzero=210",
    ]
    fig = tree.draw(_forest(store))
    w, h = fig.get_size_inches()
    assert (w, h) == (tree.SLOT_W * tree.BAND_SLOTS, pytest.approx(tree.LEVEL_H * (3 + 0.3 + 1) + 0.5))
    from PIL import Image

    assert Image.open(png).size[0] < 1600  # about 110 dpi: nine models, not one column each


def test_help_and_print_config_describe_the_script_and_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        evolution_tree.main(["--help"])
    assert "Print and draw the evolution tree" in capsys.readouterr().out
    evolution_tree.main(["print_config", "a_store", "--root", "train_model 1"])
    out = capsys.readouterr().out
    assert out.startswith("evolution_tree.py has no Sacred config")
    assert "stores = ['a_store']" in out and "png = a_store/evolution_tree.png" in out and "root = train_model 1" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "train_model 77"], "no model matches --root 'train_model 77'; models here: train_model 1,"),
        (["--root", "train_modle 7"], "--root 'train_modle 7' is not a model reference; give a run label"),
        (["--root", "training_runs/x"], "--root 'training_runs/x': the run id 'x' is not an integer"),
        (["training_runs", "no_store"], "run folder 'no_store' does not exist; pass the folder of a run store"),
        (["-m", "nonsense"], "cannot read MongoDB store 'nonsense'; use mongodb://HOST:PORT/DB"),
    ],
)
def test_bad_arguments_end_in_one_line_and_write_nothing(args, message, store, monkeypatch):
    monkeypatch.chdir(store)
    before = sorted(store.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        evolution_tree.main(args)
    assert str(exit_.value.code).startswith(f"error: {message}") and "\n" not in str(exit_.value.code)
    assert sorted(store.rglob("*")) == before


def test_a_root_given_as_a_run_folder_selects_that_model(store, monkeypatch):
    monkeypatch.chdir(store)
    text = evolution_tree.main(["--root", "normalized_models/1", "--no-png"])
    assert text.splitlines()[0].startswith("sort_neurons") and len(text.splitlines()) == 2


def test_an_unreachable_server_and_an_empty_folder_are_one_line_without_a_traceback(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for args, message in [
        (["-m", f"127.0.0.1:{port}:db"], f"error: cannot reach MongoDB at mongodb://127.0.0.1:{port}"),
        ([], "error: no run store here (normalized_models, training_runs"),
    ]:
        done = subprocess.run(
            [sys.executable, str(SRC / "evolution_tree.py"), *args], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)},
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(message), done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_branching_tree_is_laid_out_with_each_parent_centred_over_its_children():
    def node(label, *children):
        return tree.Node(key=label, kind="normalized", label=label, children=list(children))

    a1, a2, b, c = node("a1"), node("a2"), node("b"), node("c")
    a = node("a", a1, a2)
    root = node("root", a, b, c)
    pos = tree.layout([root, node("alone")], band_slots=4)
    # leaves in consecutive slots, parents at the middle of their first and last child
    assert [pos[id(n)] for n in (a1, a2, b, c)] == [(0.0, -2.0), (1.0, -2.0), (2.0, -1.0), (3.0, -1.0)]
    assert pos[id(a)] == (0.5, -1.0) and pos[id(root)] == (1.75, 0.0)
    assert list(pos.values())[-1] == (0.0, -3.3)  # the fifth leaf opens a band below the 3-level tree
