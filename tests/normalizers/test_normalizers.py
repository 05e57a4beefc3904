"""Normalizers: exact ones leave the function unchanged and give a canonical form;
approximate ones remove exactly what they must; crude ones are seeded; bad input fails
with the fix named."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnclust.core.constraints import ConfigError
from nnclust.data import Dataset
from nnclust.nets.layers import extract_layers
from nnclust.nets.registry import MODELS, build_model
from nnclust.nets.weight_layer import WeightLayer
from nnclust.normalizers import (
    NORMALIZERS,
    NormalizerError,
    check_options,
    crude,
    forward,
    hypernet,
    mlp_layers,
    normalize,
)
from nnclust.normalizers.mlp import (
    combine_duplicate_neurons,
    delete_constant_neurons,
    delete_dead_neurons,
    rescale_relu,
    sort_neurons,
)

EXACT = [n for n in NORMALIZERS.names() if NORMALIZERS[n].kind == "exact"]


def random_mlp(widths, seed=0, bias=True):
    """fc layers of an MLP with layer widths `widths` (inputs first), N(0,1) weights."""
    rng = np.random.default_rng(seed)
    return [
        WeightLayer(f"layer{i}.fc", "fc", rng.normal(size=(b, a)), rng.normal(size=b) if bias else None)
        for i, (a, b) in enumerate(zip(widths, widths[1:]))
    ]


def out(layers, x):
    return forward(layers, x)[0]


def rel_change(a, b):
    return np.abs(a - b).max() / np.abs(a).max()


X = np.random.default_rng(1).normal(size=(200, 6))


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("widths", [[6, 3], [6, 9, 2], [6, 12, 7, 4], [6, 5, 5, 5, 3]])
@pytest.mark.parametrize("bias", [True, False])
def test_exact_normalizers_keep_random_mlps(name, widths, bias):
    layers = random_mlp(widths, seed=len(widths), bias=bias)
    new = NORMALIZERS[name].fn(layers)
    assert rel_change(out(layers, X), out(new, X)) < 1e-12  # float64 layers
    again = NORMALIZERS[name].fn(new)  # idempotent
    for a, b in zip(new, again):
        np.testing.assert_allclose(a.weight, b.weight, rtol=0, atol=1e-12)


def _registry_model(name, batch_norm):
    """A registry model with random batch-norm statistics, in eval mode, and its input shape."""
    torch.manual_seed(0)
    if name == "relu_rnn":
        return build_model({"name": name, "hidden": [6]}, (5, 2), 3).eval(), (5, 2)
    keys = MODELS[name][1]  # the options this registry entry accepts
    spec = {"name": name}
    spec.update({"hidden": [12, 7]} if "hidden" in keys else {"width": 12, "depth": 2} if "width" in keys else {})
    if "batch_norm" in keys:
        spec["batch_norm"] = batch_norm
    if "conv_channels" in keys:
        spec["conv_channels"] = [3]
    shape = (3, 8, 8) if name.startswith("cifar10") else (1, 8, 8)
    model = build_model(spec, shape, 4)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return model.eval(), shape


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("model_name", MODELS.names())
@pytest.mark.parametrize("batch_norm", [False, True])
def test_exact_normalizers_keep_every_registry_mlp(name, model_name, batch_norm):
    model, shape = _registry_model(model_name, batch_norm)
    if "cnn" in model_name:
        with pytest.raises(NormalizerError, match="conv layer.*give it an MLP"):
            normalize(name, model, input_shape=shape)
        return
    if model_name == "relu_rnn":
        with pytest.raises(NormalizerError, match="recurrent network.*only 'delete_dead_neurons' handles RNNs"):
            normalize(name, model, input_shape=shape)
        return
    x = torch.rand(64, *shape)
    new = normalize(name, model, input_shape=shape).model.eval()
    with torch.no_grad():
        a, b = model(x), new(x)
    assert ((a - b).abs().max() / a.abs().max()).item() < 1e-5


def _permute_and_rescale(layers, seed):
    """A copy computing the same function: every hidden layer permuted, every hidden
    unit's (w_in, b) scaled by a random factor in (0.1, 10), outgoing weights divided."""
    rng = np.random.default_rng(seed)
    layers = [replace(lay) for lay in layers]
    for g in range(len(layers) - 1):
        lay, nxt = layers[g], layers[g + 1]
        perm = rng.permutation(lay.n_out)
        a = np.exp(rng.uniform(np.log(0.1), np.log(10), size=lay.n_out))
        layers[g] = replace(lay, weight=(lay.weight * a[:, None])[perm], bias=(lay.bias * a)[perm])
        layers[g + 1] = replace(nxt, weight=(nxt.weight / a[None, :])[:, perm])
    return layers


@pytest.mark.parametrize("widths", [[6, 8, 3], [6, 10, 9, 8, 2]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rescale_then_sort_is_a_canonical_form(widths, seed):
    layers = random_mlp(widths, seed)
    twin = _permute_and_rescale(layers, seed + 100)
    assert rel_change(out(layers, X), out(twin, X)) < 1e-12  # same function ...
    assert not np.allclose(layers[0].weight, twin[0].weight)  # ... other weights
    a = sort_neurons(rescale_relu(layers))
    b = sort_neurons(rescale_relu(twin))
    for la, lb in zip(a, b):
        np.testing.assert_allclose(la.weight, lb.weight, rtol=0, atol=1e-6)
        np.testing.assert_allclose(la.bias, lb.bias, rtol=0, atol=1e-6)
    # rescaling alone, or sorting alone, is not canonical
    assert not np.allclose(sort_neurons(layers)[0].weight, sort_neurons(twin)[0].weight)
    assert not np.allclose(rescale_relu(layers)[0].weight, rescale_relu(twin)[0].weight)


def test_sort_orders_by_l1_mass_and_rescale_gives_unit_norms():
    layers = random_mlp([6, 9, 5, 2], 3)
    for include_bias in (False, True):
        s = sort_neurons(layers, include_bias=include_bias)
        for g in range(2):
            score = np.abs(s[g].weight).sum(1) + np.abs(s[g + 1].weight).sum(0)
            score = score + np.abs(s[g].bias) if include_bias else score
            assert np.all(np.diff(score) <= 0)
        assert rel_change(out(layers, X), out(s, X)) < 1e-12
    r = rescale_relu(layers)
    for g in range(2):
        norms = np.sqrt((r[g].weight ** 2).sum(1) + r[g].bias ** 2)
        np.testing.assert_allclose(norms, 1.0, atol=1e-12)
    assert np.array_equal(r[2].bias, layers[2].bias)  # the output layer keeps its scale


def hand_built_for_sorting():
    """2-3-2 MLP. Scores sum |in| + sum |out|: units 0 and 2 tie at 3, unit 1 has 2.5;
    with |b|: unit 1 (bias 2) has 4.5 and leads."""
    w0 = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    b0 = np.array([0.0, 2.0, 0.0])
    w1 = np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
    return [WeightLayer("layer0.fc", "fc", w0, b0), WeightLayer("layer1.fc", "fc", w1, np.zeros(2))]


def test_sort_follows_the_documents_rule_on_a_hand_built_net():
    layers = hand_built_for_sorting()
    for include_bias, order in [(False, [0, 2, 1]), (True, [1, 0, 2])]:
        # through the registry, so the option is what reaches the sort
        new = normalize("sort_neurons", layers, {"include_bias": include_bias}).layers
        np.testing.assert_array_equal(new[0].weight, layers[0].weight[order])
        np.testing.assert_array_equal(new[0].bias, layers[0].bias[order])
        np.testing.assert_array_equal(new[1].weight, layers[1].weight[:, order])
    # the tie of units 0 and 2 goes to the lower index, whichever unit it is
    swapped = sort_neurons([replace(layers[0], weight=layers[0].weight[[2, 1, 0]]), layers[1]])
    np.testing.assert_array_equal(swapped[0].weight, layers[0].weight[[2, 0, 1]])
    assert check_options("sort_neurons", None) == {"include_bias": False}


def test_rescale_leaves_zero_units_alone():
    layers = random_mlp([6, 5, 2], 4)
    layers[0] = replace(layers[0], weight=np.where(np.arange(5)[:, None] == 2, 0.0, layers[0].weight),
                        bias=np.where(np.arange(5) == 2, 0.0, layers[0].bias))  # fmt: skip
    r = rescale_relu(layers)
    assert np.isfinite(r[1].weight).all() and np.array_equal(r[1].weight[:, 2], layers[1].weight[:, 2])


def planted_dead():
    """6-7-5-2 MLP: layer-1 units 1 (no incoming, bias 0.8), 4 (no outgoing) and layer-2
    unit 3 (no incoming, bias -0.5) are truly dead; unit 5 of layer 1 is small but alive."""
    layers = random_mlp([6, 7, 5, 2], 5)
    w0, b0, w1, b1 = layers[0].weight.copy(), layers[0].bias.copy(), layers[1].weight.copy(), layers[1].bias.copy()
    w0[1], b0[1] = 0.0, 0.8
    w1[:, 4] = 0.0
    w0[5] *= 1e-3
    w1[3], b1[3] = 0.0, -0.5
    return [replace(layers[0], weight=w0, bias=b0), replace(layers[1], weight=w1, bias=b1), layers[2]]


def test_delete_dead_removes_exactly_the_dead_units_and_is_exact():
    layers = planted_dead()
    new = delete_dead_neurons(layers)
    assert [lay.n_out for lay in new] == [5, 4, 2]
    assert rel_change(out(layers, X), out(new, X)) < 1e-12
    # a threshold above unit 5's score removes it too, and then the output changes
    bigger = delete_dead_neurons(layers, threshold=0.05)
    assert [lay.n_out for lay in bigger] == [4, 4, 2]
    assert 0 < rel_change(out(layers, X), out(bigger, X)) < 0.05


def test_delete_dead_keep_shape_pads_zero_units_at_the_end():
    layers = planted_dead()
    new = delete_dead_neurons(layers, keep_shape=True)
    assert [lay.weight.shape for lay in new] == [lay.weight.shape for lay in layers]
    assert not new[0].weight[5:].any() and not new[1].weight[:, 5:].any() and not new[1].weight[4:].any()
    assert rel_change(out(layers, X), out(new, X)) < 1e-12


def test_delete_dead_shares_the_surgery_bias_folding(monkeypatch):
    import nnclust.normalizers.mlp as mod

    calls = []
    real = mod.remove_units
    monkeypatch.setattr(mod, "remove_units", lambda *a, **k: calls.append(1) or real(*a, **k))
    delete_dead_neurons(planted_dead())
    assert calls == [1]


def test_combine_merges_exactly_the_planted_duplicates():
    layers = random_mlp([6, 8, 6, 2], 6)
    w0, b0 = layers[0].weight.copy(), layers[0].bias.copy()
    w0[5], b0[5] = w0[2], b0[2]  # unit 5 duplicates unit 2
    w0[7], b0[7] = w0[0], b0[0]  # unit 7 duplicates unit 0
    w1, b1 = layers[1].weight.copy(), layers[1].bias.copy()
    w1[4], b1[4] = w1[1], b1[1]
    layers = [replace(layers[0], weight=w0, bias=b0), replace(layers[1], weight=w1, bias=b1), layers[2]]
    new = combine_duplicate_neurons(layers)
    assert [lay.n_out for lay in new] == [6, 5, 2]
    np.testing.assert_array_equal(new[0].weight, np.delete(w0, [5, 7], axis=0))
    np.testing.assert_allclose(new[1].weight[:, 2], np.delete(w1[:, 2] + w1[:, 5], 4))  # summed out-weights
    assert rel_change(out(layers, X), out(new, X)) < 1e-12
    shaped = combine_duplicate_neurons(layers, keep_shape=True)
    assert [lay.n_out for lay in shaped] == [8, 6, 2]
    np.testing.assert_array_equal(shaped[0].weight[:2], w0[[0, 2]])  # merged units first
    assert not shaped[0].weight[6:].any()  # zero units last
    assert rel_change(out(layers, X), out(shaped, X)) < 1e-12
    # a threshold covering near-duplicates merges them approximately
    noisy = [replace(layers[0], weight=w0 + np.eye(8, 6) * 1e-3), *layers[1:]]
    assert combine_duplicate_neurons(noisy)[0].n_out == 8
    assert combine_duplicate_neurons(noisy, threshold=0.01)[0].n_out == 6


def test_delete_constant_folds_the_mean_on_data():
    layers = random_mlp([6, 7, 2], 7)
    w0, b0 = layers[0].weight.copy(), layers[0].bias.copy()
    w0[3], b0[3] = 0.0, 1.5  # constant 1.5 everywhere
    w0[4], b0[4] = np.abs(w0[4]), -100.0  # off on this data
    layers = [replace(layers[0], weight=w0, bias=b0), layers[1]]
    new = delete_constant_neurons(layers, X)
    assert new[0].n_out == 5
    assert rel_change(out(layers, X), out(new, X)) < 1e-12


def tiny_data(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return Dataset("tiny", x, y, x, y, (6,), 2)


@pytest.mark.parametrize("name", [n for n in NORMALIZERS.names() if NORMALIZERS[n].kind == "crude"])
def test_crude_normalizers_are_seeded_and_log_a_curve(name):
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [10, 10]}, (6,), 2)
    data = tiny_data()
    opts = {"steps": 12, "lr": 0.01, "batch_size": 32}
    if "swap_every" in NORMALIZERS[name].defaults:
        opts["swap_every"] = 4
    a = normalize(name, model, opts, data=data, seed=1)
    b = normalize(name, model, opts, data=data, seed=1)
    c = normalize(name, model, {**opts, "seed": 5}, data=data, seed=1)
    assert len(a.curve) == 12 and a.curve == b.curve and a.curve != c.curve
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.weight, lb.weight)
    before = extract_layers(model)
    assert not np.array_equal(before[0].weight, a.layers[0].weight)  # it trained ...
    assert np.array_equal(before[0].weight, extract_layers(model)[0].weight)  # ... a copy


def test_l1_shrinks_weights_more_than_plain_retraining():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [10]}, (6,), 2)
    opts = {"steps": 40, "lr": 0.01}
    plain = normalize("retrain", model, opts, data=tiny_data())
    l1 = normalize("l1_retrain", model, {**opts, "strength": 0.01}, data=tiny_data())
    act = normalize("l1_activation_retrain", model, {**opts, "strength": 0.1}, data=tiny_data())
    assert sum(np.abs(la.weight).sum() for la in l1.layers) < sum(np.abs(la.weight).sum() for la in plain.layers)
    x = tiny_data().x_train.numpy()
    assert forward(act.layers, x)[1][0].mean() < forward(plain.layers, x)[1][0].mean()


def test_bimt_swaps_shorten_the_wiring_and_keep_the_function():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8, 8]}, (6,), 3).eval()
    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    widths = [6, 8, 8, 3]
    dist = crude._distances(crude.unit_positions(widths))
    cost = crude.wiring_cost([lin.weight.detach().double().numpy() for lin in lins], dist)
    x = torch.randn(20, 6)
    with torch.no_grad():
        before = model(x)
    first = [lin.weight.detach().clone() for lin in lins]
    orders = crude.bimt_swaps(model, dist)
    assert any((o != np.arange(8)).any() for o in orders)
    # the orders returned are the ones made: rows of layer g, columns of layer g + 1
    assert torch.equal(lins[0].weight, first[0][orders[0]])
    assert torch.equal(lins[1].weight, first[1][orders[1]][:, orders[0]])
    assert torch.equal(lins[2].weight, first[2][:, orders[1]])
    after_cost = crude.wiring_cost([lin.weight.detach().double().numpy() for lin in lins], dist)
    assert after_cost < cost
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-6)


CRUDE = [n for n in NORMALIZERS.names() if NORMALIZERS[n].kind == "crude"]
DOCUMENT_OPTIMIZER = {"retrain": torch.optim.SGD, "l1_retrain": torch.optim.SGD,
                      "l1_activation_retrain": torch.optim.Adam, "bimt": torch.optim.Adam,
                      "hypernet": torch.optim.Adam}  # fmt: skip


@pytest.mark.parametrize("name", CRUDE)
def test_crude_normalizers_train_with_their_optimizer(name, monkeypatch):
    made = []
    real = crude.make_optimizer
    for module in (crude, hypernet):
        monkeypatch.setattr(module, "make_optimizer", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    model = build_model({"name": "mlp", "hidden": [5]}, (6,), 2)
    normalize(name, model, {"steps": 2}, data=tiny_data())
    assert type(made[0]) is DOCUMENT_OPTIMIZER[name]
    assert made[0].param_groups[0]["lr"] == NORMALIZERS[name].defaults["lr"]
    if isinstance(made[0], torch.optim.SGD):
        assert made[0].param_groups[0]["momentum"] == 0.0  # plain SGD
    other = "adam" if DOCUMENT_OPTIMIZER[name] is torch.optim.SGD else "sgd"
    normalize(name, model, {"steps": 2, "optimizer": other}, data=tiny_data())
    assert type(made[1]).__name__.lower() == other


def double_data(n):
    """`tiny_data` in float64, as the crude training loops read it (a `Dataset` holds
    float32), for comparisons at float64 tolerances."""
    data = tiny_data(n)
    return SimpleNamespace(x_train=data.x_train.double(), y_train=data.y_train, objective=data.objective)


def test_retrain_by_default_takes_a_plain_sgd_step():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [7]}, (6,), 2).double()
    data = double_data(40)
    params = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(data.x_train), data.y_train)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    crude.retrain(model, data, steps=1, lr=0.1, batch_size=40, seed=0)  # one step on the whole set
    for p, p0, g in zip(model.parameters(), params, grads):
        # w - lr * dL/dw; the mean loss of a reordered batch differs in the last bits only
        torch.testing.assert_close(p.detach(), p0 - 0.1 * g, rtol=0, atol=1e-12)


def pruned_model(sparsity=0.7, seed=0):
    """An 'mlp' [10, 10] on 6 inputs with `sparsity` of each weight matrix zeroed, and
    its checkpoint masks."""
    torch.manual_seed(seed)
    model = build_model({"name": "mlp", "hidden": [10, 10]}, (6,), 2)
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".weight"):
                masks[name] = (torch.rand(p.shape, generator=gen) >= sparsity).float()
                p.mul_(masks[name])
    return model, masks


def zeros(layers):
    return [int((lay.weight == 0).sum()) for lay in layers]


@pytest.mark.parametrize("name", CRUDE)
def test_retraining_keeps_a_pruned_model_exactly_as_sparse(name):
    model, masks = pruned_model()
    opts = {"steps": 30, "lr": 0.05, "batch_size": 32}
    if name == "bimt":
        opts["swap_every"] = 5  # units move: their masks must move with them
    parent = extract_layers(model, masks)
    new = normalize(name, model, opts, data=tiny_data(), masks=masks)
    assert zeros(new.layers) == zeros(parent)  # every zero stays zero, nothing else becomes 0
    for lay in new.layers:
        assert not lay.weight[~lay.mask].any() and lay.weight[lay.mask].all()
    assert [m.sum().item() for m in new.masks.values()] == [m.sum().item() for m in masks.values()]
    assert not np.array_equal(new.layers[0].weight, parent[0].weight)  # it did train
    released = normalize(name, model, {**opts, "release_masks": True}, data=tiny_data(), masks=masks)
    assert released.masks is None and sum(zeros(released.layers)) < sum(zeros(parent))  # densified


def test_retraining_keeps_zero_weights_of_an_unmasked_model():
    layers = random_mlp([6, 8, 2], 11)
    layers[0] = replace(layers[0], weight=np.where(np.arange(6) % 2 == 0, 0.0, layers[0].weight))
    new = normalize("retrain", layers, {"steps": 20, "lr": 0.05}, data=tiny_data())
    assert zeros(new.layers) == zeros(layers) == [24, 0] and new.masks is None
    assert not np.allclose(new.layers[0].weight, layers[0].weight, atol=1e-6)


def _permuted(model, orders, masks):
    """A copy of `model` (and `masks`) with hidden layer g's units in `orders[g]`."""
    import copy

    model = copy.deepcopy(model)
    masks = dict(masks)
    lins = crude._linears(model)
    with torch.no_grad():
        for g, order in enumerate(orders):
            idx = torch.as_tensor(order)
            lins[g].weight.copy_(lins[g].weight[idx])
            lins[g].bias.copy_(lins[g].bias[idx])
            lins[g + 1].weight.copy_(lins[g + 1].weight[:, idx])
            masks[f"layer{g}.fc.weight"] = masks[f"layer{g}.fc.weight"][idx]
            masks[f"layer{g + 1}.fc.weight"] = masks[f"layer{g + 1}.fc.weight"][:, idx]
    return model, masks


def test_bimt_swaps_carry_the_optimizer_state_with_the_units(monkeypatch):
    """Without the wiring penalty, training commutes with permuting hidden units. So a
    run that swaps units after step 5 must continue exactly as a run that started
    from the units already in the swapped order: only if Adam's moments and the masks
    moved with the units."""
    model, masks = pruned_model(0.3, seed=4)
    model = model.double()
    data = double_data(96)
    opts = {"steps": 8, "lr": 0.02, "batch_size": 16, "seed": 3, "strength": 0.0, "optimizer": "adam"}
    made = []
    real = crude.bimt_swaps
    monkeypatch.setattr(crude, "bimt_swaps", lambda *a: made.append(real(*a)) or made[-1])
    import copy

    swapped, swapped_masks = copy.deepcopy(model), dict(masks)
    curve = crude.bimt(swapped, data, swap_every=5, masks=swapped_masks, **opts)  # one swap, after step 5
    (orders,) = made
    assert any((o != np.arange(10)).any() for o in orders)
    pre, pre_masks = _permuted(model, orders, masks)
    pre_curve = crude.bimt(pre, data, swap_every=0, masks=pre_masks, **opts)
    np.testing.assert_allclose(curve, pre_curve, rtol=1e-12)
    for a, b in zip(swapped.parameters(), pre.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert all(torch.equal(swapped_masks[k], pre_masks[k]) for k in masks)
    # and the swap did change the trajectory against a run that never swapped
    plain = copy.deepcopy(model)
    crude.bimt(plain, data, swap_every=0, masks=dict(masks), **opts)
    assert not torch.allclose(plain.layer0.fc.weight, swapped.layer0.fc.weight)


@pytest.mark.parametrize("name", NORMALIZERS.names())
def test_every_normalizer_rejects_a_cnn(name):
    model = build_model({"name": "cnn", "conv_channels": [2], "hidden": [4]}, (1, 8, 8), 3)
    with pytest.raises(NormalizerError, match="layer '.*conv' is a conv layer"):
        normalize(name, model, data=tiny_data())


def test_bad_names_options_and_missing_data_are_named():
    model = build_model({"name": "mlp", "hidden": [4]}, (6,), 2)
    with pytest.raises(ValueError, match="unknown normalizer 'sort'.*valid names are"):
        normalize("sort", model)
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) \['treshold'\].*valid keys are \['keep_shape', 'threshold'\]"
    ):
        check_options("delete_dead_neurons", {"treshold": 0.1})
    with pytest.raises(ConfigError, match=r"options.threshold=-0.1 is not allowed: expected a number >= 0"):
        normalize("combine_duplicate_neurons", model, {"threshold": -0.1})
    with pytest.raises(NormalizerError, match="needs data.*dataset="):
        normalize("delete_constant_neurons", model)
    assert check_options("retrain", {"steps": 3})["lr"] == 1e-2
    with pytest.raises(
        ConfigError, match=r"options.optimizer='rmsprop' is not allowed: expected one of \['adam', 'sgd'\]"
    ):
        check_options("retrain", {"optimizer": "rmsprop"})


def test_masks_follow_their_units():
    layers = random_mlp([6, 5, 2], 8)
    masks = [np.random.default_rng(0).random(lay.weight.shape) > 0.3 for lay in layers]
    layers = [replace(lay, weight=lay.weight * m, mask=m) for lay, m in zip(layers, masks)]
    for new in (sort_neurons(layers), rescale_relu(layers), delete_dead_neurons(layers, threshold=1.0)):
        for lay in new:
            assert not lay.weight[~lay.mask].any()
    assert mlp_layers(layers)[0] is layers[0]


def test_deleting_every_unit_of_a_layer_is_refused_unless_the_shape_is_kept():
    layers = random_mlp([6, 4, 3, 2], 9)
    with pytest.raises(NormalizerError, match="threshold=1000.0 would delete all 4 units of hidden layer 1"):
        delete_dead_neurons(layers, threshold=1000.0)
    with pytest.raises(NormalizerError, match="would delete all"):
        delete_constant_neurons(layers, X, threshold=1e9)
    kept = delete_dead_neurons(layers, threshold=1000.0, keep_shape=True)
    assert [lay.weight.shape for lay in kept] == [lay.weight.shape for lay in layers]
    assert not kept[0].weight.any() and not kept[1].weight.any()
    # every unit gone: the output is the constant the biases fold into
    assert np.ptp(out(kept, X), axis=0).max() == 0
