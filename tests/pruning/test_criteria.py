"""Pruning criteria on a hand-built network whose kept weights are worked out by hand."""

import pytest
import torch

from nnclust.core.constraints import ConfigError, validate
from nnclust.data import load_dataset
from nnclust.experiments import train as train_experiment
from nnclust.nets.registry import build_model
from nnclust.nets.validate import layer_modules
from nnclust.pruning import CRITERIA, activation_stats, criterion_masks, magnitude_masks, sparsity_of
from nnclust.training import MagnitudePruning, prunable_weights, train

# Four samples of three features. Per feature: mean a = [1, 0.5, -0.5],
# mean |a| = [1, 0.5, 1.5], fraction nonzero = [1, 0.25, 0.75].
X = torch.tensor([[1.0, 0.0, -2.0], [1.0, 0.0, 2.0], [1.0, 2.0, -2.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
W0 = [[0.3, -0.8, 0.4], [-0.6, 0.5, -0.2]]
B0 = [0.6, 1.2]
# Hidden activations h = ReLU(W0 x + B0), per sample: (0.1, 1.0), (1.7, 0.2), (0, 2.0), (0.9, 0.6):
# mean h = [0.675, 0.95], fraction nonzero = [0.75, 1].
W1 = [[1.0, -0.1], [0.2, -0.3]]

# Layer 0 pruned to 50% (3 of 6 weights), the last layer kept dense. Scores of W0:
#   magnitude        |w|                [[.3, .8, .4], [.6, .5, .2]]   -> prune .2 .3 .4
#   mav              |w * mean a|       [[.3, .4, .2], [.6, .25, .1]]  -> prune .1 .2 .25
#   maav             |w| * mean |a|     [[.3, .4, .6], [.6, .25, .3]]  -> prune .25, then both .3 (the
#                                                                        tie goes to the smaller |w|)
#   activation_rank  fraction nonzero   [[1, .25, .75], [1, .25, .75]] -> prune the .25 column, then
#                                                                        of the .75 the smaller |w| (.2)
#   negative_only    |w| of w < 0       -.8, -.6, -.2                  -> all three
#   positive_only    |w| of w > 0       .3, .4, .5                     -> all three
EXPECTED_LAYER0 = {
    "magnitude": [[False, True, False], [True, True, False]],
    "mav": [[True, True, False], [True, False, False]],
    "maav": [[False, True, True], [True, False, False]],
    "activation_rank": [[True, False, True], [True, False, False]],
    "negative_only": [[True, False, True], [False, True, False]],
    "positive_only": [[False, True, False], [True, False, True]],
}


def hand_built():
    model = build_model({"name": "mlp", "hidden": [2]}, (3,), 2).double()
    first, last = layer_modules(model)
    with torch.no_grad():
        first.linear.weight.copy_(torch.tensor(W0, dtype=torch.float64))
        first.linear.bias.copy_(torch.tensor(B0, dtype=torch.float64))
        last.linear.weight.copy_(torch.tensor(W1, dtype=torch.float64))
        last.linear.bias.zero_()
    return model


def test_every_criterion_has_a_worked_example():
    assert sorted(EXPECTED_LAYER0) == CRITERIA.names()


@pytest.mark.parametrize("name", CRITERIA.names())
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_criterion_keeps_the_weights_worked_out_by_hand(name, scope):
    model = hand_built()
    weights = prunable_weights(model)
    stats = activation_stats(model, X) if CRITERIA[name].needs_data else None
    # with the last layer dense, the global ranking sees layer 0 alone: both scopes agree
    masks = criterion_masks(weights, 0.5, name, scope, stats=stats, keep_last_dense=True)
    assert masks["layer0.fc.weight"].tolist() == EXPECTED_LAYER0[name]
    assert masks["layer1.fc.weight"].all()


def test_activation_statistics_are_those_of_each_layers_input():
    stats = activation_stats(hand_built(), X)
    first, hidden = stats["layer0.fc.weight"], stats["layer1.fc.weight"]
    torch.testing.assert_close(first.mean, torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64))
    torch.testing.assert_close(first.mean_abs, torch.tensor([1.0, 0.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(first.fire_rate, torch.tensor([1.0, 0.25, 0.75], dtype=torch.float64))
    torch.testing.assert_close(hidden.mean, torch.tensor([0.675, 0.95], dtype=torch.float64))
    torch.testing.assert_close(hidden.mean_abs, hidden.mean)  # after a ReLU, a = |a|
    torch.testing.assert_close(hidden.fire_rate, torch.tensor([0.75, 1.0], dtype=torch.float64))
    assert first.num_samples == 4
    # batching does not change them
    again = activation_stats(hand_built(), X, batch_size=3)["layer1.fc.weight"]
    torch.testing.assert_close(again.mean, hidden.mean)


def test_global_and_layer_scopes_differ_when_layers_have_different_scales():
    model = hand_built()
    weights = prunable_weights(model)
    layer = criterion_masks(weights, 0.5, "magnitude", "layer")
    overall = criterion_masks(weights, 0.5, "magnitude", "global")
    # |W1| = [[1, .1], [.2, .3]]: per layer, 2 of its 4 go; globally 5 of the 10 smallest
    # |w| are .1 .2 .2 .3 .3 (W1's .1, .2, .3 and W0's .2, .3)
    assert layer["layer1.fc.weight"].tolist() == [[True, False], [False, True]]
    assert overall["layer1.fc.weight"].tolist() == [[True, False], [False, False]]
    assert overall["layer0.fc.weight"].tolist() == [[False, True, True], [True, True, False]]
    assert sparsity_of(layer) == sparsity_of(overall) == 0.5


def test_magnitude_criterion_is_magnitude_pruning():
    torch.manual_seed(0)
    weights = prunable_weights(build_model({"name": "mlp", "hidden": [20, 20]}, (8,), 3))
    for scope in ("layer", "global"):
        previous = magnitude_masks(weights, 0.3, scope)
        a = criterion_masks(weights, 0.7, "magnitude", scope, previous)
        b = magnitude_masks(weights, 0.7, scope, previous)
        assert all(torch.equal(a[n], b[n]) for n in a)


def test_sign_criteria_stop_when_no_weight_of_their_sign_is_left():
    weights = prunable_weights(hand_built())
    masks = criterion_masks(weights, 0.9, "positive_only", "global")
    for name, w in weights.items():
        assert torch.equal(masks[name], w <= 0)  # every positive weight went, nothing else


def test_earlier_masks_stay_in_force():
    model = hand_built()
    weights = prunable_weights(model)
    stats = activation_stats(model, X)
    first = criterion_masks(weights, 0.5, "mav", stats=stats, keep_last_dense=True)
    # a later step with another criterion keeps everything mav removed
    later = criterion_masks(weights, 0.5, "positive_only", previous=first, keep_last_dense=True)
    for name in first:
        assert not (later[name] & ~first[name]).any()


def test_unknown_criterion_and_missing_data_are_clear_errors():
    weights = prunable_weights(hand_built())
    with pytest.raises(ValueError, match=r"unknown pruning criterion 'snip'; valid names are \['activation_rank'"):
        criterion_masks(weights, 0.5, "snip")
    for name in ("mav", "maav", "activation_rank"):
        with pytest.raises(ValueError, match=f"'{name}' scores weights by their input activations and needs data"):
            criterion_masks(weights, 0.5, name)
        with pytest.raises(ValueError, match="needs a data batch"):
            MagnitudePruning(0.5, 2, criterion=name)
    with pytest.raises(ValueError, match="unknown pruning criterion 'snip'"):
        MagnitudePruning(0.5, 2, criterion="snip")


def test_config_names_the_bad_criterion_before_a_run():
    config = {"pruning": {"criterion": "snip", "keep_last_dense": "yes"}}
    with pytest.raises(ConfigError) as err:
        validate(config, train_experiment.CONSTRAINTS, sections=train_experiment.SECTIONS)
    assert "pruning.criterion='snip'" in str(err.value) and "'maav'" in str(err.value)
    assert "pruning.keep_last_dense='yes'" in str(err.value)


@pytest.mark.parametrize("name", ["maav", "activation_rank"])
def test_training_prunes_with_a_data_criterion_and_spares_the_last_layer(name):
    data = load_dataset("moons", seed=0, n_samples=300)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16, 16]}, data.input_shape, data.num_classes)
    pruner = MagnitudePruning(0.6, 2, criterion=name, data=data.x_train[:64], keep_last_dense=True)
    train(model, data, epochs=4, batch_size=32, optimizer={"name": "adam", "lr": 0.02}, callbacks=[pruner],
          progress=False)  # fmt: skip
    masks = pruner.masks
    assert list(masks) == ["layer0.fc.weight", "layer1.fc.weight", "layer2.fc.weight"]
    assert masks["layer2.fc.weight"].all()
    for n in ("layer0.fc.weight", "layer1.fc.weight"):
        assert (~masks[n]).double().mean().item() == pytest.approx(0.6, abs=0.02)
    weights = prunable_weights(model)
    assert all(torch.all(weights[n][~m] == 0) for n, m in masks.items())


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_prunes_a_cnn_with_per_channel_statistics(name):
    torch.manual_seed(0)
    model = build_model({"name": "cnn", "conv_channels": [4, 8], "hidden": [16]}, (1, 8, 8), 10)
    stats = activation_stats(model, torch.rand(20, 1, 8, 8))
    assert stats["layer1.conv.weight"].mean.shape == (4,)  # one entry per input channel of the conv
    assert stats["layer2.fc.weight"].mean.shape == (8 * 2 * 2,)  # the flattened conv features
    weights = prunable_weights(model)
    for scope in ("layer", "global"):
        masks = criterion_masks(weights, 0.7, name, scope, stats=stats)
        assert all(masks[n].shape == w.shape for n, w in weights.items())
        if name.endswith("_only"):  # only the weights of one sign may go
            sign = -1 if name == "negative_only" else 1
            assert all(torch.all(w[~masks[n]] * sign > 0) for n, w in weights.items())
        else:
            assert sparsity_of(masks) == pytest.approx(0.7, abs=1e-3)
