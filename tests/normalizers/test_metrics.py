"""Metrics of a hand-built network, each against its closed form."""

import numpy as np
import pytest
import torch

from nnclust.nets.weight_layer import WeightLayer
from nnclust.normalizers import METRICS, model_metrics

# 2-3-2 MLP: hidden unit 2 has no weights at all; one weight is exactly the tolerance.
W1 = np.array([[1.0, -2.0], [0.01, 0.5], [0.0, 0.0]])
B1 = np.array([0.0, 1.0, 0.0])
W2 = np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
B2 = np.array([0.5, -0.5])
LAYERS = [WeightLayer("a.fc", "fc", W1, B1), WeightLayer("b.fc", "fc", W2, B2)]
X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])


def outputs(x):
    return np.maximum(x @ W1.T + B1, 0) @ W2.T + B2


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_against_its_closed_form(name):
    out = outputs(X)  # [[1.5, 3.53], [0.5, 4], [0.5, 7.56]]
    labels = torch.tensor([1, 1, 0])
    targets = torch.tensor([[1.0], [2.0], [3.0]])
    params = np.concatenate([W1.ravel(), W2.ravel(), B1, B2])
    expected_cls = {
        "loss": float(np.mean([np.log(np.exp(o).sum()) - o[c] for o, c in zip(out, [1, 1, 0])])),
        "accuracy": 2 / 3,
        "mse": None,
        "hidden_neurons": 2,
        "sparsity": float((np.abs(params) <= 0.01).sum() / params.size),  # 0.01 counts as zero
        "weight_norm": float((params**2).sum()),
        "num_parameters": 6 + 3 + 6 + 2,
    }
    got = model_metrics(LAYERS, X, labels, "cross_entropy")[name]
    assert got == pytest.approx(expected_cls[name]) if expected_cls[name] is not None else got is None
    assert expected_cls["sparsity"] == pytest.approx(9 / 17)
    one_out = [LAYERS[0], WeightLayer("b.fc", "fc", W2[:1], B2[:1])]
    reg = model_metrics(one_out, X, targets, "mse")
    mse = float(np.mean((outputs(X)[:, 0] - targets[:, 0].numpy()) ** 2))
    assert reg["mse"] == pytest.approx(mse) and reg["loss"] == pytest.approx(mse) and reg["accuracy"] is None
    blind = model_metrics(LAYERS)
    assert blind["loss"] is None and blind["accuracy"] is None and blind["hidden_neurons"] == 2
