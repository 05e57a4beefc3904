from collections import OrderedDict

import pytest
import torch
from torch import nn

from nnclust.nets.builders import LayeredNet
from nnclust.nets.registry import MODELS, ModelConventionError, build_model, layer_modules

SHAPES = {
    "mlp": (1, 8, 8),
    "mlp_sequential": (1, 8, 8),
    "cnn": (1, 8, 8),
    "cnn_sequential": (1, 8, 8),
    "mnist_fc": (1, 8, 8),
    "mnist_cnn": (1, 8, 8),
    "cifar10_cnn": (3, 8, 8),
    "relu_rnn": (8, 1),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_builds_validates_and_runs(name):
    model = build_model({"name": name}, SHAPES[name], 10)
    layers = layer_modules(model)
    assert layers[-1].kind == "fc" and layers[-1].linear.out_features == 10
    out = model.eval()(torch.rand(5, *SHAPES[name]))
    assert out.shape == (5, 10)


def test_registry_covers_every_model_in_the_shape_table():
    assert set(MODELS) == set(SHAPES)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_both_conventions_give_the_same_network(kind):
    spec = {"name": kind, "batch_norm": True, "dropout": 0.2}
    torch.manual_seed(3)
    a = build_model(spec, (1, 8, 8), 10)
    torch.manual_seed(3)
    b = build_model({**spec, "name": f"{kind}_sequential"}, (1, 8, 8), 10)
    va, vb = list(a.state_dict().values()), list(b.state_dict().values())
    assert len(va) == len(vb) and all(torch.equal(x, y) for x, y in zip(va, vb))
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(a.eval()(x), b.eval()(x))


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*'cnn'.*'mlp'"):
        build_model({"name": "resnet"}, (2,), 2)


def test_unknown_model_option_is_named():
    with pytest.raises(ValueError, match="hiden"):
        build_model({"name": "mlp", "hiden": [3]}, (2,), 2)


def _dict_net(**layers):
    return LayeredNet(OrderedDict((k, nn.ModuleDict(OrderedDict(v))) for k, v in layers.items()))


@pytest.mark.parametrize(
    "model, culprit",
    [
        (_dict_net(l0=[("fc", nn.Linear(2, 3)), ("act", nn.Tanh())], l1=[("fc", nn.Linear(3, 2))]), "l0.act"),
        (_dict_net(l0=[("linear", nn.Linear(2, 3))]), "l0.linear"),
        (_dict_net(l0=[("fc", nn.Conv2d(1, 2, 3))]), "l0.fc"),
        (_dict_net(l0=[("fc", nn.Linear(2, 3)), ("fc2", nn.Linear(3, 3))]), "l0.fc2"),
        (_dict_net(l0=[("bn", nn.BatchNorm1d(3)), ("fc", nn.Linear(2, 3))]), "l0.bn"),
        (_dict_net(l0=[("fc", nn.Linear(2, 3)), ("bn", nn.BatchNorm1d(4))]), "l0.bn"),
        (_dict_net(l0=[("fc", nn.Linear(2, 3))], l1=[("fc", nn.Linear(4, 2))]), "l1.fc"),
        (nn.Sequential(OrderedDict([("0_fc", nn.Linear(2, 3)), ("sigmoid", nn.Sigmoid())])), "sigmoid"),
        (nn.Sequential(OrderedDict([("0_fc", nn.Linear(2, 3)), ("0_conv", nn.Conv2d(3, 3, 1))])), "0_conv"),
        (nn.Sequential(OrderedDict([("0_fc", nn.Linear(2, 3)), ("1_act", nn.GELU())])), "1_act"),
    ],
)
def test_convention_violations_name_the_module(model, culprit):
    with pytest.raises(ModelConventionError, match=rf"'{culprit}'"):
        layer_modules(model)


def test_a_plain_module_child_is_rejected():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 2)

    with pytest.raises(ModelConventionError, match="child 'body'.*ModuleDict"):
        layer_modules(Net())


def test_bad_option_values_are_rejected():
    with pytest.raises(ValueError, match="dropout"):
        build_model({"name": "mlp", "dropout": 1.5}, (2,), 2)
    with pytest.raises(ValueError, match="input shape"):
        build_model({"name": "cnn"}, (2,), 2)
