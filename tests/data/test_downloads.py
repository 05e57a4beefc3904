"""Verified downloads, against an HTTP server on 127.0.0.1 that the tests start and stop.

The server serves small fixture files whose hashes the tests register in place of the
public ones, and counts every request, so "fetched", "not fetched" and "fetched again"
are counts, not timings.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pooch.core
import pytest
import torch
from tests.data.test_datasets import idx_bytes, idx_images, idx_labels, pixels, write_cifar10

from nnclust.core.constraints import ConfigError, validate
from nnclust.data import DATASETS, downloads, load_dataset, readers
from nnclust.experiments import imp, symmetry, train

N_TRAIN, N_TEST = 12, 6


class FileServer:
    """`files` (URL path -> bytes) over HTTP on 127.0.0.1; other paths are 404.

    `requests` lists every requested path, in order."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server dispatches to
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll: shutdown() in close() waits up to one poll interval (0.5 s by default)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def mnist_files() -> dict[str, bytes]:
    """The four gzipped IDX files, by their name on the server."""
    arrays = {
        "train-images-idx3-ubyte": (idx_images(N_TRAIN, 3), readers.IDX_IMAGES_MAGIC),
        "train-labels-idx1-ubyte": (idx_labels(N_TRAIN, 1), readers.IDX_LABELS_MAGIC),
        "t10k-images-idx3-ubyte": (idx_images(N_TEST, 50), readers.IDX_IMAGES_MAGIC),
        "t10k-labels-idx1-ubyte": (idx_labels(N_TEST, 4), readers.IDX_LABELS_MAGIC),
    }
    return {f"{name}.gz": gzip.compress(idx_bytes(a, magic), mtime=0) for name, (a, magic) in arrays.items()}


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def online(monkeypatch):
    """Downloads on (the suite turns them off), straight to 127.0.0.1, no waits between retries."""
    monkeypatch.delenv(downloads.OFFLINE_VARIABLE, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setattr(downloads, "RETRIES", 0)
    monkeypatch.setattr(pooch.core.time, "sleep", lambda seconds: None)


@pytest.fixture
def server():
    srv = FileServer({})
    yield srv
    srv.close()


@pytest.fixture
def mnist_remote(online, server, monkeypatch):
    """`mnist` served from the test server, its hashes those of the fixture files."""
    files = mnist_files()
    server.files.update({f"/mnist/{name}": data for name, data in files.items()})
    # md5 as torchvision publishes them, sha256 for one file: pooch takes both.
    hashes = {name: (sha256 if name.startswith("t10k-images") else md5)(data) for name, data in files.items()}
    remote = downloads.Remote((f"{server.url}mnist/",), hashes)
    monkeypatch.setitem(downloads.REMOTES, "mnist", remote)
    return files


def leftovers(folder: Path) -> list[str]:
    """Files in `folder` that are not a reader's file: temporaries of a failed download."""
    keep = {f"{n}.gz" for n in readers.MNIST_FILES} | set(readers.MNIST_FILES)
    return sorted(p.name for p in folder.iterdir() if p.name not in keep) if folder.exists() else []


# ----------------------------------------------------------------------- the registry


def test_every_remote_dataset_downloads_by_default_and_only_those():
    with_download = {name for name in DATASETS if "download" in DATASETS[name].defaults}
    assert with_download == set(downloads.REMOTES) == {"mnist", "kmnist", "fashion_mnist", "cifar10"}
    assert all(DATASETS[name].defaults["download"] is True for name in with_download)


def test_registered_hashes_are_torchvisions_and_cover_every_file():
    for remote in downloads.REMOTES.values():
        assert remote.mirrors and all(m.endswith("/") and m.startswith(("http://", "https://")) for m in remote.mirrors)
        assert all(h.startswith("md5:") and len(h) == 4 + 32 for h in remote.files.values())
        if remote.archive_folder is None:
            assert list(remote.files) == [f"{n}.gz" for n in readers.MNIST_FILES]
    assert downloads.REMOTES["mnist"].files["train-images-idx3-ubyte.gz"] == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert downloads.REMOTES["cifar10"].files == {"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"}


# ---------------------------------------------------------------- fresh, cached, present


def test_fresh_download_is_read_and_a_second_load_fetches_nothing(mnist_remote, server, tmp_path):
    ds = load_dataset("mnist", root=tmp_path)
    assert sorted(server.requests) == sorted(f"/mnist/{name}" for name in mnist_files())
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(mnist_files())
    assert torch.equal(ds.x_train[:, 0], pixels(idx_images(N_TRAIN, 3)))
    assert ds.y_test.tolist() == idx_labels(N_TEST, 4).tolist()
    again = load_dataset("mnist", root=tmp_path)
    assert len(server.requests) == 4  # cached: no second request
    assert torch.equal(again.x_test, ds.x_test)


def test_files_in_place_are_used_and_only_missing_ones_fetched(mnist_remote, server, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    # Plain (not gzipped) files put there by hand, with contents the server does not have.
    own = idx_images(N_TRAIN, 99)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(own, readers.IDX_IMAGES_MAGIC))
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(idx_images(N_TEST, 7), readers.IDX_IMAGES_MAGIC))
    ds = load_dataset("mnist", root=tmp_path)
    assert sorted(server.requests) == ["/mnist/t10k-labels-idx1-ubyte.gz", "/mnist/train-labels-idx1-ubyte.gz"]
    assert torch.equal(ds.x_train[:, 0], pixels(own))  # the hand-placed file, not replaced
    load_dataset("mnist", root=tmp_path, download=False)
    assert len(server.requests) == 2


# ------------------------------------------------------------------ corrupt downloads


def test_corrupt_download_is_one_line_leaves_nothing_and_is_retried_next_run(
    mnist_remote, server, tmp_path, monkeypatch
):
    good = server.files["/mnist/train-labels-idx1-ubyte.gz"]
    server.files["/mnist/train-labels-idx1-ubyte.gz"] = good[:-3] + b"xyz"
    monkeypatch.setattr(downloads, "RETRIES", 1)  # pooch tries once more before giving up
    with pytest.raises(ValueError) as err:
        load_dataset("mnist", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "train-labels-idx1-ubyte.gz" in msg and md5(good) in msg and "run again" in msg
    assert server.requests.count("/mnist/train-labels-idx1-ubyte.gz") == 2  # the first try and one retry
    folder = tmp_path / "mnist"
    assert not (folder / "train-labels-idx1-ubyte.gz").exists()
    assert leftovers(folder) == []  # no partial or temporary file
    # The next run, once the server has the right file, fetches it and loads.
    server.files["/mnist/train-labels-idx1-ubyte.gz"] = good
    ds = load_dataset("mnist", root=tmp_path)
    assert ds.y_train.tolist() == idx_labels(N_TRAIN, 1).tolist()
    assert server.requests.count("/mnist/train-labels-idx1-ubyte.gz") == 3


def test_hash_is_checked_not_only_the_transfer(mnist_remote, server, tmp_path, monkeypatch):
    # A well-formed IDX file that is simply not the registered one is refused too.
    remote = downloads.REMOTES["mnist"]
    files = dict(remote.files, **{"t10k-labels-idx1-ubyte.gz": md5(b"something else")})
    monkeypatch.setitem(downloads.REMOTES, "mnist", downloads.Remote(remote.mirrors, files))
    with pytest.raises(downloads.HashMismatchError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", root=tmp_path)
    assert not (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


# ------------------------------------------------------------- no download, no network


def test_download_false_fetches_nothing_and_names_every_file(mnist_remote, server, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist", root=tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg and server.requests == []
    assert all(name in msg for name in readers.MNIST_FILES)
    assert str(tmp_path / "mnist") in msg and "nothing is downloaded" in msg and "download=True" in msg


def test_offline_environment_fetches_nothing(mnist_remote, server, tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_VARIABLE, "1")
    with pytest.raises(FileNotFoundError, match=downloads.OFFLINE_VARIABLE) as err:
        load_dataset("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value) and "\n" not in str(err.value)
    assert server.requests == []


def test_unreachable_mirror_falls_back_to_the_next(mnist_remote, server, tmp_path, monkeypatch):
    remote = downloads.REMOTES["mnist"]
    monkeypatch.setitem(
        downloads.REMOTES, "mnist", downloads.Remote((f"{server.url}gone/", *remote.mirrors), remote.files)
    )
    load_dataset("mnist", root=tmp_path)
    assert sum(r.startswith("/gone/") for r in server.requests) == 4
    assert sum(r.startswith("/mnist/") for r in server.requests) == 4


def test_no_mirror_answering_is_one_line_naming_the_files(mnist_remote, server, tmp_path, monkeypatch):
    remote = downloads.REMOTES["mnist"]
    monkeypatch.setitem(downloads.REMOTES, "mnist", downloads.Remote((f"{server.url}gone/",), remote.files))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "404" in msg and f"{server.url}gone/" in msg
    assert all(name in msg for name in readers.MNIST_FILES) and str(tmp_path / "mnist") in msg
    assert leftovers(tmp_path / "mnist") == []


# -------------------------------------------------------------------------- CIFAR-10


def cifar_archive(tmp_path: Path) -> tuple[bytes, dict]:
    """A cifar-10-python.tar.gz of six small fake batches (and the files it does not need)."""
    source = tmp_path / "source" / readers.CIFAR10_ARCHIVE_FOLDER
    batches = write_cifar10(source)
    (source / "batches.meta").write_bytes(b"not read")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(source, arcname=readers.CIFAR10_ARCHIVE_FOLDER)
    return buf.getvalue(), batches


def test_cifar_archive_is_fetched_verified_unpacked_and_kept(online, server, tmp_path, monkeypatch):
    archive, batches = cifar_archive(tmp_path)
    server.files["/cifar/cifar-10-python.tar.gz"] = archive
    remote = downloads.Remote(
        (f"{server.url}cifar/",), {"cifar-10-python.tar.gz": md5(archive)}, readers.CIFAR10_ARCHIVE_FOLDER
    )
    monkeypatch.setitem(downloads.REMOTES, "cifar10", remote)
    root = tmp_path / "data"
    ds = load_dataset("cifar10", root=root)
    assert server.requests == ["/cifar/cifar-10-python.tar.gz"]
    unpacked = root / "cifar10" / readers.CIFAR10_ARCHIVE_FOLDER
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(readers.CIFAR10_FILES)
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    load_dataset("cifar10", root=root)
    assert len(server.requests) == 1
    # A lost batch is unpacked again from the kept archive, with no request.
    (unpacked / "data_batch_2").unlink()
    again = load_dataset("cifar10", root=root)
    assert len(server.requests) == 1 and torch.equal(again.x_train, ds.x_train)
    # A corrupt archive is refused and not kept.
    (root / "cifar10" / "cifar-10-python.tar.gz").unlink()
    (unpacked / "test_batch").unlink()
    server.files["/cifar/cifar-10-python.tar.gz"] = archive[:-10]
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=root)
    assert sorted(os.listdir(root / "cifar10")) == [readers.CIFAR10_ARCHIVE_FOLDER]


# ------------------------------------------------------------ the option reaches the code


def check_dataset_config(module, dataset: dict) -> None:
    """`module`'s config check of a config that holds only `dataset`."""
    relations = [r for r in module.RELATIONS if all(k.split(".")[0] == "dataset" for k in r.keys)]
    validate({"dataset": dataset}, module.CONSTRAINTS, relations)


def test_download_option_is_validated_where_config_enters():
    for module in (train, imp, symmetry):
        with pytest.raises(ConfigError, match=r"dataset.download='no' is not allowed: expected true or false"):
            check_dataset_config(module, {"name": "mnist", "download": "no"})
        check_dataset_config(module, {"name": "mnist", "download": False})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['download'\] for dataset 'digits'"):
        check_dataset_config(train, {"name": "digits", "download": False})
    with pytest.raises(ValueError, match="download must be True or False, got 1"):
        load_dataset("mnist", download=1)


class Run:
    """The least of Sacred's run that the training job uses: a folder and artifacts."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.info: dict = {}

    def log_scalar(self, name, value, step=None):
        pass

    def add_artifact(self, filename, name=None, content_type=None):
        pass


def train_run(folder: Path, **config) -> tuple[Run, dict]:
    run = Run(folder)
    return run, train.train_job(run, 0, **{"optimizer": {"name": "adam", "lr": 1e-3}, "lr_decay": 1.0}, **config)


def test_download_option_reaches_the_training_job(mnist_remote, server, tmp_path):
    config = dict(
        data_root=str(tmp_path / "data"),
        model={"name": "mlp", "hidden": [4]},
        epochs=1,
        batch_size=4,
        pruning={"final_sparsity": 0.0, "num_pruning_epochs": 0},
        progress=False,
    )
    with pytest.raises(FileNotFoundError, match="download=True"):
        train_run(tmp_path / "off", dataset={"name": "mnist", "download": False}, **config)
    assert server.requests == []
    _, result = train_run(tmp_path / "on", dataset={"name": "mnist", "download": True}, **config)
    assert len(server.requests) == 4 and result["num_parameters"] == 784 * 4 + 4 + 4 * 10 + 10
