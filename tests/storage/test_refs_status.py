"""A run-folder reference resolves only to the checkpoint of a COMPLETED run."""

import json

import pytest
import torch

from nnclust.nets.checkpoint import save_checkpoint
from nnclust.storage import paths
from nnclust.storage.refs import RunReferenceError, resolve_model

ARCH = {"model": {"name": "mlp", "hidden": [4]}, "input_shape": [2], "num_classes": 2}


def _run_folder(root, run_id, status, resume_point=False):
    folder = root / str(run_id)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(status if status in ("", "[]") else json.dumps({"status": status}))
    (folder / "config.json").write_text(json.dumps({"seed": 1}))
    save_checkpoint(folder / paths.UNPRUNED_MODEL, torch.nn.Linear(2, 2), ARCH)
    if resume_point:
        save_checkpoint(folder / paths.RESUME_STATE, torch.nn.Linear(2, 2), ARCH, extra={"train": {}})
    return folder


def test_a_completed_run_resolves_to_its_checkpoint(tmp_path):
    folder = _run_folder(tmp_path, 1, "COMPLETED")
    assert resolve_model(folder) == folder / paths.UNPRUNED_MODEL


@pytest.mark.parametrize("status", ["RUNNING", "DIED", "INTERRUPTED", "FAILED"])
def test_an_unfinished_run_is_refused_with_its_status(status, tmp_path):
    folder = _run_folder(tmp_path, 1, status, resume_point=status != "FAILED")
    with pytest.raises(RunReferenceError, match=rf"its run is {status}") as err:
        resolve_model(folder)
    if status != "FAILED":
        assert f"with resume={folder}" in str(err.value)
    else:
        assert "resume=" not in str(err.value)


@pytest.mark.parametrize("content", ["", "[]"])
def test_a_damaged_record_is_named_not_used(content, tmp_path):
    folder = _run_folder(tmp_path, 1, content)
    with pytest.raises(RunReferenceError, match=r"run\.json' is damaged"):
        resolve_model(folder)
