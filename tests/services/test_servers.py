"""The project's MongoDB server and Omniboard, run for real on loopback and stopped by PID."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pymongo
import pytest

import services as servers

from .conftest import free_port


def non_loopback_ip() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            # UDP connect only picks a route and a source address; no packet is sent.
            s.connect(("192.0.2.1", 9))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(ip).is_loopback else ip


def assert_loopback_only(pid: int, port: int) -> None:
    """pid listens on 127.0.0.1:port and on no other interface (checked three ways)."""
    assert servers.listening_sockets(pid) == [("127.0.0.1", port)]
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        local = [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]
        assert local == [f"127.0.0.1:{port}"], out
    ip = non_loopback_ip()
    if ip is not None:
        with pytest.raises(OSError):
            socket.create_connection((ip, port), timeout=1).close()


def process_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def client(handle) -> pymongo.MongoClient:
    return pymongo.MongoClient(handle.url, serverSelectionTimeoutMS=2000)


def fake_mongod(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_mongod_answers_ping(mongod):
    with client(mongod) as c:
        assert c.admin.command("ping")["ok"] == 1
    assert mongod.url == f"mongodb://127.0.0.1:{mongod.port}"
    assert mongod.version.startswith("6.0")
    assert mongod.pidfile.read_text().strip() == str(mongod.pid)


def test_insert_and_read_back(mongod):
    with client(mongod) as c:
        runs = c["nnclust_test"]["runs"]
        runs.insert_one({"_id": 1, "config": {"seed": 3}, "result": 0.5})
        assert runs.find_one({"_id": 1}) == {"_id": 1, "config": {"seed": 3}, "result": 0.5}


def test_mongod_listens_only_on_loopback(mongod):
    assert_loopback_only(mongod.pid, mongod.port)


def test_stop_ends_the_process_and_is_idempotent(tmp_path):
    handle = servers.start_mongod(port=free_port(), home=tmp_path)
    try:
        assert not process_gone(handle.pid)
        again = servers.start_mongod(port=handle.port, home=tmp_path)
        assert again.already_running and again.pid == handle.pid
        assert servers.mongo_status(tmp_path).pid == handle.pid
    finally:
        assert servers.stop_mongod(handle) is True
    assert process_gone(handle.pid)
    assert not handle.pidfile.exists()
    assert servers.port_is_free(handle.port)
    assert servers.stop_mongod(handle) is False
    assert servers.stop_mongod(tmp_path) is False
    assert servers.mongo_status(tmp_path) is None


def test_port_taken_by_another_server_is_a_clear_error(mongod, tmp_path):
    with pytest.raises(RuntimeError, match=f"port {mongod.port} .* already in use by a MongoDB server"):
        servers.start_mongod(port=mongod.port, home=tmp_path)
    assert not (tmp_path / "mongod.pid").exists()


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="mongod is not installed at .*mongo-up"):
        servers.install_mongod(tmp_path / "empty", install=False)
    with pytest.raises(RuntimeError, match="mongod binary not found"):
        servers.start_mongod(port=free_port(), home=tmp_path, mongod=tmp_path / "empty" / "mongod")


def test_missing_system_libraries_name_the_install_script(tmp_path):
    fake_mongod(
        tmp_path / servers.MONGOD_IN_WHEEL,
        "echo 'mongod: error while loading shared libraries: libcurl.so.4: "
        "cannot open shared object file: No such file or directory' >&2\nexit 127\n",
    )
    with pytest.raises(RuntimeError, match=r"libcurl4 and libssl3.*scripts/install_system_deps\.sh"):
        servers.install_mongod(tmp_path, install=False)


def test_a_server_that_dies_reports_its_log(tmp_path):
    binary = fake_mongod(
        tmp_path / "bin" / "mongod",
        'if [ "$1" = --version ]; then echo "db version v6.0.5"; exit 0; fi\n'
        'echo "fatal: cannot open the data files" >&2\nexit 14\n',
    )
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 14.*cannot open the data files"):
        servers.start_mongod(port=free_port(), home=tmp_path, mongod=binary)
    assert not (tmp_path / "mongod.pid").exists()


@pytest.mark.omniboard
def test_omniboard_serves_on_loopback_only(mongod, tmp_path):
    servers.install_omniboard()
    port = free_port()
    handle = servers.start_omniboard(mongo_url=mongod.url, db="nnclust_test", port=port, home=tmp_path)
    try:
        assert handle.url == f"http://127.0.0.1:{port}"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(handle.url + "/", timeout=5) as response:
            assert response.status == 200
        with direct.open(handle.url + "/api/v1/databases", timeout=5) as response:
            assert [db["name"] for db in json.load(response)] == ["nnclust_test"]
        assert_loopback_only(handle.pid, port)
        assert re.fullmatch(r"\d+", handle.pidfile.read_text().strip())
    finally:
        assert servers.stop_omniboard(handle) is True
    assert process_gone(handle.pid)
    assert not handle.pidfile.exists()
    assert servers.stop_omniboard(handle) is False
