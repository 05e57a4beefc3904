"""Mask types: exact sparsity, each type's defining property, and seeding, on every model."""

import numpy as np
import pytest
import torch

from nnclust.nets.registry import MODELS, build_model
from nnclust.pruning.mask_types import MASK_TYPES, check_masks, kept_per_unit, layer_mask, make_masks
from nnclust.training import FixedMasks, TrainState, make_optimizer

SHAPES = {
    name: (3, 8, 8) if name.startswith("cifar") else (8, 1) if name == "relu_rnn" else (1, 8, 8) for name in MODELS
}
SPARSITY = 0.8


def _unit_level(mask: torch.Tensor) -> np.ndarray:
    """(out, in) channel mask of a kernel-masked conv (checking it is constant per kernel)."""
    m = mask.numpy()
    if m.ndim == 4:
        assert (m == m[:, :, :1, :1]).all(), "a kernel mask must keep or drop whole kernels"
        return m[:, :, 0, 0]
    return m


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("mask_type", MASK_TYPES.names())
def test_mask_type_on_every_model(mask_type, model_name):
    model = build_model({"name": model_name}, SHAPES[model_name], 10)
    masks = make_masks(mask_type, model, SPARSITY, seed=5)
    check_masks(model, masks)
    for name, mask in masks.items():
        unit = _unit_level(mask)
        n_out, n_in = unit.shape
        fan_in = unit.sum(1)
        if mask_type == "random":
            assert unit.sum() == round((1 - SPARSITY) * n_out * n_in), name  # exact up to rounding
        else:
            assert (fan_in == kept_per_unit(n_in, SPARSITY)).all(), name  # equal fan-in
        if mask_type == "symmetric":
            assert (unit == unit[:1]).all(), name  # one pattern shared by every unit
        if mask_type == "per_neuron_no_input_ablation":
            assert unit.any(0).all(), name  # no input left without a connection
    again = make_masks(mask_type, model, SPARSITY, seed=5)
    assert all(torch.equal(masks[n], again[n]) for n in masks)
    other = make_masks(mask_type, model, SPARSITY, seed=6)
    assert any(not torch.equal(masks[n], other[n]) for n in masks)


def test_the_types_differ_where_they_must():
    rng = np.random.default_rng(0)
    n_out, n_in, s = 20, 100, 0.9
    rand = layer_mask("random", (n_out, n_in), s, rng)
    assert len(np.unique(rand.sum(1))) > 3  # uneven fan-in
    assert not rand.any(0).all()  # at this sparsity some input is left out by chance ...
    per = layer_mask("per_neuron", (n_out, n_in), s, rng)
    assert len({tuple(r) for r in per}) == n_out  # per-unit positions differ
    noab = layer_mask("per_neuron_no_input_ablation", (n_out, n_in), s, rng)
    assert noab.any(0).all() and (noab.sum(1) == 10).all()  # ... never here
    sym = layer_mask("symmetric", (n_out, n_in), s, rng)
    assert len({tuple(r) for r in sym}) == 1


def test_mask_types_draw_from_their_own_streams():
    model = build_model({"name": "mnist_fc"}, (1, 8, 8), 10)
    a = make_masks("per_neuron", model, 0.5, seed=1)
    b = make_masks("per_neuron_no_input_ablation", model, 0.5, seed=1)
    assert any(not torch.equal(a[n], b[n]) for n in a)
    layers = list(a.values())
    assert not torch.equal(layers[1], layers[2])  # two 32x32 layers draw different masks


def test_element_masks_mask_kernel_entries():
    model = build_model({"name": "mnist_cnn"}, (1, 8, 8), 10)
    masks = make_masks("per_neuron", model, 0.5, seed=0, element_masks=True)
    conv = masks["layer1.conv.weight"]  # (16, 16, 3, 3)
    per_unit = conv.flatten(1).sum(1)
    assert (per_unit == kept_per_unit(16 * 9, 0.5)).all()
    assert not (conv == conv[:, :, :1, :1]).all()  # kernels are no longer kept whole


def test_sparsity_zero_keeps_everything():
    for mask_type in MASK_TYPES.names():
        assert layer_mask(mask_type, (7, 5), 0.0, np.random.default_rng(0)).all()


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5", True])
def test_sparsity_outside_the_unit_interval_is_an_error(bad):
    model = build_model({"name": "mnist_fc"}, (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"sparsity must be"):
        make_masks("random", model, bad, seed=0)


def test_unknown_mask_type_lists_the_valid_ones():
    model = build_model({"name": "mnist_fc"}, (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"unknown mask type 'shuffled'.*'per_neuron'.*'symmetric'"):
        make_masks("shuffled", model, 0.5, seed=0)


def test_no_input_ablation_at_too_high_a_sparsity_is_an_error():
    model = build_model({"name": "mnist_fc", "width": 32, "depth": 1}, (1, 8, 8), 10)
    # the 32 -> 10 output layer needs 4 connections per unit; 0.95 leaves round(1.6) = 2
    with pytest.raises(ValueError, match=r"layer 'layer1.fc'.*cannot keep all 32 inputs.*sparsity below"):
        make_masks("per_neuron_no_input_ablation", model, 0.95, seed=0)
    make_masks("per_neuron_no_input_ablation", model, 0.88, seed=0)  # round(3.84) = 4 is enough
    masks = make_masks("per_neuron_no_input_ablation", model, 0.95, seed=0, dense_output=True)
    assert masks["layer1.fc.weight"].all() and masks["layer0.fc.weight"].float().mean() == pytest.approx(0.05, abs=0.01)


def test_masks_that_do_not_fit_the_model_are_rejected():
    model = build_model({"name": "mnist_fc", "width": 8, "depth": 1}, (1, 8, 8), 10)
    other = make_masks("random", build_model({"name": "mnist_fc", "width": 9, "depth": 1}, (1, 8, 8), 10), 0.5, 0)
    with pytest.raises(
        ValueError, match=r"mask 'layer0.fc.weight' has shape \(9, 64\) but the weight has shape \(8, 64\)"
    ):
        check_masks(model, other)
    with pytest.raises(ValueError, match=r"masks for \['layer7.fc.weight'\] fit no fc/conv weight"):
        check_masks(model, {"layer7.fc.weight": torch.ones(2, 2, dtype=torch.bool)})
    callback = FixedMasks(other)
    with pytest.raises(ValueError, match="build the masks for this model"):
        callback.on_train_start(TrainState(model, make_optimizer({}, model.parameters())))
