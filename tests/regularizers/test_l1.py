import pytest
import torch

from nnclust.nets.registry import build_model
from nnclust.regularizers import L1Penalty, build_regularizer


class _State:
    def __init__(self, model):
        self.model, self.metrics = model, {}


def test_l1_term_is_lambda_times_the_weight_l1_norm_and_skips_biases():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [5]}, (3,), 2)
    reg = build_regularizer({"name": "l1", "lambda": 0.5})
    state = _State(model)
    term = reg.loss_term(state)
    expected = 0.5 * (model.layer0.fc.weight.abs().sum() + model.layer1.fc.weight.abs().sum())
    assert float(term.detach()) == pytest.approx(float(expected.detach()))
    term.backward()
    # d/dw of lam |w| is lam sign(w); biases get no gradient from the penalty
    torch.testing.assert_close(model.layer0.fc.weight.grad, 0.5 * model.layer0.fc.weight.sign())
    assert model.layer0.fc.bias.grad is None
    reg.on_epoch_end(state)
    assert state.metrics["l1_term"] == pytest.approx(float(expected.detach()))


def test_l1_config_errors():
    with pytest.raises(ValueError, match="lambda must be a number >= 0"):
        L1Penalty(-1.0)
    with pytest.raises(ValueError, match="lamda"):
        build_regularizer({"name": "l1", "lamda": 0.1})
