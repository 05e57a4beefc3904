"""Scratch files for run artifacts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nnclust.core import scratch as scratch_dirs

_SCRATCH: tempfile.TemporaryDirectory | None = None


def scratch(prefix: str) -> Path:
    """A fresh folder for artifact files, removed when the process exits.

    Artifacts outlive the experiment body on purpose: a queued observer may copy them
    only after the run has returned.
    """
    global _SCRATCH
    if _SCRATCH is None or not Path(_SCRATCH.name).is_dir():
        _SCRATCH = scratch_dirs.make("run")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH.name))


def add_artifact(run, folder: Path, name: str, fig=None) -> Path:
    """Store `folder/name` as the run's artifact `name`, saving `fig` there first if given."""
    path = folder / name
    if fig is not None:
        from nnclust.viz.figures import save  # matplotlib only where figures are made

        save(fig, path)
    run.add_artifact(str(path), name, content_type=content_type(name))
    return path


def content_type(name: str) -> str:
    """The MIME type an artifact is stored under: a known one (image/png, text/csv), else
    application/octet-stream (checkpoints, npz), so a MongoDB store need not guess."""
    import mimetypes

    if name.endswith((".pt", ".npz")):  # mimetypes knows .pt as a SNES page table
        return "application/octet-stream"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def run_folder(run) -> Path | None:
    """The folder of `run` in the folder store, if it has one (else None)."""
    for obs in getattr(run, "observers", ()):
        folder = getattr(obs, "dir", None)
        if folder:
            return Path(folder)
    folder = getattr(run, "folder", None)  # stand-ins for Sacred's run in tests
    return None if folder is None else Path(folder)
