import pytest
import torch

from nnclust.sparse.mixing import MIXERS, MixError, mix

A = {"w": torch.tensor([1.0, 0.0, -3.0, 4.0]), "n": torch.tensor(7)}
B = {"w": torch.tensor([2.0, 5.0, 0.0, -1.0]), "n": torch.tensor(9)}


@pytest.mark.parametrize("method", MIXERS.names())
def test_a_model_mixed_with_itself_is_itself(method):
    out = mix([A, A], method, keep=1.0)  # rank_and_zero keeps every entry only with keep=1
    assert torch.equal(out["w"], A["w"]) and torch.equal(out["n"], A["n"])


def test_average_and_weighted_closed_forms():
    assert mix([A, B], "average")["w"].tolist() == [1.5, 2.5, -1.5, 1.5]
    # |w| weights: (|1|*1 + |2|*2) / 3, (0 + 5*5) / 5, (3*-3 + 0) / 3, (4*4 + 1*-1) / 5
    assert mix([A, B], "weighted")["w"].tolist() == pytest.approx([5 / 3, 5.0, -3.0, 3.0])
    assert torch.equal(mix([A, B], "average")["n"], A["n"])  # integer buffers come from the first model


def test_rank_and_zero_on_hand_built_pair():
    # percentile ranks of |w|: A -> [1/3, 0, 2/3, 1], B -> [2/3, 1, 0, 1/3]
    out = mix([A, B], "rank_and_zero", keep=0.5)
    # best ranks [2/3 (B), 1 (B), 2/3 (A), 1 (A)], all >= 0.5: each from its winner
    assert out["w"].tolist() == [2.0, 5.0, -3.0, 4.0]
    strict = mix([A, B], "rank_and_zero", keep=0.2)  # only ranks >= 0.8 survive
    assert strict["w"].tolist() == [0.0, 5.0, 0.0, 4.0]


def test_replace_by_nonzero_fills_zeros_in_order():
    c = {"w": torch.tensor([9.0, 9.0, 7.0, 9.0]), "n": torch.tensor(1)}
    assert mix([A, B, c], "replace_by_nonzero")["w"].tolist() == [1.0, 5.0, -3.0, 4.0]
    assert mix([B, A], "replace_by_nonzero")["w"].tolist() == [2.0, 5.0, -3.0, -1.0]


def test_mismatched_architectures_are_clear_errors():
    with pytest.raises(MixError, match="'w' is \\(3,\\), model 0 has \\(4,\\)"):
        mix([A, {"w": torch.ones(3), "n": torch.tensor(1)}])
    with pytest.raises(MixError, match="missing \\['n'\\]"):
        mix([A, {"w": torch.ones(4)}])
    with pytest.raises(MixError, match="at least two models"):
        mix([A])


def test_maav_importances_weight_the_mix_and_biases_fall_back_to_magnitude():
    from nnclust.nets.registry import build_model
    from nnclust.sparse.selection import SelectionError, criterion_scores

    torch.manual_seed(0)
    a, b = (build_model({"name": "mlp", "hidden": [5]}, (3,), 2) for _ in range(2))
    x = torch.rand(40, 3)
    imps = [criterion_scores(m, "maav", x) for m in (a, b)]
    assert set(imps[0]) == {"layer0.fc.weight", "layer1.fc.weight"}
    # maav = |w| * mean |input|: for the first layer the inputs are x itself
    expected = a.layer0.fc.weight.detach().abs().double() * x.abs().mean(0).double()
    assert torch.allclose(imps[0]["layer0.fc.weight"], expected)
    out = mix([a.state_dict(), b.state_dict()], "weighted", importances=imps)
    wa, wb = a.layer0.fc.weight.detach(), b.layer0.fc.weight.detach()
    ia, ib = imps[0]["layer0.fc.weight"].float(), imps[1]["layer0.fc.weight"].float()
    assert torch.allclose(out["layer0.fc.weight"], (ia * wa + ib * wb) / (ia + ib))
    ba, bb = a.layer0.fc.bias.detach(), b.layer0.fc.bias.detach()
    assert torch.allclose(out["layer0.fc.bias"], (ba.abs() * ba + bb.abs() * bb) / (ba.abs() + bb.abs()))
    with pytest.raises(SelectionError, match="pass a data batch"):
        criterion_scores(a, "maav")
