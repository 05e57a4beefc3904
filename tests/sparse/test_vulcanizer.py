import numpy as np
import pytest

from nnclust.nets.weight_layer import WeightLayer
from nnclust.sparse.vulcanizer import (
    VulcanizerError,
    forward_below,
    make_split,
    merge,
    project,
    unit_importance,
)


def forward(layers, x):
    for i, lay in enumerate(layers):
        x = x @ lay.weight.T + lay.bias
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


def random_layers(seed=0, sizes=(5, 9, 8, 3)):
    rng = np.random.default_rng(seed)
    return [
        WeightLayer(f"l{i}", "fc", rng.normal(size=(sizes[i + 1], sizes[i])), rng.normal(size=sizes[i + 1]))
        for i in range(len(sizes) - 1)
    ]


def test_split_and_merge_without_training_returns_the_original():
    layers = random_layers()
    x = np.random.default_rng(1).normal(size=(40, 5))
    split = make_split(layers, unit_importance(layers, x), k=3, m=2)
    merged = merge(layers, split, project(layers, split))
    for a, b in zip(merged, layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_merged_model_projects_onto_the_trained_sub_model():
    layers = random_layers(2)
    split = make_split(layers, [np.arange(9.0), np.arange(8.0)], k=4, m=2)
    sub = project(layers, split)
    rng = np.random.default_rng(3)
    trained = [WeightLayer(s.name, "fc", s.weight + rng.normal(size=s.weight.shape), s.bias + 1.0) for s in sub]
    again = project(merge(layers, split, trained), split)
    for a, b in zip(again, trained):
        np.testing.assert_allclose(a.weight, b.weight, atol=1e-12)
        np.testing.assert_allclose(a.bias, b.bias, atol=1e-12)


def test_sub_model_equals_the_full_model_when_collapsed_units_are_identical():
    layers = random_layers(4)
    rest = [np.array([0, 2, 5, 7]), np.array([1, 3, 6])]
    for i, r in zip((1, 2), rest):  # the units of each rest group compute the same thing
        lay = layers[i - 1]
        lay.weight[r] = lay.weight[r[0]]
        lay.bias[r] = lay.bias[r[0]]
    importance = [np.where(np.isin(np.arange(9), rest[0]), 0.0, 1.0), np.where(np.isin(np.arange(8), rest[1]), 0, 1.0)]
    split = make_split(layers, importance, k=5, m=2)
    assert [r.tolist() for r in split.rest] == [r.tolist() for r in rest]
    x = np.random.default_rng(5).normal(size=(60, 5))
    sub = project(layers, split)
    np.testing.assert_allclose(forward(sub, forward_below(layers, split, x)), forward(layers, x), atol=1e-10)


def test_bad_splits_are_clear_errors():
    layers = random_layers()
    with pytest.raises(VulcanizerError, match=r"k must be an int in \[1, 8\]"):
        make_split(layers, [np.ones(9), np.ones(8)], k=9, m=2)
    with pytest.raises(VulcanizerError, match=r"m must be an int in \[1, 2\]"):
        make_split(layers, [np.ones(9), np.ones(8)], k=2, m=3)


def test_training_the_sub_model_and_merging_back_keeps_or_improves_the_loss(pruned_digits_mlp):
    from nnclust.data import load_dataset
    from nnclust.experiments.vulcanize import vulcanize
    from nnclust.nets.checkpoint import load_checkpoint
    from nnclust.training import evaluate

    run, _ = pruned_digits_mlp
    model = load_checkpoint(run.artifacts["unpruned_model.pt"]).build_model()
    data = load_dataset("digits", seed=0)
    full_before = evaluate(model, data.x_train, data.y_train)[0]
    out = vulcanize(model, data, k=16, m=1, epochs=3, optimizer={"name": "adam", "lr": 1e-3})
    full_after = evaluate(out["model"], data.x_train, data.y_train)[0]
    assert full_after < full_before
    assert out["accuracy_merged"] == pytest.approx(out["accuracy_sub_model"], abs=1e-9)  # exact for m = 1


def test_gaussian_unit_choice_is_seeded_and_leans_to_the_important_units():
    from nnclust.sparse.vulcanizer import choose_units

    importance = np.arange(200.0)  # unit 199 is the most important
    picks = [choose_units(importance, 10, "gaussian", seed=s, width=0.1) for s in range(5)]
    assert all(p.size == 10 and np.unique(p).size == 10 for p in picks)
    assert np.array_equal(picks[0], choose_units(importance, 10, "gaussian", seed=0, width=0.1))
    assert not np.array_equal(picks[0], picks[1])
    assert np.mean([p.mean() for p in picks]) > 170  # within the top ~15% on average
    assert choose_units(importance, 3, "max").tolist() == [197, 198, 199]
    with pytest.raises(VulcanizerError, match="unknown unit rule"):
        choose_units(importance, 3, "median")


def _vulcanize_spied(monkeypatch, train_mean_units):
    """vulcanize on a small moons MLP, with the trained wrapped sub-model and its test
    inputs caught on their way into training."""
    import torch

    import nnclust.experiments.vulcanize as body
    from nnclust.data import load_dataset
    from nnclust.nets.registry import build_model

    seen = {}
    real_train = body.train

    def train(model, data, **kw):
        seen["wrapped"], seen["sub_data"] = model, data
        seen["initial"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return real_train(model, data, **kw)

    monkeypatch.setattr(body, "train", train)
    data = load_dataset("moons", seed=0, n_samples=300, noise=0.2)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [12, 12]}, data.input_shape, data.num_classes)
    out = body.vulcanize(model, data, k=3, m=1, epochs=3, optimizer={"name": "adam", "lr": 0.05},
                         train_mean_units=train_mean_units)  # fmt: skip
    return model, data, out, seen


def test_with_frozen_mean_units_the_merge_at_m_1_is_the_trained_sub_model(monkeypatch):
    import torch

    _, data, out, seen = _vulcanize_spied(monkeypatch, train_mean_units=False)
    with torch.no_grad():
        sub = seen["wrapped"](seen["sub_data"].x_test).double()
        merged = out["model"](data.x_test).double()
    # both in float32: equal to its rounding, far below what training moved
    trained = {k: v for k, v in seen["wrapped"].state_dict().items()}
    moved = max((trained[k] - seen["initial"][k]).abs().max().item() for k in trained)
    assert moved > 1e-2
    torch.testing.assert_close(merged, sub, rtol=0, atol=1e-5 * sub.abs().max().item())
    # the mean unit's incoming row, bias and outgoing column did not move
    last_in, last_out = "sub.layer0.fc.weight", "sub.layer1.fc.weight"  # m = 1: hidden, output
    assert torch.equal(trained[last_in][-1], seen["initial"][last_in][-1])
    assert torch.equal(trained[last_out][:, -1], seen["initial"][last_out][:, -1])


def test_training_the_mean_units_moves_them_and_the_merged_model(monkeypatch):
    import torch

    _, data, frozen, _ = _vulcanize_spied(monkeypatch, train_mean_units=False)
    _, _, free, seen = _vulcanize_spied(monkeypatch, train_mean_units=True)
    trained = seen["wrapped"].state_dict()
    assert not torch.equal(trained["sub.layer0.fc.weight"][-1], seen["initial"]["sub.layer0.fc.weight"][-1])
    assert not torch.equal(trained["sub.layer1.fc.weight"][:, -1], seen["initial"]["sub.layer1.fc.weight"][:, -1])
    with torch.no_grad():
        assert not torch.equal(frozen["model"](data.x_test), free["model"](data.x_test))
