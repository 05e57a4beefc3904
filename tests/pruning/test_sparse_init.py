"""Sparsity-aware init keeps each unit's pre-activation variance at the dense init's."""

from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

from nnclust.nets.registry import build_model
from nnclust.pruning.mask_types import layer_mask
from nnclust.pruning.sparse_init import INITS, sparse_init

N, SPARSITY, DRAWS = 256, 0.9, 256


def _model():
    return build_model({"name": "mnist_fc", "width": N, "depth": 1}, (8,), N)  # layer1 is N x N


@cache  # deterministic (seeded draws); the dense "he" variance serves two tests, read-only
def _unit_variance(scheme, mask_type):
    """Per-unit variance of layer 1's pre-activation over random inputs, averaged over
    `DRAWS` initialisations (shape (N,))."""
    model = _model()
    fc = model.layer1.fc
    masks = {}
    if mask_type is not None:
        masks["layer1.fc.weight"] = torch.from_numpy(layer_mask(mask_type, (N, N), SPARSITY, np.random.default_rng(0)))
    x = torch.randn(512, N, generator=torch.Generator().manual_seed(0))
    total = torch.zeros(N, dtype=torch.float64)
    for seed in range(DRAWS):
        if scheme == "torch_default":
            torch.manual_seed(seed)
            fc.reset_parameters()
            if masks:
                with torch.no_grad():
                    fc.weight.mul_(masks["layer1.fc.weight"])
        else:
            sparse_init(model, scheme, masks, seed)
        with torch.no_grad():
            total += (x @ fc.weight.T).double().var(0)
    return total / DRAWS


@pytest.mark.parametrize("scheme, mask_type", [("he", "random"), ("he", "per_neuron"), ("glorot", "per_neuron")])
def test_unit_variance_matches_the_dense_init(scheme, mask_type):
    dense = _unit_variance(scheme, None).mean()
    assert dense == pytest.approx({"he": 2.0, "glorot": 1.0}[scheme], rel=0.05)
    sparse = _unit_variance(scheme, mask_type)
    ratio = sparse / dense
    assert ((ratio - 1).abs() < 0.10).all(), (ratio.min().item(), ratio.max().item())


def test_the_dense_init_under_a_mask_loses_the_variance():
    # what the sparsity-aware schemes fix: torch's default scaled for 256 inputs, 26 kept
    ratio = _unit_variance("torch_default", "per_neuron") / _unit_variance("torch_default", None).mean()
    assert ratio.mean() == pytest.approx(1 - SPARSITY, abs=0.02)


def test_masked_weights_and_unconnected_units_start_at_zero():
    model = _model()
    mask = torch.ones(N, N, dtype=torch.bool)
    mask[:, 0] = False
    mask[3] = False  # unit 3 keeps no connection
    for scheme in ("he", "glorot"):
        sparse_init(model, scheme, {"layer1.fc.weight": mask}, seed=0)
        w = model.layer1.fc.weight
        assert (w[~mask] == 0).all() and (w[mask] != 0).all() and torch.isfinite(w).all()
        assert (model.layer1.fc.bias == 0).all()


def test_default_leaves_the_model_alone_and_the_seed_decides():
    model = _model()
    before = [p.clone() for p in model.parameters()]
    sparse_init(model, "default", None, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    sparse_init(model, "he", None, seed=1)
    first = model.layer0.fc.weight.clone()
    sparse_init(model, "he", None, seed=1)
    assert torch.equal(first, model.layer0.fc.weight)
    sparse_init(model, "he", None, seed=2)
    assert not torch.equal(first, model.layer0.fc.weight)


def test_conv_fans_count_kernel_positions():
    model = build_model({"name": "cifar10_cnn", "filters": 8, "depth": 1, "dense": 0}, (3, 8, 8), 10)
    sparse_init(model, "he", None, seed=0)
    w = model.layer0.conv.weight  # (8, 3, 3, 3): fan-in 27
    assert w.double().var().item() == pytest.approx(2 / 27, rel=0.25)
    assert isinstance(model.layer0.conv, nn.Conv2d)


def test_unknown_init_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown initialisation 'xavier'.*'glorot'"):
        sparse_init(_model(), "xavier", None, 0)
    assert set(INITS) == {"default", "he", "glorot"}


def test_per_weight_scales_have_their_closed_forms():
    # dense, non-square: torch's fans (in * kh * kw, out * kh * kw) for both kinds of layer
    assert torch.allclose(
        INITS["glorot"](torch.ones(64, 256, dtype=torch.bool)), torch.tensor((2 / 320) ** 0.5).double()
    )
    conv = torch.ones(8, 3, 3, 3, dtype=torch.bool)
    assert torch.allclose(INITS["glorot"](conv), torch.tensor((2 / (27 + 72)) ** 0.5).double())
    assert torch.allclose(INITS["he"](conv), torch.tensor((2 / 27) ** 0.5).double())
    # under a mask: unit 0 keeps inputs 0 and 1, unit 1 keeps input 1 only
    mask = torch.tensor([[True, True, False], [False, True, False]])
    expected = torch.tensor(
        [[(2 / 3) ** 0.5, (2 / 4) ** 0.5, (2 / 2) ** 0.5], [(2 / 2) ** 0.5, (2 / 3) ** 0.5, 2**0.5]]
    )
    assert torch.allclose(INITS["glorot"](mask)[mask], expected.double()[mask])
    assert torch.allclose(INITS["he"](mask)[mask], torch.tensor([1.0, 1.0, 2**0.5]).double())
