"""Verified downloads of the file-based datasets into the folders the readers read.

`REMOTES` names, per dataset, the public mirrors and the known hash of every file, as
torchvision publishes them; `ensure_files` fetches only what the readers would miss,
through pooch (hash check on a temporary file, retries, then an atomic move), so:

- files already in ``<root>/<name>/`` (plain or gzipped, fetched or put there by hand)
  are used as they are: nothing is fetched, hashed or replaced;
- a download whose hash does not match is deleted and reported on one line; nothing of
  it stays on disk, so the next run fetches it again;
- ``download=False``, or the environment variable ``NNCLUST_OFFLINE`` set to anything
  but "" or "0", turns fetching off: a missing file is then the readers' one-line error
  naming it and its folder.

MNIST-style datasets are fetched as their four ``.gz`` IDX files, which the readers
take as they are; CIFAR-10 as its archive ``cifar-10-python.tar.gz``, kept in
``<root>/cifar10/`` and unpacked into the ``cifar-10-batches-py`` folder beside it.

This module imports nothing heavy; pooch (and requests) are imported when a file is
actually missing.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nnclust.data import readers

__all__ = ["OFFLINE_VARIABLE", "REMOTES", "Remote", "ensure_files", "offline"]

OFFLINE_VARIABLE = "NNCLUST_OFFLINE"
# Attempts after the first, per mirror and file: pooch waits 1 s, then 2 s, between them.
RETRIES = 2
# Seconds without an answer before a request is abandoned (requests' connect/read timeout).
TIMEOUT = 60


@dataclass(frozen=True)
class Remote:
    """Where a dataset's files come from.

    `files` maps each file name, as on the server and on disk, to its known hash in
    pooch's notation (``"md5:<hex>"`` or ``"sha256:<hex>"``). `mirrors` are base URLs
    ending in "/", tried in order when one cannot be reached. With `archive`, the one
    file is a tar.gz whose members ``<archive_folder>/<name>`` are the reader's files.
    """

    mirrors: tuple[str, ...]
    files: dict[str, str]
    archive_folder: str | None = None


def _mnist_style(mirrors: tuple[str, ...], *hashes: str) -> Remote:
    names = [f"{name}.gz" for name in readers.MNIST_FILES]
    return Remote(mirrors, dict(zip(names, (f"md5:{h}" for h in hashes), strict=True)))


# The mirrors and md5 sums of torchvision.datasets (mnist.py: MNIST, KMNIST,
# FashionMNIST; cifar.py: CIFAR10), in the reader's file order: train images, train
# labels, test images, test labels.
REMOTES: dict[str, Remote] = {
    "mnist": _mnist_style(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    "kmnist": _mnist_style(
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        "bdb82020997e1d708af4cf47b453dcf7",
        "e144d726b3acfaa3e44228e80efcd344",
        "5c965bf0a639b31b8f53240b1b52f4d7",
        "7320c461ea6c1c855c0b718fb2a4b134",
    ),
    "fashion_mnist": _mnist_style(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
    "cifar10": Remote(
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"},
        archive_folder=readers.CIFAR10_ARCHIVE_FOLDER,
    ),
}


class DownloadError(FileNotFoundError):
    """No mirror could deliver a missing file: the files stay missing."""


class HashMismatchError(ValueError):
    """A download arrived, but its hash is not the known one: it was deleted."""


def offline() -> bool:
    """True when ``NNCLUST_OFFLINE`` is set (to anything but "" or "0")."""
    return os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0")


def _missing(dataset: str, folder: Path) -> tuple[list[str], Path, bool, str]:
    """(missing reader files, the folder they belong in, whether .gz is accepted, the
    readers' own message) for `dataset`; the list is empty when nothing is missing."""
    if REMOTES[dataset].archive_folder is None:
        missing = readers.missing_files(folder, readers.MNIST_FILES, allow_gz=True)
        message = readers.missing_files_message(dataset, folder, missing, True) if missing else ""
        return missing, folder, True, message
    try:
        readers.cifar10_folder(dataset, folder)
    except FileNotFoundError as e:
        inside = folder / REMOTES[dataset].archive_folder
        return readers.missing_files(inside, readers.CIFAR10_FILES, allow_gz=False), inside, False, str(e)
    return [], folder, False, ""


def ensure_files(dataset: str, folder: str | os.PathLike, download: bool) -> None:
    """Make the reader's files of `dataset` present in `folder` (``<root>/<dataset>``).

    Does nothing when they are all there. Otherwise, with `download` and not
    `offline`, fetches the missing ones from ``REMOTES[dataset]``; a file no mirror
    delivers is a `DownloadError` (a FileNotFoundError) naming the files, the folder
    and each mirror's failure, and a hash mismatch a `HashMismatchError` (a
    ValueError). Without `download`, or offline, a missing file is the readers'
    FileNotFoundError, which names every missing file and its folder.
    """
    folder = Path(folder)
    missing, where, allow_gz, message = _missing(dataset, folder)
    if not missing:
        return
    if not download:
        raise FileNotFoundError(f"{message} Set dataset.download=True to fetch them.")
    if offline():
        raise FileNotFoundError(f"{message} Downloads are off: {OFFLINE_VARIABLE} is set.")
    remote = REMOTES[dataset]
    if remote.archive_folder is None:
        for name in missing:
            _fetch(dataset, remote, f"{name}.gz", folder, missing, where, allow_gz)
        return
    (archive,) = remote.files
    path = _fetch(dataset, remote, archive, folder, missing, where, allow_gz)
    _unpack(path, remote.archive_folder, missing, where)


def _fetch(
    dataset: str, remote: Remote, name: str, folder: Path, missing: list[str], where: Path, allow_gz: bool
) -> Path:
    """`name` in `folder`, fetched through pooch from the first mirror that answers."""
    import pooch  # deferred: only a missing file needs it (and requests, which it imports)
    import requests

    known = remote.files[name]
    failures = []
    for mirror in remote.mirrors:
        fetcher = pooch.create(path=folder, base_url=mirror, registry={name: known}, retry_if_failed=RETRIES)
        try:
            # A file already at `folder/name` with the known hash is not fetched again
            # (a CIFAR-10 archive kept after unpacking).
            return Path(fetcher.fetch(name, downloader=pooch.HTTPDownloader(progressbar=False, timeout=TIMEOUT)))
        except requests.exceptions.RequestException as e:
            failures.append(f"{mirror}{name}: {type(e).__name__}: {_first_line(e)}")
        except ValueError as e:
            # pooch checks the hash on a temporary file and deletes it on a mismatch,
            # so nothing of the bad download is left for the next run to trust.
            raise HashMismatchError(
                f"dataset {dataset!r}: the download of {mirror}{name} does not match its known hash {known} "
                f"(corrupt transfer or changed file; {_first_line(e)}). Nothing was kept in "
                f"{os.path.abspath(folder)}: run again to retry, or put the file(s) there by hand."
            ) from e
    fix = (
        f"Downloading {name} failed from every mirror ({'; '.join(failures)}). "
        "Put the file(s) in that folder by hand, or run again when the mirrors can be reached."
    )
    raise DownloadError(readers.missing_files_message(dataset, where, missing, allow_gz, fix=fix))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _unpack(archive: Path, archive_folder: str, names: list[str], where: Path) -> None:
    """Extract the members ``<archive_folder>/<name>`` of the tar.gz `archive` into `where`.

    Only those regular-file members are read, so a hostile archive cannot write
    outside `where`; each file appears atomically (temporary file, then rename), so an
    interrupted unpacking leaves whole files only and the next run completes it.
    """
    where.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for name in names:
            try:
                member = tar.getmember(f"{archive_folder}/{name}")
            except KeyError:
                member = None
            if member is None or not member.isfile():
                raise ValueError(f"{archive}: archive has no file {archive_folder}/{name}; delete it to fetch it again")
            source = tar.extractfile(member)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=where)
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                os.replace(tmp, where / name)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
