import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from nnclust.nets.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from nnclust.nets.layers import extract_layers
from nnclust.nets.registry import ModelConventionError, build_model

ARCH = {"model": {"name": "cnn", "conv_channels": [4, 6], "hidden": [8]}, "input_shape": [1, 8, 8], "num_classes": 3}


def _cnn():
    torch.manual_seed(0)
    model = build_model(ARCH["model"], ARCH["input_shape"], ARCH["num_classes"])
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0)
                m.running_var.uniform_(0.1, 3.0)
    return model


def test_layers_fold_batch_norm_scale_from_module_and_state_dict():
    model = _cnn()
    layers = extract_layers(model)
    assert [lay.kind for lay in layers] == ["conv", "conv", "fc", "fc"]
    bn = model.layer0.bn
    expected = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    np.testing.assert_allclose(layers[0].bn_scale, expected)
    assert layers[-1].bn_scale is None
    from_state = extract_layers(model.state_dict())
    for a, b in zip(layers, from_state):
        assert a.name == b.name and np.array_equal(a.weight, b.weight)
        np.testing.assert_allclose(
            a.bn_scale if a.bn_scale is not None else 0, b.bn_scale if b.bn_scale is not None else 0
        )


def test_seed_style_state_dicts_load_in_both_conventions():
    # nn-clustering-pytorch writes plain state dicts: '<layer>.<fc|conv|bn>.<attr>' or
    # Sequential '<layer>_<module>.<attr>' keys, in forward order.
    torch.manual_seed(1)
    seq = nn.Sequential(OrderedDict([("0_fc", nn.Linear(5, 4)), ("0_relu", nn.ReLU()), ("1_fc", nn.Linear(4, 2))]))
    layers = extract_layers(dict(seq.state_dict()))
    assert [lay.name for lay in layers] == ["0_fc", "1_fc"]
    assert np.array_equal(layers[1].weight, seq[2].weight.detach().double().numpy())


def test_torch_prune_reparametrisation_is_understood():
    torch.manual_seed(2)
    model = build_model({"name": "mlp", "hidden": [6]}, (4,), 2)
    prune.l1_unstructured(model.layer0.fc, "weight", amount=0.5)
    layers = extract_layers(dict(model.state_dict()))
    assert layers[0].mask is not None and layers[0].mask.sum() == 12
    assert np.count_nonzero(layers[0].weight) == 12


def test_state_dict_without_weight_layers_is_rejected():
    with pytest.raises(ModelConventionError, match="no '<layer>.fc"):
        extract_layers({"encoder.weight": torch.zeros(2, 2)})


def test_checkpoint_round_trip_rebuilds_the_same_function(tmp_path):
    model = _cnn().eval()
    masks = {"layer2.fc.weight": torch.rand(8, 24) > 0.5}
    path = save_checkpoint(tmp_path / "m.pt", model, ARCH, masks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temp file left behind
    ckpt = load_checkpoint(path)
    assert ckpt.architecture == ARCH and torch.equal(ckpt.masks["layer2.fc.weight"], masks["layer2.fc.weight"])
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(ckpt.build_model().eval()(x), model(x))
    assert extract_layers(ckpt)[2].mask.sum() == masks["layer2.fc.weight"].sum()


def test_plain_state_dict_checkpoint_has_no_architecture(tmp_path):
    torch.save(_cnn().state_dict(), tmp_path / "sd.pt")
    ckpt = load_checkpoint(tmp_path / "sd.pt")
    assert ckpt.architecture is None and len(extract_layers(ckpt)) == 4
    with pytest.raises(CheckpointError, match="without an architecture"):
        ckpt.build_model()


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _cnn(), ARCH)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt.*truncated, corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


class _Evil:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('PWNED').touch()",))


def test_checkpoint_with_code_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"layer0.fc.weight": torch.zeros(2, 2), "x": _Evil()}, tmp_path / "evil.pt", pickle_module=pickle)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt' does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_round_trip_via_dataclass():
    ckpt = Checkpoint({"l.fc.weight": torch.ones(2, 3)})
    assert extract_layers(ckpt)[0].n_in == 3


def test_batch_norm_modules_own_eps_is_used():
    # eps = 0.5 against running variances near 0: the default 1e-5 would give scales ~100x larger
    model = build_model({"name": "mlp", "hidden": [4], "batch_norm": True}, (3,), 2)
    bn = model.layer0.bn
    bn.eps = 0.5
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        bn.running_var.copy_(torch.tensor([0.0, 0.5, 1.5, 1e-4]))
    expected = np.array([1.0, 2.0, -1.0, 0.5]) / np.sqrt(np.array([0.0, 0.5, 1.5, 1e-4]) + 0.5)
    np.testing.assert_allclose(extract_layers(model)[0].bn_scale, expected, rtol=1e-6)


def test_random_bytes_are_not_a_checkpoint_rather_than_code(tmp_path):
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(CheckpointError, match=r"noise\.pt.*truncated, corrupt, or not a torch checkpoint") as err:
        load_checkpoint(tmp_path / "noise.pt")
    assert "run code" not in str(err.value)


def test_nan_or_inf_weights_are_named_at_load(tmp_path):
    model = _cnn()
    with torch.no_grad():
        model.layer2.fc.weight[0, :3] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", model, ARCH)
    with pytest.raises(CheckpointError, match=r"'layer2\.fc\.weight' holds 3 NaN or infinite value"):
        load_checkpoint(path)
    torch.save({"0_fc.weight": torch.tensor([[1.0, float("inf")]])}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"'0_fc\.weight' holds 1 NaN"):
        load_checkpoint(tmp_path / "plain.pt")


def test_version_1_checkpoints_without_a_hash_still_load(tmp_path):
    model = _cnn()
    payload = {"format": "nnclust", "version": 1, "architecture": ARCH, "state_dict": model.state_dict(), "masks": {}}
    torch.save(payload, tmp_path / "v1.pt")
    ckpt = load_checkpoint(tmp_path / "v1.pt")
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in model.state_dict().items())


def test_an_interrupt_while_saving_stays_an_interrupt_and_leaves_no_file(tmp_path, monkeypatch):
    # torch.save's zip writer fails on closing after an interrupt; the interrupt must win
    real_save = torch.save

    def interrupted_save(obj, f, *args, **kwargs):
        try:
            raise KeyboardInterrupt("signal 15")
        finally:
            raise RuntimeError("unexpected pos while closing the zip writer")

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        save_checkpoint(tmp_path / "m.pt", _cnn(), ARCH)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    monkeypatch.setattr(torch, "save", real_save)
    save_checkpoint(tmp_path / "m.pt", _cnn(), ARCH)
    assert load_checkpoint(tmp_path / "m.pt").architecture == ARCH
