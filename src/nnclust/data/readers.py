"""Readers for the on-disk formats of the file-based datasets.

Nothing here downloads (`nnclust.data.downloads` fetches missing files before a
reader runs): a missing file is an error that says exactly which file to put where. Readers return raw numpy arrays
(uint8 pixels, int64 labels); scaling and conversion to tensors happen in
`nnclust.data`.
"""

from __future__ import annotations

import gzip
import importlib
import os
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_FILES = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
# The folder name inside the official cifar-10-python.tar.gz archive.
CIFAR10_ARCHIVE_FOLDER = "cifar-10-batches-py"

IDX_UBYTE = 0x08
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)


# --------------------------------------------------------------------------- files


def find_files(dataset: str, folder: Path, names: Sequence[str], allow_gz: bool) -> dict[str, Path]:
    """Path of each file of `names` in `folder`; a FileNotFoundError lists every missing one.

    With `allow_gz`, ``<name>.gz`` is accepted in place of ``<name>``; the plain file is
    used when both exist, because it reads faster.
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        path = _present(folder, name, allow_gz)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise FileNotFoundError(missing_files_message(dataset, folder, missing, allow_gz))
    return found


def _present(folder: Path, name: str, allow_gz: bool) -> Path | None:
    candidates = [folder / name] + ([folder / f"{name}.gz"] if allow_gz else [])
    return next((p for p in candidates if p.is_file()), None)


def missing_files(folder: str | os.PathLike, names: Sequence[str], allow_gz: bool) -> list[str]:
    """The names of `names` that `find_files` would report missing from `folder`."""
    return [name for name in names if _present(Path(folder), name, allow_gz) is None]


def missing_files_message(
    dataset: str,
    folder: Path,
    missing: Sequence[str],
    allow_gz: bool,
    extra: str = "",
    fix: str = "Put the file(s) in that folder (nothing is downloaded).",
) -> str:
    """One line: which files of `dataset` are missing from which folder, then `fix`."""
    where = os.path.abspath(folder)
    gz = " Each file may be plain or gzipped with a .gz suffix." if allow_gz else ""
    return f"dataset {dataset!r}: missing file(s) {', '.join(missing)} in folder {where}. {fix}{gz}{extra}"


def _read_bytes(path: Path) -> bytes:
    """All bytes of `path`, decompressed when its name ends in .gz."""
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as e:
            # gzip reports a truncated archive as EOFError and a bad header as OSError.
            raise ValueError(f"{path}: corrupt gzip file ({e})") from e
    return path.read_bytes()


# ----------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format) into a uint8 array.

    The header is two zero bytes, the type code (0x08 = unsigned byte), the number of
    dimensions, then one big-endian uint32 per dimension; the data follow in C order.
    `magic` is the expected first 4 bytes as a big-endian integer (0x00000803 for
    images, 0x00000801 for labels). Any mismatch, a short file or trailing bytes raise
    a ValueError naming the file.
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{path}: IDX file too short for its header ({len(buf)} bytes)")
    found = int.from_bytes(buf[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
            "(wrong file, or not an IDX file of unsigned bytes)"
        )
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"{path}: IDX file truncated inside its header of {header} bytes")
    shape = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(buf) - header
    if actual != expected:
        state = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {state}: header says shape {shape} = {expected} bytes, file holds {actual} data bytes"
        )
    # Copy out of the immutable bytes: torch warns on (and cannot protect) read-only arrays.
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_mnist_style(dataset: str, folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four IDX files of an MNIST-style dataset (MNIST, KMNIST, Fashion-MNIST).

    Returns ``x_train``/``x_test`` as uint8 arrays of shape (n, 28, 28) with pixel
    values 0..255, and ``y_train``/``y_test`` as int64 arrays of shape (n,) with
    labels 0..9.
    """
    folder = Path(folder)
    files = find_files(dataset, folder, MNIST_FILES, allow_gz=True)
    out: dict[str, np.ndarray] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = files[f"{prefix}-images-idx3-ubyte"]
        labels_path = files[f"{prefix}-labels-idx1-ubyte"]
        images = read_idx(images_path, IDX_IMAGES_MAGIC)
        labels = read_idx(labels_path, IDX_LABELS_MAGIC)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
        if len(labels) != len(images):
            raise ValueError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..9")
        out[f"x_{split}"] = images
        out[f"y_{split}"] = labels.astype(np.int64)
    return out


# ------------------------------------------------------------------------- CIFAR-10


def _numpy_global(module: str, name: str):
    # numpy 2 moved numpy.core to numpy._core and left a shim that warns on import;
    # pickles name either, depending on the numpy that wrote them.
    for candidate in (module.replace("numpy.core", "numpy._core", 1), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy global {module}.{name} not found")


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals needed to rebuild numpy arrays.

    Unpickling calls whatever global the stream names, so a batch file from an
    untrusted source could run arbitrary code (e.g. ``os.system``) just by being
    loaded. CIFAR-10 batches hold only dicts, lists, bytes and uint8 arrays, so every
    other global is refused with `pickle.UnpicklingError` before it is imported.
    """

    ALLOWED = frozenset(
        {
            # ndarray.__reduce__ at protocols 0-4
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # ndarray.__reduce_ex__ at protocol 5: frombuffer + reshape, no code
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            # Python 3 writes bytes as _codecs.encode(str, "latin1") at protocols < 3;
            # codecs only transform data.
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array "
                "reconstruction is allowed in a dataset pickle"
            )
        if module.startswith("numpy"):
            return _numpy_global(module, name)
        return getattr(importlib.import_module(module), name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: uint8 images (n, 3, 32, 32), int64 labels (n,) in 0..9.

    The file is a pickled dict with ``b"data"`` (uint8, n x 3072: the red, green and
    blue 32x32 planes of each image, rows in order) and ``b"labels"`` (n ints). A
    disallowed global raises `pickle.UnpicklingError`; any other defect a ValueError;
    both name the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{path}: {e}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ValueError(f"{path}: corrupt CIFAR-10 batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f'{path}: expected a dict with keys b"data" and b"labels"')
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f'{path}: b"data" must be a 2-d uint8 array')
    if data.shape[1] != 3 * 32 * 32:
        raise ValueError(f'{path}: b"data" rows have {data.shape[1]} values, expected 3072')
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{path}: b"labels" is not a list of integers') from e
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10_folder(dataset: str, folder: str | os.PathLike) -> Path:
    """The folder that holds all six CIFAR-10 batches: `folder` or its cifar-10-batches-py."""
    folder = Path(folder)
    candidates = [folder, folder / CIFAR10_ARCHIVE_FOLDER]
    present = [sum((c / n).is_file() for n in CIFAR10_FILES) for c in candidates]
    for candidate, count in zip(candidates, present):
        if count == len(CIFAR10_FILES):
            return candidate
    # Report against the candidate the user has evidently started to fill.
    best = candidates[int(np.argmax(present))]
    missing = [n for n in CIFAR10_FILES if not (best / n).is_file()]
    extra = (
        f" The extracted archive folder {os.path.abspath(candidates[1])} is accepted too."
        if best is candidates[0]
        else f" The folder {os.path.abspath(candidates[0])} is accepted too."
    )
    raise FileNotFoundError(missing_files_message(dataset, best, missing, False, extra))


def read_cifar10(dataset: str, folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All CIFAR-10 batches: ``x_*`` uint8 (n, 3, 32, 32), ``y_*`` int64 (n,) in 0..9."""
    folder = cifar10_folder(dataset, folder)
    train = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_test, y_test = read_cifar_batch(folder / CIFAR10_TEST_FILE)
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }
