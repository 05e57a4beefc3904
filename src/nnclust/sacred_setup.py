"""What every experiment script shares: named configs from `configs/`, the default
folder observer, and output capture that keeps progress bars readable."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

# sacred 0.8.7 imports pkg_resources at import time; the deprecation notice is noise.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from sacred import SETTINGS, Experiment  # noqa: E402
from sacred.observers import FileStorageObserver  # noqa: E402
from sacred.utils import apply_backspaces_and_linefeeds  # noqa: E402

from nnclust import runs  # noqa: E402

# "sys" capture instead of the default file-descriptor capture: joblib worker processes
# inherit the descriptors and would keep Sacred's tee process waiting at run end.
SETTINGS.CAPTURE_MODE = "sys"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"
_OBSERVER_FLAGS = ("-F", "--file_storage")


class _Shorten(logging.Filter):
    """Cut long log lines: Sacred logs the whole result, labels of every node included."""

    limit = 400

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if len(msg) > self.limit:
            record.msg, record.args = msg[: self.limit] + f" … ({len(msg)} characters; full result in run.json)", ()
        return True


def make_experiment(name: str) -> Experiment:
    """A Sacred experiment whose named configs are the `configs/<name>.yaml` files.

    Each file is usable as ``with <stem>`` (e.g. ``with mlp_config``) or by path.
    Keys of a file that the experiment does not use are rejected by Sacred.
    """
    ex = Experiment(name, save_git_info=False)
    logger = logging.getLogger(name)
    logger.addFilter(_Shorten())
    ex.logger = logger
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    prefix = f"{name}."
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        # configs/<experiment>.<name>.yaml belongs to one experiment; plain <name>.yaml to train_model.
        stem = path.stem
        if stem.startswith(prefix):
            ex.add_named_config(stem[len(prefix) :], str(path))
        elif "." not in stem and name == "train_model":
            ex.add_named_config(stem, str(path))
    return ex


def run_commandline(ex: Experiment) -> None:
    """Run from the command line, storing into the experiment's default run folder
    unless ``-F <dir>`` names another one."""
    if not any(a in _OBSERVER_FLAGS or a.startswith("--file_storage=") for a in sys.argv[1:]):
        ex.observers.append(FileStorageObserver(str(runs.run_dir(ex.path))))
    ex.run_commandline()
