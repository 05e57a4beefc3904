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
    w = net.layer0.fc.weight  # fan_in 300
    bound = {"normal": None, "kaiming_uniform": math.sqrt(6 / 300), "default": 1 / math.sqrt(300)}[name]
    if bound is None:
        assert w.std().item() == pytest.approx(0.05, rel=0.02) and w.mean().abs() < 0.002
    else:
        assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # std of U(-b, b)
    b = net.layer0.fc.bias
    if bias == "zero":
        assert (b == 0).all() and (net.layer1.fc.bias == 0).all()
    else:
        assert b.std().item() == pytest.approx(w.std().item(), rel=0.15)


def test_init_is_seeded_and_seed_dependent():
    a = initialize(_net(), "normal", generator=_gen(1)).layer1.fc.weight
    b = initialize(_net(), "normal", generator=_gen(1)).layer1.fc.weight
    c = initialize(_net(), "normal", generator=_gen(2)).layer1.fc.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_names_and_std():
    with pytest.raises(ValueError, match=r"unknown init 'xavier'.*'default', 'kaiming_uniform', 'normal'"):
        initialize(_net(), "xavier")
    with pytest.raises(ValueError, match="unknown bias init 'one'"):
        initialize(_net(), "normal", "one")
    with pytest.raises(ValueError, match="std must be a number > 0"):
        initialize(_net(), "normal", std=0)
