"""Dead-unit removal with bias folding: exact where it must be, on hand-built networks."""

import numpy as np
import pytest
import torch

from nnclust.nets.layers import extract_layers, mlp_from_layers
from nnclust.nets.registry import build_model
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.connectivity import constant_activations
from nnclust.structure.surgery import SurgeryError, compact_layers, remove_units
from nnclust.structure.transforms import fold_batch_norm_into_layers


def forward(layers, x):
    """Reference forward pass in numpy: ReLU after every layer but the last."""
    for i, lay in enumerate(layers):
        x = x @ lay.weight.T + (0 if lay.bias is None else lay.bias)
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


def planted():
    """A 3-5-4-2 MLP with every kind of removable unit.

    layer 1: u0 alive; u1 no incoming weights, bias +0.7 (constant 0.7); u2 no incoming,
    bias -0.4 (constant 0); u3 no outgoing weights; u4 alive.
    layer 2: u'0 alive; u'1 no incoming weights (constant ReLU(0.3)); u'2 no outgoing
    weights; u'3 fed only by the constant u1, a chain (constant ReLU(0.3 + 0.5 * 0.7)).
    """
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(5, 3))
    w1[1] = 0
    w1[2] = 0
    b1 = np.array([0.1, 0.7, -0.4, 0.2, -0.1])
    w2 = rng.normal(size=(4, 5))
    w2[:, 3] = 0  # u3 (layer 1) has no outgoing weights
    w2[1] = 0  # u'1 has no incoming weights
    w2[3] = 0
    w2[3, 1] = 0.5  # u'3 fed only by the constant u1
    b2 = np.array([0.0, 0.3, 0.1, 0.3])
    w3 = rng.normal(size=(2, 4))
    w3[:, 2] = 0  # u'2 feeds nothing
    b3 = np.array([0.05, -0.05])
    return [WeightLayer("l0", "fc", w1, b1), WeightLayer("l1", "fc", w2, b2), WeightLayer("l2", "fc", w3, b3)]


def test_constant_activations_are_a_forward_pass_of_the_biases():
    layers = planted()
    consts = constant_activations([lay.weight for lay in layers], [lay.bias for lay in layers])
    assert np.isnan(consts[0][[0, 3, 4]]).all()
    np.testing.assert_allclose(consts[0][[1, 2]], [0.7, 0.0])
    np.testing.assert_allclose(consts[1][[1, 3]], [0.3, 0.3 + 0.5 * 0.7])
    assert np.isnan(consts[1][[0, 2]]).all()


def test_compaction_is_exact_and_removes_exactly_the_dead_units():
    layers = planted()
    result = compact_layers(layers)
    # layer 1 keeps u0 and u4 (u1, u2 constant, u3 comatose); layer 2 keeps u'0 (u'1, u'3 constant, u'2 mute)
    assert [k.tolist() for k in result.kept] == [[0, 4], [0]]
    assert result.units_before == 9 and result.units_after == 3 and result.units_removed == 6
    x = np.random.default_rng(1).normal(size=(200, 3)) * 3
    np.testing.assert_allclose(forward(result.layers, x), forward(layers, x), rtol=1e-12, atol=1e-12)
    again = compact_layers(result.layers)
    assert again.units_removed == 0  # the result is final


def test_compaction_never_removes_a_unit_that_carries_signal():
    rng = np.random.default_rng(2)
    for trial in range(30):
        sizes = [4, 7, 6, 3]
        layers = []
        for i in range(3):
            w = rng.normal(size=(sizes[i + 1], sizes[i])) * (rng.random((sizes[i + 1], sizes[i])) < 0.35)
            layers.append(WeightLayer(f"l{i}", "fc", w, rng.normal(size=sizes[i + 1])))
        result = compact_layers(layers)
        x = rng.normal(size=(300, 4)) * 2
        np.testing.assert_allclose(forward(result.layers, x), forward(layers, x), atol=1e-12)
        # every removed unit is constant over the inputs, or no output depends on what it sends
        h = x
        for g, keep in enumerate(result.kept):
            lay = layers[g]
            h = np.maximum(h @ lay.weight.T + lay.bias, 0)
            for u in np.setdiff1d(np.arange(lay.n_out), keep):
                constant = np.ptp(h[:, u]) == 0
                rewired = [*layers]
                w = layers[g + 1].weight.copy()
                w[:, u] *= 2.5  # its existing connections, stronger
                rewired[g + 1] = WeightLayer("r", "fc", w, layers[g + 1].bias)
                mute = np.allclose(forward(rewired, x), forward(layers, x), atol=1e-12)
                assert constant or mute, (trial, g, u)


def test_removing_truly_dead_units_is_exact_and_approximate_units_fold_relu_bias():
    layers = planted()
    remove = [np.array([False, True, True, False, False]), np.zeros(4, bool)]
    result = remove_units(layers, remove)  # u1, u2 have no incoming weights: exact
    x = np.random.default_rng(3).normal(size=(50, 3))
    np.testing.assert_allclose(forward(result.layers, x), forward(layers, x), atol=1e-12)
    # a unit with inputs is folded as ReLU(b): its outgoing weights times max(b, 0) join the next bias
    live = [np.array([True, False, False, False, False]), np.zeros(4, bool)]
    approx = remove_units(layers, live)
    np.testing.assert_allclose(approx.layers[1].bias, layers[1].bias + layers[1].weight[:, 0] * 0.1)
    with pytest.raises(SurgeryError, match="one mask"):
        remove_units(layers, remove[:1])


def test_batch_norm_is_folded_exactly_and_required_first():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [6, 5], "batch_norm": True}, (4,), 3).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.2, 2)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-1, 1)
    model.eval()
    layers = extract_layers(model)
    with pytest.raises(SurgeryError, match="fold it first"):
        compact_layers(layers)
    folded = fold_batch_norm_into_layers(layers)
    x = np.random.default_rng(0).normal(size=(64, 4))
    expected = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(forward(folded, x), expected, rtol=1e-10, atol=1e-12)
    rebuilt, arch = mlp_from_layers(compact_layers(folded).layers, dtype=torch.float64)
    np.testing.assert_allclose(rebuilt(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    assert arch["model"]["name"] == "mlp" and arch["num_classes"] == 3


def test_surgery_refuses_conv_layers():
    conv = WeightLayer("c", "conv", np.ones((2, 1, 3, 3)))
    with pytest.raises(SurgeryError, match="MLPs"):
        compact_layers([conv, WeightLayer("f", "fc", np.ones((2, 2)))])
