"""Multi-task objectives, early stopping and fixed masks."""

import pytest
import torch
import torch.nn.functional as F

from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.training import OBJECTIVES, EarlyStopping, FixedMasks, evaluate, task_accuracy, train

OPT = {"name": "adam", "lr": 0.02}


def test_multitask_binary_is_mean_bce_over_tasks():
    out = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-2.0, 0.1]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    obj = OBJECTIVES["multitask_binary"]
    assert obj.loss(out, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(out, y).item())
    assert obj.loss(out, y, "sum").item() == pytest.approx(3 * F.binary_cross_entropy_with_logits(out, y).item())
    assert obj.task_correct(out, y).tolist() == [2, 2]  # row 1 task 0 and row 2 task 1 wrong
    assert obj.correct(out, y) == pytest.approx(2.0)


def test_multitask_softmax_scores_each_head_alone():
    out = torch.tensor([[5.0, 0.0, 0.0, 0.0, 9.0, 0.0], [0.0, 0.0, 7.0, 8.0, 0.0, 0.0]])  # 2 tasks x 3 classes
    y = torch.tensor([[0, 1], [2, 1]])
    obj = OBJECTIVES["multitask_softmax"]
    want = (
        F.cross_entropy(out[:, :3], y[:, 0], reduction="none") + F.cross_entropy(out[:, 3:], y[:, 1], reduction="none")
    ) / 2
    assert obj.loss(out, y).item() == pytest.approx(want.mean().item())
    assert obj.task_correct(out, y).tolist() == [2, 1]  # row 1, task 1: head [8, 0, 0] says 0, label 1
    with pytest.raises(ValueError, match="equal softmax heads"):
        obj.loss(out[:, :5], y)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_has_loss_and_correct(name):
    obj = OBJECTIVES[name]
    out = torch.zeros(4, 4, requires_grad=True)
    y = {"cross_entropy": torch.tensor([0, 1, 2, 3]), "mse": torch.ones(4, 4),
         "multitask_binary": torch.ones(4, 4), "multitask_softmax": torch.tensor([[0, 1]] * 4)}[name]  # fmt: skip
    loss = obj.loss(out, y)
    loss.backward()
    assert loss.item() > 0 and out.grad.abs().sum() > 0
    if name != "mse":  # mse sums over every element, not per sample
        assert obj.loss(out, y, "sum").item() == pytest.approx(4 * loss.item())


def test_concat_moons_trains_with_per_task_accuracy():
    data = load_dataset("concat", seed=0, n_samples=400)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [24, 24]}, data.input_shape, data.num_classes)
    train(model, data, epochs=15, batch_size=32, optimizer=OPT, progress=False, objective=data.objective)
    _, acc = evaluate(model, data.x_test, data.y_test, objective=data.objective)
    tasks = task_accuracy(model, data.x_test, data.y_test, data.objective)
    assert len(tasks) == 2 and min(tasks) > 0.9
    assert acc == pytest.approx(sum(tasks) / 2)


def test_early_stopping_by_patience_and_by_cutoff():
    data = load_dataset("concat", seed=0, n_samples=200)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, data.input_shape, data.num_classes)
    # a learning rate of ~0 leaves the loss flat: patience 2 stops at epoch index 2
    stop = EarlyStopping(patience=2, min_delta=1e-3)
    state = train(model, data, epochs=50, batch_size=64, optimizer={"name": "sgd", "lr": 1e-12}, callbacks=[stop],
                  progress=False, objective=data.objective)  # fmt: skip
    assert stop.stopped_epoch == 2 and state.epoch == 2
    cut = EarlyStopping(loss_cutoff=10.0)  # any loss is below 10: stops after the first epoch
    train(model, data, epochs=50, batch_size=64, optimizer=OPT, callbacks=[cut], progress=False,
          objective=data.objective)  # fmt: skip
    assert cut.stopped_epoch == 0
    off = EarlyStopping()
    train(
        model, data, epochs=3, batch_size=64, optimizer=OPT, callbacks=[off], progress=False, objective=data.objective
    )
    assert off.stopped_epoch is None
    with pytest.raises(ValueError, match="must be >= 0"):
        EarlyStopping(patience=-1)


def test_fixed_masks_keep_weights_and_biases_at_zero():
    data = load_dataset("concat", seed=0, n_samples=200)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, data.input_shape, data.num_classes)
    masks = {"layer0.fc.weight": torch.rand(8, 4) > 0.5, "layer0.fc.bias": torch.tensor([True, False] * 4)}
    train(model, data, epochs=2, batch_size=32, optimizer=OPT, callbacks=[FixedMasks(masks)], progress=False,
          objective=data.objective)  # fmt: skip
    assert (model.layer0.fc.weight[~masks["layer0.fc.weight"]] == 0).all()
    assert (model.layer0.fc.bias[1::2] == 0).all() and (model.layer0.fc.bias[0::2] != 0).all()
