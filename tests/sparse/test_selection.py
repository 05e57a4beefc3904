import pytest
import torch

from nnclust.nets.registry import build_model
from nnclust.sparse.selection import (
    SELECTIONS,
    ParameterSelector,
    SelectionError,
    magnitude_scores,
    output_classes,
    select,
)
from nnclust.training import train

SCORES = {"a": torch.tensor([[0.5, 3.0], [1.0, 0.1]]), "b": torch.tensor([2.0, 0.2, 4.0])}


def test_top_and_bottom_k_on_a_hand_built_tensor():
    top = select(SCORES, "top_k", 3)
    assert top["a"].tolist() == [[False, True], [False, False]] and top["b"].tolist() == [True, False, True]
    bottom = select(SCORES, "bottom_k", 2)
    assert bottom["a"].tolist() == [[False, False], [False, True]] and bottom["b"].tolist() == [False, True, False]
    half = select(SCORES, "top_k", 0.4)  # a fraction: round(0.4 * 7) = 3
    assert sum(int(m.sum()) for m in half.values()) == 3


@pytest.mark.parametrize("rule", SELECTIONS.names())
def test_every_rule_selects_exactly_k_and_is_seeded(rule):
    scores = {"w": torch.arange(100.0).reshape(10, 10)}
    a, b = select(scores, rule, 20, seed=3), select(scores, rule, 20, seed=3)
    assert int(a["w"].sum()) == 20 and torch.equal(a["w"], b["w"])


def test_gaussian_draw_stays_near_the_top_and_random_does_not():
    scores = {"w": torch.arange(1000.0)}
    g = select(scores, "gaussian", 50, seed=0, width=0.05)["w"]
    r = select(scores, "random", 50, seed=0)["w"]
    assert float(torch.nonzero(g).float().mean()) > 900  # ranks near the top (high scores)
    assert 300 < float(torch.nonzero(r).float().mean()) < 700
    assert not torch.equal(select(scores, "gaussian", 50, seed=1)["w"], g)


def test_bad_selections_are_clear_errors():
    with pytest.raises(SelectionError, match="cannot select 8 parameters: only 7"):
        select(SCORES, "top_k", 8)
    with pytest.raises(ValueError, match="unknown selection rule 'best'"):
        select(SCORES, "best", 2)


def test_output_classes_selects_rows_and_biases():
    model = build_model({"name": "mlp", "hidden": [5]}, (3,), 4)
    masks = output_classes(model, [1, 3], "layer1.fc.weight", "layer1.fc.bias")
    assert masks["layer1.fc.bias"].tolist() == [False, True, False, True]
    assert masks["layer1.fc.weight"][:, 0].tolist() == [False, True, False, True]
    with pytest.raises(SelectionError, match="classes must be in 0..3"):
        output_classes(model, [4], "layer1.fc.weight")


@pytest.mark.parametrize("opt", [{"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
                                 {"name": "adam", "lr": 0.05, "weight_decay": 0.01}])  # fmt: skip
def test_unselected_parameters_are_unchanged_bit_for_bit(opt):
    from nnclust.data import load_dataset

    data = load_dataset("moons", seed=0, n_samples=160)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, data.input_shape, data.num_classes)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    masks = select(magnitude_scores(model, ["layer0.fc.weight"]), "bottom_k", 5)
    selector = ParameterSelector(masks)
    train(model, data, epochs=3, batch_size=16, optimizer=opt, callbacks=[selector], progress=False)
    after = dict(model.named_parameters())
    sel = masks["layer0.fc.weight"]
    assert torch.equal(after["layer0.fc.weight"][~sel], before["layer0.fc.weight"][~sel])
    assert not torch.equal(after["layer0.fc.weight"][sel], before["layer0.fc.weight"][sel])
    for name in ("layer0.fc.bias", "layer1.fc.weight", "layer1.fc.bias"):  # not named: frozen whole
        assert torch.equal(after[name], before[name]), name
    assert selector.fraction == pytest.approx(5 / sum(p.numel() for p in model.parameters()))
