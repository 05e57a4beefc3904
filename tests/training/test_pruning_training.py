import numpy as np
import pytest
import torch

from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.pruning import SCHEDULES, magnitude_masks, polynomial_sparsity, schedule, sparsity_of
from nnclust.training import OPTIMIZERS, MagnitudePruning, make_optimizer, prunable_weights, train


def test_polynomial_schedule_closed_form():
    # 10 epochs, pruning over the last 4: epochs 6..9 -> t = 1..4
    values = [polynomial_sparsity(e, 10, 4, 0.9) for e in range(10)]
    assert values[:6] == [0.0] * 6
    for t, v in zip(range(1, 5), values[6:]):
        assert v == pytest.approx(0.9 - 0.9 * (1 - t / 4) ** 3)
    assert values[-1] == pytest.approx(0.9)
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_polynomial_schedule_with_fine_tuning_ends_its_window_early():
    # 10 epochs, 4 of pruning, then 3 of fine-tuning: the window is epochs 3..6.
    values = [polynomial_sparsity(e, 10, 4, 0.9, num_finetune_epochs=3) for e in range(10)]
    assert values[:3] == [0.0] * 3
    for t, v in zip(range(1, 5), values[3:7]):
        assert v == pytest.approx(0.9 - 0.9 * (1 - t / 4) ** 3)
    assert values[6:] == [pytest.approx(0.9)] * 4
    # no fine-tuning is the old schedule
    assert [polynomial_sparsity(e, 10, 4, 0.9, num_finetune_epochs=0) for e in range(10)] == [
        polynomial_sparsity(e, 10, 4, 0.9) for e in range(10)
    ]
    with pytest.raises(ValueError, match="num_finetune_epochs=7"):
        polynomial_sparsity(0, 10, 4, 0.9, num_finetune_epochs=7)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_reaches_its_target(name):
    assert schedule(name)(9, 10, 5, 0.75) == pytest.approx(0.75)


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="final_sparsity"):
        polynomial_sparsity(0, 10, 4, 1.0)
    with pytest.raises(ValueError, match="num_pruning_epochs"):
        polynomial_sparsity(0, 10, 11, 0.5)
    with pytest.raises(ValueError, match=r"unknown pruning schedule 'cubic'.*polynomial"):
        schedule("cubic")


def test_layerwise_masks_remove_the_smallest_in_each_layer():
    w = {"a": torch.tensor([[0.1, -5.0], [2.0, -0.2]]), "b": torch.tensor([3.0, 0.01, -1.0, 4.0, 0.5])}
    m = magnitude_masks(w, 0.4, "layer")
    assert m["a"].tolist() == [[False, True], [True, False]]  # round(0.4 * 4) = 2 pruned
    assert m["b"].tolist() == [True, False, True, True, False]


def test_global_masks_rank_all_weights_together_and_stay_monotone():
    w = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([10.0, 20.0, 0.5, 0.7])}
    m = magnitude_masks(w, 3 / 7, "global")
    assert m["a"].tolist() == [False, True, True] and m["b"].tolist() == [True, True, False, False]
    assert sparsity_of(m) == pytest.approx(3 / 7)
    # a weight that grew back after being masked stays pruned
    w["b"][2] = 100.0
    m2 = magnitude_masks(w, 3 / 7, "global", previous=m)
    assert not m2["b"][2]


def test_bad_scope_is_rejected():
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks({"a": torch.ones(3)}, 0.5, "neuron")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_builds(name):
    opt = make_optimizer({"name": name, "lr": 0.1}, [torch.nn.Parameter(torch.ones(2))])
    assert opt.param_groups[0]["lr"] == 0.1


def test_unknown_optimizer_and_keys():
    with pytest.raises(ValueError, match=r"unknown optimizer 'rmsprop'.*'adam'"):
        make_optimizer({"name": "rmsprop"}, [torch.nn.Parameter(torch.ones(2))])
    with pytest.raises(ValueError, match="lrate"):
        make_optimizer({"name": "adam", "lrate": 1}, [torch.nn.Parameter(torch.ones(2))])


def _moons_run(seed, epochs=6, pruner=None):
    data = load_dataset("moons", seed=0, n_samples=400)
    torch.manual_seed(seed)
    model = build_model({"name": "mlp", "hidden": [16, 16]}, data.input_shape, data.num_classes)
    logged = []
    state = train(
        model, data, epochs=epochs, batch_size=32, optimizer={"name": "sgd", "lr": 0.1}, seed=seed,
        callbacks=[pruner] if pruner else [], log=lambda n, v, s: logged.append((n, v, s)), progress=False,
    )  # fmt: skip
    return model, state, logged


def test_training_learns_and_is_reproducible():
    m1, s1, log1 = _moons_run(0)
    m2, _, log2 = _moons_run(0)
    m3, _, _ = _moons_run(1)
    assert s1.metrics["test_accuracy"] > 0.8
    losses = [v for n, v, _ in log1 if n == "train_loss"]
    assert losses[-1] < losses[0]
    assert log1 == log2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not torch.equal(m1.layer0.fc.weight, m3.layer0.fc.weight)


def test_pruning_callback_reaches_final_sparsity_and_keeps_pruned_weights_zero():
    pruner = MagnitudePruning(0.8, 3, scope="global")
    model, state, log = _moons_run(0, epochs=6, pruner=pruner)
    weights = prunable_weights(model)
    total = sum(w.numel() for w in weights.values())
    zeros = sum((w == 0).sum().item() for w in weights.values())
    assert zeros / total == pytest.approx(0.8, abs=1 / total)
    sparsity = [v for n, v, _ in log if n == "sparsity"]
    assert sparsity[:3] == [0.0, 0.0, 0.0] and sparsity[-1] == pytest.approx(0.8, abs=1e-3)
    for name, mask in pruner.masks.items():
        assert torch.all(weights[name][~mask] == 0)
    assert np.isclose(state.metrics["sparsity"], sparsity[-1])


def test_pruned_network_fine_tunes_with_its_mask_fixed():
    pruner = MagnitudePruning(0.8, 3, scope="global", num_finetune_epochs=3)
    model, _, log = _moons_run(0, epochs=8, pruner=pruner)
    sparsity = [v for n, v, _ in log if n == "sparsity"]
    assert sparsity[:2] == [0.0, 0.0] and 0 < sparsity[2] < 0.8
    assert sparsity[4:] == [pytest.approx(0.8, abs=1e-3)] * 4  # window ends at epoch 4 of 0..7
    weights = prunable_weights(model)
    for name, mask in pruner.masks.items():
        assert torch.all(weights[name][~mask] == 0)
