"""Workers of a parallel map exit when the process that started it is killed outright."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SRC = Path(__file__).resolve().parents[2] / "src"
# A task that says which worker runs it, then outlasts any test.
TASKS = (
    "import os, time\n"
    "def work(folder):\n"
    "    open(os.path.join(folder, f'running-{os.getpid()}'), 'w').close()\n"
    "    time.sleep(600)\n"
)
MAP = (
    "import sys, tasks\n"
    "from nnclust.exec.parallel import map_tasks\n"
    "map_tasks(tasks.work, [sys.argv[1]] * 4, n_jobs=2, progress=False)\n"
)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    (tmp_path / "tasks.py").write_text(TASKS)
    running = tmp_path / "running"
    running.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-c", MAP, str(running)], env=env, cwd=tmp_path)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(list(running.iterdir())) < 2:  # both workers are inside a task
            assert proc.poll() is None and time.monotonic() < deadline, "the tasks did not start"
            time.sleep(0.1)
        workers = [psutil.Process(int(p.name.split("-")[1])) for p in running.iterdir()]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Without a watch on their parent, the workers would sleep on for 600 s.
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, f"{len(alive)} worker(s) outlived their parent"
    finally:
        proc.kill()
        for p in workers:  # whatever a failing run of this test left behind
            if p.is_running():
                p.kill()
