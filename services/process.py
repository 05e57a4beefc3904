"""Process helpers of the servers: liveness, command line and environment, listening sockets,
stopping by PID, spawning in a session of its own, pid files, ports and log tails.

Processes are inspected with psutil; the children this Python process started are also kept
as `subprocess.Popen` objects, so they can be reaped.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVICES = PROJECT_ROOT / ".services"

HOST = "127.0.0.1"

STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 20

# Children started by this Python process, kept so they can be reaped: a stopped child that is
# never waited for stays a zombie, and a zombie still "exists" for os.kill(pid, 0).
_CHILDREN: dict[int, subprocess.Popen] = {}


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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # psutil.ZombieProcess is a NoSuchProcess
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _environ(pid: int) -> dict[str, str]:
    try:
        return psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


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


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket (IPv4 and IPv6) that process `pid` listens on."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    found = {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return sorted(found)


def _check_loopback_only(pid: int, what: str) -> list[tuple[str, int]]:
    sockets = listening_sockets(pid)
    exposed = [(a, p) for a, p in sockets if not ipaddress.ip_address(a).is_loopback]
    if exposed:
        raise RuntimeError(f"{what} (pid {pid}) listens beyond loopback: {exposed}")
    return sockets
