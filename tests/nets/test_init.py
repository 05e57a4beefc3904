"""The initialisation registry: each rule's distribution, seeding, and bias handling."""

import math

import pytest
import torch

from nnclust.nets.init import BIAS_INITS, INITS, initialize
from nnclust.nets.registry import build_model


def _net():
    return build_model({"name": "mlp", "hidden": [400]}, (300,), 200)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", INITS.names())
@pytest.mark.parametrize("bias", BIAS_INITS.names())
def test_every_init_draws_its_distribution(name, bias):
    net = initialize(_net(), name, bias, std=0.05, generator=_gen())
    w = net.layer0.fc.weight  # fan_in 300, fan_out 400
    bound = {"normal": None, "kaiming_uniform": math.sqrt(6 / 300), "xavier": math.sqrt(6 / 700),
             "default": 1 / math.sqrt(300)}[name]  # fmt: skip
    if bound is None:
        assert w.std().item() == pytest.approx(0.05, rel=0.02) and w.mean().abs() < 0.002
    else:
        assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # std of U(-b, b)
    b = net.layer0.fc.bias
    if bias == "zero":
        assert (b == 0).all() and (net.layer1.fc.bias == 0).all()
    elif bias == "constant":
        assert (b == 0.1).all() and (net.layer1.fc.bias == 0.1).all()  # bias_constant's default
    else:
        assert b.std().item() == pytest.approx(w.std().item(), rel=0.15)


def test_xavier_with_a_constant_bias_as_sparana_draws_it():
    """initialize_weights('Xavier', bias_constant=0.1): Glorot-uniform weights, every bias 0.1."""
    net = initialize(_net(), "xavier", "constant", generator=_gen(), bias_constant=-0.25)
    w = net.layer1.fc.weight  # fan_in 400, fan_out 200: torch.nn.init.xavier_uniform_'s bound
    assert w.abs().max() <= math.sqrt(6 / 600) and w.abs().max() > 0.99 * math.sqrt(6 / 600)
    assert (net.layer0.fc.bias == -0.25).all() and (net.layer1.fc.bias == -0.25).all()
    conv = build_model({"name": "cnn", "conv_channels": [4], "hidden": [5]}, (1, 8, 8), 3)
    k = initialize(conv, "xavier", generator=_gen()).layer0.conv.weight  # (4, 1, 3, 3): fans 9 and 36
    assert k.abs().max() <= math.sqrt(6 / 45) and k.abs().max() > 0.9 * math.sqrt(6 / 45)


def test_init_is_seeded_and_seed_dependent():
    a = initialize(_net(), "normal", generator=_gen(1)).layer1.fc.weight
    b = initialize(_net(), "normal", generator=_gen(1)).layer1.fc.weight
    c = initialize(_net(), "normal", generator=_gen(2)).layer1.fc.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_names_and_std():
    with pytest.raises(ValueError, match=r"unknown init 'glorot'.*'default', 'kaiming_uniform', 'normal', 'xavier'"):
        initialize(_net(), "glorot")
    with pytest.raises(ValueError, match="unknown bias init 'one'"):
        initialize(_net(), "normal", "one")
    with pytest.raises(ValueError, match="std must be a number > 0"):
        initialize(_net(), "normal", std=0)
    with pytest.raises(ValueError, match="bias_constant must be a finite number, got nan"):
        initialize(_net(), "xavier", "constant", bias_constant=float("nan"))
