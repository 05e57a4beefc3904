"""The seed's RNN prototype: a ReLU RNN trained on bit streams, and dead-unit removal."""

import numpy as np
import pytest
import torch
from sacred.observers import FileStorageObserver

import normalize_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.nets.layers import extract_layers
from nnclust.nets.registry import build_model
from nnclust.normalizers import NormalizerError, normalize
from nnclust.normalizers.rnn import delete_dead_units, unit_norms


def rnn_with_dead_units():
    """A 2-input, 7-unit RNN whose units 1 and 4 are truly dead (all four weight groups
    zero; unit 1 has bias 0.9), unit 5 is small but alive, and unit 3 has no readout
    weights but feeds other units through W_rec (alive)."""
    torch.manual_seed(0)
    model = build_model({"name": "relu_rnn", "hidden": [7]}, (6, 2), 3).eval()
    with torch.no_grad():
        for u in (1, 4):
            model.input.fc.weight[u] = 0
            model.recurrent.fc.weight[u] = 0
            model.recurrent.fc.weight[:, u] = 0
            model.readout.fc.weight[:, u] = 0
        model.input.fc.bias[1] = 0.9
        model.readout.fc.weight[:, 3] = 0
        model.input.fc.weight[5] *= 1e-3
        model.input.fc.bias[5] = 0.5
        model.recurrent.fc.weight[5] *= 1e-3
        model.recurrent.fc.weight[:, 5] *= 1e-3
        model.readout.fc.weight[:, 5] *= 1e-3
    return model


def test_rnn_forward_is_the_recurrence():
    model = rnn_with_dead_units()
    x = torch.randn(4, 6, 2)
    w_in, b, w_rec = model.input.fc.weight, model.input.fc.bias, model.recurrent.fc.weight
    h = torch.zeros(4, 7)
    for t in range(6):
        h = torch.relu(x[:, t] @ w_in.T + b + h @ w_rec.T)
    with torch.no_grad():
        assert torch.allclose(model(x), model.readout.fc(h), atol=1e-6)
    assert [lay.weight.shape for lay in extract_layers(model)] == [(7, 2), (7, 7), (3, 7)]


def test_deleting_truly_dead_rnn_units_is_exact_and_removes_exactly_them():
    model = rnn_with_dead_units()
    x = torch.randn(30, 6, 2)
    new = delete_dead_units(model)
    assert new.recurrent.fc.weight.shape == (5, 5)
    with torch.no_grad():
        assert torch.allclose(model(x), new(x), atol=1e-6)
    assert (unit_norms(model)[[1, 4]] == 0).all()
    approx = delete_dead_units(model, threshold=0.01)  # also the small unit 5
    assert approx.recurrent.fc.weight.shape == (4, 4)
    with torch.no_grad():
        change = (model(x) - approx(x)).abs().max().item()
    assert 0 < change < 0.05
    # unit 5's readout at its constant ReLU(b) went into the readout bias
    w_out, b_out = model.readout.fc.weight.detach().double(), model.readout.fc.bias.detach().double()
    folded = b_out + w_out[:, 5] * torch.relu(model.input.fc.bias[5].detach().double())
    torch.testing.assert_close(approx.readout.fc.bias.detach().double(), folded, rtol=0, atol=1e-7)
    with pytest.raises(NormalizerError, match="would delete all 7 hidden units"):
        delete_dead_units(model, threshold=1e6)
    via_registry = normalize("delete_dead_neurons", model, input_shape=(6, 2))
    assert via_registry.architecture["model"] == {"name": "relu_rnn", "hidden": [5]}
    with pytest.raises(NormalizerError, match="keep_shape=True is not offered for RNNs"):
        normalize("delete_dead_neurons", model, {"keep_shape": True})


def test_deleting_a_constant_unit_above_threshold_folds_it_into_the_readout_bias_exactly():
    """A unit with no input and no recurrent weights in or out holds ReLU(b) at every
    step; its readout is a constant, so deleting it at a threshold above its readout
    norm keeps the outputs, up to float32 rounding, once that constant is in the bias."""
    model = rnn_with_dead_units()
    with torch.no_grad():
        for u, bias in ((2, 0.7), (6, -0.4)):  # the second is off: ReLU(b) = 0
            model.input.fc.weight[u] = 0
            model.recurrent.fc.weight[u] = 0
            model.recurrent.fc.weight[:, u] = 0
            model.input.fc.bias[u] = bias
            model.readout.fc.weight[:, u] = torch.tensor([0.02, -0.03, 0.01])
        model.readout.fc.weight[:, 5] = 0.5  # unit 5 stays: its readout is above the threshold
    threshold = 0.05  # above units 2 and 6's readout norm (0.037), below every other live unit's
    norms = unit_norms(model)
    assert ((norms <= threshold).all(axis=1)).tolist() == [False, True, True, False, True, False, True]
    new = delete_dead_units(model, threshold=threshold)
    assert new.recurrent.fc.weight.shape == (3, 3)
    x = torch.randn(40, 6, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before, after = model(x), new(x)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
        moved = (model.readout.fc.weight[:, 2] * 0.7).abs().max().item()
    assert moved > 1e-2  # without the fold the outputs would be off by this much
    expected = model.readout.fc.bias.detach() + model.readout.fc.weight.detach()[:, 2] * 0.7
    torch.testing.assert_close(new.readout.fc.bias.detach(), expected, rtol=0, atol=1e-7)


def test_rnn_trains_on_bit_counts_and_is_normalized_by_script(tmp_path):
    config = {"dataset": {"name": "bit_count", "n_samples": 400, "length": 6},
              "model": {"name": "relu_rnn", "hidden": [8]}, "optimizer": {"lr": 0.02}, "epochs": 8,
              "batch_size": 32, "progress": False, "seed": 0}  # fmt: skip
    run = run_in_process(train_model.ex, [FileStorageObserver(str(tmp_path / "t"))], config)
    # predicting the mean count (3) would leave the variance 6 * 1/4 = 1.5
    assert run.result["test_loss"] < 0.3
    normalize_config = {"model": str(tmp_path / "t" / "1"), "normalizer": "delete_dead_neurons", "progress": False}
    res = run_in_process(normalize_model.ex, [], normalize_config).result
    assert res["max_output_change"] < 1e-5 and res["metrics"]["mse"] == pytest.approx(run.result["test_loss"], rel=1e-4)
    assert res["metrics"]["hidden_neurons"] <= 8 and np.isfinite(res["metrics"]["weight_norm"])
