"""What must differ, and what must never happen: seeds, data order, masks after each step."""

import pytest
import torch

from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.pruning import magnitude_masks
from nnclust.training import MagnitudePruning, prunable_weights, train

OPT = {"name": "adam", "lr": 0.05}  # Adam's moments would regrow a pruned weight at once


def _moons():
    return load_dataset("moons", seed=0, n_samples=200)


def _model(data, init_seed=0):
    torch.manual_seed(init_seed)
    return build_model({"name": "mlp", "hidden": [12, 12]}, data.input_shape, data.num_classes)


class StepProbe:
    """After every optimiser step (and the pruner's on_step_end before it), record
    whether any masked weight is nonzero."""

    def __init__(self, pruner):
        self.pruner = pruner
        self.steps = 0
        self.leaks = 0

    def on_step_end(self, state):
        weights = prunable_weights(state.model)
        self.steps += 1
        self.leaks += sum(int((weights[n][~m] != 0).sum()) for n, m in self.pruner.masks.items())


def test_pruned_weights_stay_zero_after_every_single_step():
    data = _moons()
    model = _model(data)
    pruner = MagnitudePruning(0.6, 2, scope="layer")
    # masks in force from the first step on, as after an earlier pruning epoch
    pruner.masks = magnitude_masks(prunable_weights(model), 0.6, "layer")
    pruner.apply(model)
    probe = StepProbe(pruner)
    train(model, data, epochs=2, batch_size=16, optimizer=OPT, callbacks=[pruner, probe], progress=False)
    assert probe.steps == 2 * 10  # 160 training samples in batches of 16, two epochs
    assert probe.leaks == 0
    # and the probe can see a leak: without the pruner's step hook, Adam regrows weights
    model = _model(data)
    masks = magnitude_masks(prunable_weights(model), 0.6, "layer")
    bare = MagnitudePruning(0.6, 2, scope="layer")
    bare.masks = masks
    bare.apply(model)
    leaky = StepProbe(bare)
    train(model, data, epochs=1, batch_size=16, optimizer=OPT, callbacks=[leaky], progress=False)
    assert leaky.leaks > 0


def _trained_weights(data, seed, init_seed=0):
    model = _model(data, init_seed)
    train(model, data, epochs=1, batch_size=16, optimizer=OPT, seed=seed, progress=False)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_run_seed_sets_the_data_order_with_the_init_held_fixed():
    data = _moons()
    first = _trained_weights(data, seed=3)
    assert torch.equal(first, _trained_weights(data, seed=3))  # same seed, same order, same numbers
    assert not torch.equal(first, _trained_weights(data, seed=4))  # same init, other order


def test_data_order_stream_draws_a_different_permutation_per_seed():
    from nnclust.core import seeding

    a = torch.randperm(100, generator=seeding.torch_generator(3, "data_order"))
    b = torch.randperm(100, generator=seeding.torch_generator(4, "data_order"))
    c = torch.randperm(100, generator=seeding.torch_generator(3, "data_order"))
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_global_and_layer_scopes_differ_where_they_must():
    # layer 'big' holds only large weights, 'small' only small ones: at 50% sparsity the
    # layer scope prunes half of each, the global scope all of 'small' and none of 'big'.
    w = {"big": torch.arange(10.0, 20.0), "small": torch.arange(1.0, 11.0) / 100}
    layer = magnitude_masks(w, 0.5, "layer")
    glob = magnitude_masks(w, 0.5, "global")
    assert int(layer["big"].sum()) == 5 and int(layer["small"].sum()) == 5
    assert bool(glob["big"].all()) and not bool(glob["small"].any())


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_scope_reaches_the_sparsity_of_the_whole_network(scope):
    w = {"big": torch.arange(10.0, 20.0), "small": torch.arange(1.0, 11.0) / 100}
    masks = magnitude_masks(w, 0.3, scope)
    assert sum(int((~m).sum()) for m in masks.values()) == 6


def test_mse_objective_trains_a_regression_and_reports_no_accuracy():
    from nnclust.data import Dataset
    from nnclust.training import OBJECTIVES, evaluate

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(256, 2, generator=gen)
    y = (x[:, :1] - 2 * x[:, 1:]).float()  # a linear target, which an MLP learns to a small error
    data = Dataset("linear", x[:200], y[:200], x[200:], y[200:], (2,), 1, objective="mse")
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, (2,), 1)
    before, acc = evaluate(model, data.x_test, data.y_test, objective="mse")
    assert acc != acc  # NaN: regression has no accuracy
    with torch.no_grad():
        expected = float(((model(data.x_test) - data.y_test) ** 2).mean())
    assert before == pytest.approx(expected, rel=1e-6)  # mean over the whole test set, not per batch
    state = train(model, data, epochs=30, batch_size=32, optimizer=OPT, objective="mse", progress=False)
    assert state.metrics["test_loss"] < before / 10
    with pytest.raises(ValueError, match=r"unknown objective 'hinge'.*'cross_entropy', 'mse'"):
        OBJECTIVES["hinge"]


def test_mse_test_loss_is_the_training_mean_for_wide_outputs():
    from nnclust.training import evaluate

    torch.manual_seed(1)
    model = build_model({"name": "mlp", "hidden": [8]}, (3,), 4)
    x, y = torch.rand(50, 3), torch.rand(50, 4)
    with torch.no_grad():
        expected = float(((model(x) - y) ** 2).mean())
    loss, _ = evaluate(model, x, y, batch_size=7, objective="mse")
    assert loss == pytest.approx(expected, rel=1e-6)
