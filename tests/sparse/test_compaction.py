"""Compaction is exact on networks with planted dead units of every kind, and keeps every
unit that carries input-dependent signal."""

import numpy as np
import pytest
import torch

import nnclust.sparse.compaction as compaction
from nnclust.nets.checkpoint import load_checkpoint, save_checkpoint
from nnclust.nets.registry import build_model
from nnclust.nets.validate import layer_modules
from nnclust.sparse import SparseConversionError, SparseMLP, compact, outputs, partial_outputs, to_csr
from nnclust.structure.connectivity import backward_reach


def planted_module(batch_norm: bool) -> torch.nn.Module:
    """A 3-5-4-2 MLP (float64) with every kind of removable unit.

    layer 1: u0 alive; u1 no incoming weights, positive bias (constant > 0); u2 no
    incoming, negative bias (constant 0); u3 no outgoing weights; u4 alive.
    layer 2: v0 alive; v1 no incoming weights (constant); v2 no outgoing weights;
    v3 fed only by the constant u1 (a chain: constant once u1 is folded).
    With batch norm, its running statistics and affine terms are random and u2's
    constant comes out of the fold: ReLU(b * scale + shift).
    """
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [5, 4], "batch_norm": batch_norm}, (3,), 2).double()
    gen = torch.Generator().manual_seed(1)
    mods = layer_modules(model)
    with torch.no_grad():
        w1, w2, w3 = (m.linear.weight for m in mods)
        w1[1] = 0
        w1[2] = 0
        mods[0].linear.bias.copy_(torch.tensor([0.1, 0.7, -0.4, 0.2, -0.1]))
        w2[:, 3] = 0
        w2[1] = 0
        w2[3] = 0
        w2[3, 1] = 0.5
        mods[1].linear.bias.copy_(torch.tensor([0.0, 0.3, 0.1, 0.3]))
        w3[:, 2] = 0
        for m in mods:
            if m.bn is not None:
                n = m.bn.num_features
                m.bn.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.1)
                m.bn.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                m.bn.weight.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                m.bn.bias.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.1)
        if batch_norm:  # make u2's folded constant positive, u1's stay positive
            mods[0].bn.bias[2] = 1.0
    return model.eval()


def inputs(n=500, width=3, seed=2):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_planted_dead_units_are_removed_exactly(batch_norm, fmt):
    model = planted_module(batch_norm)
    result = compact(model, fmt, dtype=torch.float64)
    # layer 1 keeps u0 and u4; layer 2 keeps v0 (v1 constant, v2 mute, v3 constant through the chain)
    assert [k.tolist() for k in result.removal.kept] == [[0, 4], [0]]
    assert (result.units_before, result.units_after) == (9, 3)
    assert isinstance(result.model, SparseMLP if fmt == "csr" else torch.nn.Module)
    x = inputs()
    torch.testing.assert_close(outputs(result.model, x), outputs(model, x), rtol=1e-12, atol=1e-12)
    # the constants went into the next biases: the output bias is no longer the original
    out_bias = layer_modules(model)[-1].linear.bias.detach().numpy()
    assert not np.allclose(result.removal.layers[-1].bias, out_bias)
    # the result is final
    assert compact(result.model, fmt, dtype=torch.float64).units_after == 3


def test_constant_with_batch_norm_comes_from_the_folded_bias():
    model = planted_module(batch_norm=True)
    # u2: no incoming weights; after batch norm its pre-activation is b * scale + shift > 0
    fc, bn = layer_modules(model)[0].linear, layer_modules(model)[0].bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    const = torch.relu((fc.bias[2] - bn.running_mean[2]) * scale[2] + bn.bias[2])
    assert const > 0
    acts = partial_outputs(model, inputs(), 0)
    torch.testing.assert_close(acts[:, 2], const.expand(len(acts)).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        outputs(compact(model, dtype=torch.float64).model, inputs()), outputs(model, inputs()), rtol=1e-12, atol=1e-12
    )


def test_pruned_checkpoint_compacts_to_the_same_outputs_and_saves(tmp_path, pruned_digits_mlp):
    run, _ = pruned_digits_mlp
    ckpt = load_checkpoint(run.artifacts["pruned_model.pt"])
    original = ckpt.build_model().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 8, 8, generator=gen)
    for fmt in ("dense", "csr"):
        result = compact(ckpt, fmt)
        assert result.units_after < result.units_before and result.params_after <= result.params_before
        torch.testing.assert_close(outputs(result.model, x), outputs(original, x), rtol=1e-5, atol=1e-5)
        assert result.architecture["input_shape"] == [1, 8, 8]
        path = save_checkpoint(tmp_path / f"{fmt}.pt", result.model, result.architecture, result.masks)
        back = load_checkpoint(path)
        torch.testing.assert_close(outputs(to_csr(back), x), outputs(result.model, x), rtol=1e-6, atol=1e-6)
        assert back.build_model()(x).shape == (300, 10)
    dense = compact(ckpt, "dense")
    # the masks shrink with the units and still mark the pruned weights
    for mods in layer_modules(dense.model):
        mask = dense.masks[f"{mods.linear_key}.weight"]
        assert mask.shape == mods.linear.weight.shape
        assert torch.all(mods.linear.weight[~mask] == 0)


def test_compaction_never_removes_a_unit_that_carries_signal():
    rng = np.random.default_rng(3)
    for trial in range(20):
        torch.manual_seed(trial)
        model = build_model({"name": "mlp", "hidden": [12, 9, 7], "batch_norm": trial % 2 == 1}, (6,), 3).double()
        with torch.no_grad():
            for m in layer_modules(model):
                m.linear.weight.mul_(torch.from_numpy(rng.random(m.linear.weight.shape) < 0.3))
                m.linear.bias.copy_(torch.from_numpy(rng.normal(size=m.linear.bias.shape)))
        model.eval()
        result = compact(model, dtype=torch.float64)
        x = inputs(400, 6, seed=trial)
        torch.testing.assert_close(outputs(result.model, x), outputs(model, x), rtol=1e-10, atol=1e-10)
        # every removed unit is constant over the inputs, or no path of weights takes it to an output
        weights = [m.linear.weight.detach().numpy() for m in layer_modules(model)]
        feeds = backward_reach(weights)
        for g, kept in enumerate(result.removal.kept):
            removed = np.setdiff1d(np.arange(weights[g].shape[0]), kept)
            acts = partial_outputs(model, x, g).numpy()
            for u in removed:
                assert np.ptp(acts[:, u]) == 0 or not feeds[g + 1][u], (trial, g, u)


def test_compaction_calls_the_one_dead_unit_removal(monkeypatch):
    calls = []
    real = compaction.compact_layers
    monkeypatch.setattr(compaction, "compact_layers", lambda layers: calls.append(len(layers)) or real(layers))
    compact(planted_module(False))
    assert calls == [3]


def test_a_cnn_or_an_unknown_format_is_rejected():
    with pytest.raises(SparseConversionError, match="conv layers are not supported"):
        compact(build_model({"name": "cnn"}, (1, 8, 8), 10))
    with pytest.raises(ValueError, match=r"format must be one of \['dense', 'csr'\], got 'coo'"):
        compact(planted_module(False), "coo")


def test_a_network_without_an_input_output_path_is_named_as_such():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [4, 3]}, (5,), 2).eval()
    with torch.no_grad():
        model.layer1.fc.weight.zero_()  # nothing from layer 1 reaches layer 2
    with pytest.raises(compaction.CompactionError, match=r"^the network has no path from an input to an output \("
                       r"hidden layer 1 keeps no unit\).*format=\"csr\" stores it$"):  # fmt: skip
        compact(model, "dense")
    # in CSR the constant network it computes is kept, exactly
    result = compact(model, "csr", dtype=torch.float64)
    x = inputs(50, 5, seed=1)
    assert result.units_after == 0
    torch.testing.assert_close(outputs(result.model, x), outputs(model.double(), x), rtol=0, atol=1e-12)
