"""A real mongod for the server tests: on a free loopback port, with its data in pytest's temp folder."""

from __future__ import annotations

import socket

import pytest

from services import start_mongod, stop_mongod

# A small training run that the MongoDB tests store (3 epochs on moons, pruned to 50%).
MOONS = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"name": "mlp", "hidden": [10]},
    "epochs": 3,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 2},
    "progress": False,
    "seed": 4,
}


def pytest_configure(config):
    config.addinivalue_line("markers", "omniboard: starts a real Omniboard (npm-installs it on first use)")


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mongod(tmp_path_factory):
    """A mongod started for this test session and stopped by its PID at the end.

    The binary is the project's (`.services/mongo/pkg`, installed on first use); its pid file,
    log and data live in a temporary folder, so the project's own server is left alone.
    """
    home = tmp_path_factory.mktemp("mongod")
    handle = start_mongod(port=free_port(), home=home)
    try:
        yield handle
    finally:
        stop_mongod(handle)
