"""Drop-connect: off at p=0 (bit for bit), masked weights in the training forward pass
(the masks drawn again by hand from the same stream), plain weights in evaluation,
masks fresh at every step and fixed by the seed."""

from types import SimpleNamespace

import pytest
import torch

from nnclust.core import seeding
from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.training import train
from nnclust.training.dropconnect import DropConnect

OPT = {"name": "sgd", "lr": 0.1, "momentum": 0.0}


def _moons():
    return load_dataset("moons", seed=0, n_samples=200)


def _model(seed=0, shape=(2,), hidden=(12, 12), name="mlp"):
    torch.manual_seed(seed)
    return build_model({"name": name, "hidden": list(hidden)}, shape, 2)


def _trained(callbacks, seed=1):
    data = _moons()
    model = _model()
    train(model, data, epochs=2, batch_size=32, optimizer=OPT, seed=seed, callbacks=callbacks, progress=False)
    return [p.detach().clone() for p in model.parameters()]


def test_p_zero_trains_exactly_as_without_it():
    plain = _trained([])
    off = _trained([DropConnect(0.0, seed=5)])
    assert all(torch.equal(a, b) for a, b in zip(plain, off))
    on = _trained([DropConnect(0.3, seed=5)])
    assert not torch.equal(plain[0], on[0])


def manual_forward(model, x, p, seed, draws=1):
    """The MLP's forward pass with masks drawn again from the ``dropconnect`` stream of
    `seed` (`draws` passes' worth; the last is used), scaled by 1 / (1 - p)."""
    gen = seeding.torch_generator(seed, "dropconnect")
    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for _ in range(draws):
        masks = [(torch.rand(lin.weight.shape, generator=gen) >= p).float() for lin in lins]
    h = x
    for i, (lin, m) in enumerate(zip(lins, masks)):
        h = h @ (lin.weight * m / (1 - p)).T + lin.bias
        if i < len(lins) - 1:
            h = torch.relu(h)
    return h, masks


def test_the_training_forward_pass_uses_freshly_masked_weights_and_eval_the_plain_ones():
    model, x, p = _model(hidden=(10,)), torch.randn(16, 2), 0.4
    with torch.no_grad():
        plain = model.eval()(x)
    dc = DropConnect(p, seed=9)
    dc.on_train_start(SimpleNamespace(model=model))
    model.train()
    first, second = model(x), model(x)
    want1, masks = manual_forward(model, x, p, 9)
    want2, _ = manual_forward(model, x, p, 9, draws=2)
    torch.testing.assert_close(first, want1, rtol=0, atol=1e-6)
    torch.testing.assert_close(second, want2, rtol=0, atol=1e-6)
    assert not torch.allclose(first, second)  # a new mask at each pass
    assert 0.2 < 1 - torch.cat([m.flatten() for m in masks]).mean() < 0.6  # about p of the weights dropped
    # the gradient reaches the kept weights only
    lin = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    model.zero_grad()
    model(x).sum().backward()
    _, masks3 = manual_forward(model, x, p, 9, draws=3)
    assert (lin.weight.grad[masks3[0] == 0] == 0).all()
    assert (lin.weight.grad[masks3[0] == 1] != 0).any()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain)
    dc.remove()
    with torch.no_grad():
        assert torch.equal(model.train()(x), plain)  # hooks gone


def test_conv_layers_are_masked_too():
    model = _model(shape=(1, 6, 6), hidden=(4,), name="cnn")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0  # the training pass leaves the running statistics as they are
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():
        plain = model.eval()(x)
        DropConnect(0.5, seed=2).on_train_start(SimpleNamespace(model=model))
        assert not torch.allclose(model.train()(x), plain)
        assert torch.equal(model.eval()(x), plain)


def test_seeded_and_resumable():
    a, b, c = (_trained([DropConnect(0.3, seed=s)]) for s in (5, 5, 6))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    dc = DropConnect(0.3, seed=5)
    saved = dc.state_dict()
    first = torch.rand(4, generator=dc.generator)
    dc.load_state_dict(saved)
    assert torch.equal(torch.rand(4, generator=dc.generator), first)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_a_probability_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match=rf"dropconnect={p} is not allowed: expected a probability in \[0, 1\)"):
        DropConnect(p, seed=0)
