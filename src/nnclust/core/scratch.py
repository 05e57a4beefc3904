"""Scratch folders in the system temp folder that a killed process does not leave behind.

Each scratch folder is named ``nnclust-<kind>-<pid>-...`` after the process that made
it. A process killed outright (SIGKILL, a lost machine) cannot remove its own, so the
next one to make a scratch folder removes those of processes that no longer exist.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"^nnclust-[a-z]+-(\d+)-")


def alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True


def remove_dead(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders under `root` (the temp folder) of processes that are gone."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not alive(int(m.group(1))) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def make(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary directory ``nnclust-<kind>-<pid>-...`` (removed on cleanup), after
    clearing away those of dead processes."""
    remove_dead()
    return tempfile.TemporaryDirectory(prefix=f"nnclust-{kind}-{os.getpid()}-")
