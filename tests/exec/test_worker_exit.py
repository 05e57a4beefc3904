"""Workers of a parallel map exit when the process that started it is killed outright."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SRC = Path(__file__).resolve().parents[2] / "src"
MAP = (
    "import time\n"
    "from nnclust.exec.parallel import map_tasks\n"
    "map_tasks(time.sleep, [600] * 4, n_jobs=2, progress=False)\n"
)


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The parent's child processes that run tasks (joblib's loky workers)."""
    return [p for p in parent.children(recursive=True) if "loky" in " ".join(p.cmdline())]


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", MAP], env={**os.environ, "PYTHONPATH": str(SRC)}, cwd=tmp_path)
    parent, workers = psutil.Process(proc.pid), []
    try:
        deadline = time.monotonic() + 120
        while len(workers := _workers(parent)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.1)
        time.sleep(1.0)  # the tasks are running (each sleeps 600 s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Without a watch on their parent, loky's workers would keep sleeping for 600 s.
        gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, f"{len(alive)} worker(s) outlived their parent"
    finally:
        proc.kill()
        for p in workers:  # whatever a failing run of this test left behind
            if p.is_running():
                p.kill()
