"""Omniboard 2.16.1: installed with npm into `.services/omniboard`, started on 127.0.0.1 for a
database of the project's mongod, and stopped by its PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .mongod import MONGO_PORT, _mongo_url, _ping
from .process import (
    HOST,
    SERVICES,
    _check_loopback_only,
    _cmdline,
    _display,
    _environ,
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

OMNIBOARD_HOME = SERVICES / "omniboard"
OMNIBOARD_PACKAGE = "omniboard"
OMNIBOARD_VERSION = "2.16.1"
OMNIBOARD_PORT = 9000
OMNIBOARD_DB = "nnclust"
OMNIBOARD_READY_TIMEOUT_S = 60.0

# Omniboard 2.16.1 calls `app.listen(PORT)` without a host, which listens on every interface,
# and it has neither an option nor an environment variable for the host. This file is preloaded
# with `node --require` and makes every TCP listen in the process use 127.0.0.1. Omniboard also
# retries on port+1 when its port is taken; the process exits instead, so it never ends up on a
# port nobody asked for.
_BIND_LOOPBACK_JS = """\
'use strict';
// Preloaded by services.omniboard (node --require): every TCP server of this process listens on
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
            f"store {running.mongo_url}); stop it first with `python -m services omniboard-down`"
        )

    if _ping(mongo_url, 2000) is None:
        raise RuntimeError(f"no MongoDB server answers at {mongo_url}; start one with `python -m services mongo-up`")
    start_js = install_omniboard()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed; Omniboard runs on Node.js")
    if not port_is_free(port):
        raise RuntimeError(
            f"port {port} on {HOST} is already in use; choose another port (--port N; with make: OMNIBOARD_PORT=N)"
        )

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
