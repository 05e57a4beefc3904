"""Damaged checkpoint files: every load is either a clean CheckpointError or identical to the original."""

import io
import itertools
import zipfile

import numpy as np
import pytest
import torch

from nnclust.nets.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nnclust.nets.registry import build_model

ARCH = {"model": {"name": "mlp", "hidden": [6, 5], "batch_norm": True}, "input_shape": [4], "num_classes": 3}
N = 300  # mutations of each kind


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(ARCH["model"], ARCH["input_shape"], ARCH["num_classes"])
    masks = {"layer0.fc.weight": torch.rand(6, 4) > 0.5}
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pt", model, ARCH, masks, {"epoch": 3})
    return path.read_bytes(), load_checkpoint(path)


def _same(a, b) -> bool:
    def tensors_equal(x, y):
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x)

    return (
        a.architecture == b.architecture
        and a.extra == b.extra
        and tensors_equal(a.state_dict, b.state_dict)
        and tensors_equal(a.masks, b.masks)
    )


def _outcome(data: bytes, ref, tmp_path) -> str:
    path = tmp_path / "damaged.pt"
    path.write_bytes(data)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError:
        return "error"
    return "identical" if _same(loaded, ref) else "silently changed"


def _campaign(mutants, ref, tmp_path) -> dict:
    counts = {"error": 0, "identical": 0, "silently changed": 0}
    for data in mutants:
        counts[_outcome(data, ref, tmp_path)] += 1
    return counts


def test_byte_flips(original, tmp_path):
    data, ref = original
    rng = np.random.default_rng(0)
    mutants = []
    for pos in rng.choice(len(data), size=N, replace=False):
        b = bytearray(data)
        b[pos] ^= int(rng.integers(1, 256))
        mutants.append(bytes(b))
    counts = _campaign(mutants, ref, tmp_path)
    assert counts["silently changed"] == 0, counts
    assert counts["error"] > N // 2, counts  # most flips land in data the hash covers


def test_truncations(original, tmp_path):
    data, ref = original
    rng = np.random.default_rng(1)
    mutants = [data[:n] for n in rng.choice(len(data), size=N, replace=False)]
    counts = _campaign(mutants, ref, tmp_path)
    assert counts == {"error": N, "identical": 0, "silently changed": 0}


def test_deleted_zip_members(original, tmp_path):
    data, ref = original
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    combos = [c for r in (1, 2, 3) for c in itertools.combinations(range(len(members)), r)][:N]
    assert len(combos) >= min(N, 100)
    mutants = []
    for drop in combos:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for i, (info, content) in enumerate(members):
                if i not in drop:
                    out.writestr(info, content)
        mutants.append(buf.getvalue())
    counts = _campaign(mutants, ref, tmp_path)
    assert counts["silently changed"] == 0, counts


def test_an_undamaged_copy_loads_identically(original, tmp_path):
    data, ref = original
    assert _outcome(data, ref, tmp_path) == "identical"
