"""Self-describing checkpoints, written atomically and read without running code.

Ours hold ``{"format": "nnclust", "version": 1, "architecture": {...},
"state_dict": {...}, "masks": {...}}``. A plain state dict (as written by
nn-clustering-pytorch) also loads; it then has no architecture, which is enough
for every graph analysis.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

FORMAT = "nnclust"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not a checkpoint."""


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    architecture: dict | None = None  # {"model": {...}, "input_shape": [...], "num_classes": int}
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    def build_model(self) -> nn.Module:
        """The module, with weights loaded (needs an architecture)."""
        from nnclust.nets.registry import build_model

        if self.architecture is None:
            raise CheckpointError(
                "this checkpoint is a plain state dict without an architecture; it can be "
                "clustered, but rebuilding the module needs an nnclust checkpoint"
            )
        arch = self.architecture
        model = build_model(arch["model"], arch["input_shape"], arch["num_classes"])
        model.load_state_dict(self.state_dict)
        return model


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    architecture: Mapping | None,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write `model` atomically: a temporary file in the same folder, then a rename,
    so a crash never leaves a half-written checkpoint under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": None if architecture is None else dict(architecture),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "masks": {k: v.detach().cpu().clone() for k, v in (masks or {}).items()},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    first = (str(exc).splitlines() or [""])[0][:200]
    return CheckpointError(
        f"could not read checkpoint '{path}' ({type(exc).__name__}: {first}). "
        "The file is truncated, corrupt, or not a torch checkpoint; re-run the training "
        "that produced it or point model= at another file."
    )


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint with ``weights_only=True``: a file from a stranger cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise _unreadable(path, exc) from exc
        raise CheckpointError(
            f"refusing to load '{path}': it holds Python objects other than tensors and plain "
            "containers, and unpickling them could run code. Re-save it as a state dict "
            "(torch.save(model.state_dict(), path))."
        ) from exc
    except Exception as exc:  # torch raises several types for a damaged file
        raise _unreadable(path, exc) from exc
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        if obj.get("version") != VERSION:
            raise CheckpointError(f"checkpoint '{path}' has version {obj.get('version')}; expected {VERSION}")
        return Checkpoint(dict(obj["state_dict"]), obj.get("architecture"), dict(obj.get("masks") or {}))
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Checkpoint(dict(obj))
    raise CheckpointError(
        f"'{path}' is neither an nnclust checkpoint nor a state dict of tensors (it holds a {type(obj).__name__})"
    )
