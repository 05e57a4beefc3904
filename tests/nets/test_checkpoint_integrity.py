"""No downgrade path: a hashed checkpoint set back to version 1, or stripped of its hash,
is refused; genuinely unhashed files load with a visible note; malicious pickles are
refused for safety, never reported as damage next to advice to load them anyway."""

import os
import pickle

import pytest
import torch

from nnclust.nets.checkpoint import CheckpointError, UncheckedCheckpointWarning, load_checkpoint, save_checkpoint
from nnclust.nets.registry import build_model

ARCH = {"model": {"name": "mlp", "hidden": [5]}, "input_shape": [3], "num_classes": 2}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(ARCH["model"], ARCH["input_shape"], ARCH["num_classes"])
    path = save_checkpoint(tmp_path / "m.pt", model, ARCH, {"layer0.fc.weight": torch.ones(5, 3, dtype=torch.bool)})
    return path, torch.load(path, weights_only=True)


def _edited(tmp_path, payload, **changes):
    edited = {**payload, **changes}
    edited = {k: v for k, v in edited.items() if v is not _DROP}
    path = tmp_path / "edited.pt"
    torch.save(edited, path)
    return path


_DROP = object()


def _tensor_edits(payload):
    """One edit of every tensor of the payload: (name, payload with it changed)."""
    for section in ("state_dict", "masks"):
        for name, t in payload[section].items():
            changed = t.clone()
            changed.view(-1)[0] = ~changed.view(-1)[0] if t.dtype == torch.bool else changed.view(-1)[0] + 1
            yield f"{section}.{name}", {section: {**payload[section], name: changed}}


def test_a_version_set_back_to_1_is_refused_with_any_tensor_edit(saved, tmp_path):
    _, payload = saved
    edits = list(_tensor_edits(payload))
    assert len(edits) >= 3
    for _, change in edits:
        with pytest.raises(CheckpointError, match="says version 1 but carries a sha256"):
            load_checkpoint(_edited(tmp_path, payload, version=1, **change))
        with pytest.raises(CheckpointError, match=r"version 2\) has no sha256"):
            load_checkpoint(_edited(tmp_path, payload, sha256=_DROP, **change))
        with pytest.raises(CheckpointError, match="do not match the sha256"):
            load_checkpoint(_edited(tmp_path, payload, **change))
    for version in (True, 1.0, "2", None, 3):
        with pytest.raises(CheckpointError, match="has version"):
            load_checkpoint(_edited(tmp_path, payload, version=version))


def test_unhashed_legacy_files_load_with_a_note(saved, tmp_path):
    _, payload = saved
    legacy = {k: v for k, v in payload.items() if k not in ("sha256", "extra")} | {"version": 1}
    torch.save(legacy, tmp_path / "v1.pt")
    with pytest.warns(UncheckedCheckpointWarning, match="version 1 nnclust checkpoint.*no content hash"):
        assert torch.equal(load_checkpoint(tmp_path / "v1.pt").state_dict["layer0.fc.weight"],
                           payload["state_dict"]["layer0.fc.weight"])  # fmt: skip
    torch.save(payload["state_dict"], tmp_path / "plain.pt")
    with pytest.warns(UncheckedCheckpointWarning, match="plain state dict"):
        load_checkpoint(tmp_path / "plain.pt")


def test_a_sound_checkpoint_loads_without_a_note(saved, recwarn):
    path, payload = saved
    assert torch.equal(load_checkpoint(path).masks["layer0.fc.weight"], payload["masks"]["layer0.fc.weight"])
    assert not [w for w in recwarn if issubclass(w.category, UncheckedCheckpointWarning)]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("kind", ["torch zip", "torch legacy", "pickle protocol 5", "protocol 0 INST"])
def test_malicious_pickles_are_refused_for_safety(kind, tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    obj = {"state_dict": {"w": torch.ones(2)}, "x": _Payload(marker)}
    if kind == "torch zip":
        torch.save(obj, path)
    elif kind == "torch legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif kind == "pickle protocol 5":
        path.write_bytes(pickle.dumps(obj, protocol=5))
    else:
        path.write_bytes(f"(S'touch {marker}'\nios\nsystem\n.".encode())
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt' for safety") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value) and "corrupt" not in str(err.value)
    assert not marker.exists()
