"""Self-describing checkpoints, written atomically and read without running code.

Ours hold ``{"format": "nnclust", "version": 2, "architecture": {...},
"state_dict": {...}, "masks": {...}, "extra": {...}, "sha256": "..."}``. The hash
covers everything else in the file (names, dtypes, shapes and bytes of every tensor,
and the architecture), and is checked on every load: a flipped byte in a tensor or in
the pickled structure is reported, not loaded. Version 1 files (no hash) still load. A
plain state dict (as written by nn-clustering-pytorch) also loads, unchecked; it then
has no architecture, which is enough for every graph analysis.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

FORMAT = "nnclust"
VERSION = 2
READABLE_VERSIONS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not a checkpoint."""


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    architecture: dict | None = None  # {"model": {...}, "input_shape": [...], "num_classes": int}
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    # Plain data or tensors saved beside the model (training state for resuming).
    extra: dict = field(default_factory=dict)

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
        # sparse (CSR) weights, as a compacted checkpoint stores them, load as dense ones
        model.load_state_dict({k: v.to_dense() if v.layout != torch.strided else v for k, v in self.state_dict.items()})
        return model


def _digest_update(h, value) -> None:
    """Feed a value made of dicts, lists, tensors and JSON scalars into `h`, canonically."""
    if isinstance(value, torch.Tensor) and value.layout == torch.sparse_csr:  # compacted sparse checkpoints
        h.update(f"CSR{tuple(value.shape)}".encode())
        _digest_update(h, [value.crow_indices(), value.col_indices(), value.values()])
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, Mapping):
        h.update(b"{")
        for key in sorted(value, key=str):
            h.update(json.dumps(str(key)).encode() + b":")
            _digest_update(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for item in value:
            _digest_update(h, item)
        h.update(b"]")
    else:
        h.update(json.dumps(value, sort_keys=True).encode())


def content_hash(payload: Mapping) -> str:
    """sha256 of everything in a checkpoint payload except its own ``sha256`` entry."""
    h = hashlib.sha256()
    _digest_update(h, {k: v for k, v in payload.items() if k != "sha256"})
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    architecture: Mapping | None,
    masks: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping | None = None,
) -> Path:
    """Write `model` atomically: a temporary file in the same folder, then a rename,
    so a crash never leaves a half-written checkpoint under the final name.

    `extra` holds plain data and tensors to keep beside the model (optimiser state, RNG
    states, ...); it is covered by the content hash like the rest.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": None if architecture is None else dict(architecture),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "masks": {k: v.detach().cpu().clone() for k, v in (masks or {}).items()},
        "extra": dict(extra or {}),
    }
    payload["sha256"] = content_hash(payload)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        interrupt = _interrupt_in(exc)
        if interrupt is not None and interrupt is not exc:
            # An interrupt (Ctrl-C, SIGTERM) in the middle of torch.save makes its zip
            # writer fail on closing, and that error would hide the interrupt: a stopped
            # run would be recorded as FAILED instead of INTERRUPTED.
            raise interrupt from None
        raise
    return path


def _interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that `exc` is, or was raised while handling, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


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
        if "Unsupported global" not in str(exc):  # not a pickle of ours at all, or damaged
            raise _unreadable(path, exc) from exc
        raise CheckpointError(
            f"refusing to load '{path}': it holds Python objects other than tensors and plain "
            "containers, and unpickling them could run code. Re-save it as a state dict "
            "(torch.save(model.state_dict(), path))."
        ) from exc
    except Exception as exc:  # torch raises several types for a damaged file
        raise _unreadable(path, exc) from exc
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        version = obj.get("version")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"checkpoint '{path}' has version {version!r}; this nnclust reads versions {list(READABLE_VERSIONS)}"
            )
        if version >= 2 and obj.get("sha256") != _safe_hash(obj):
            raise CheckpointError(
                f"checkpoint '{path}' is corrupt: its contents do not match the sha256 stored in it. "
                "Re-run the training that produced it, or restore the file from a copy."
            )
        try:
            ckpt = Checkpoint(
                dict(obj["state_dict"]),
                obj.get("architecture"),
                dict(obj.get("masks") or {}),
                dict(obj.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _unreadable(path, exc) from exc
        check_finite(ckpt.state_dict, path)
        return ckpt
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        check_finite(obj, path)
        return Checkpoint(dict(obj))
    raise CheckpointError(
        f"'{path}' is neither an nnclust checkpoint nor a state dict of tensors (it holds a {type(obj).__name__})"
    )


def _safe_hash(obj: Mapping) -> str | None:
    try:
        return content_hash(obj)
    except (TypeError, ValueError, RuntimeError):  # a damaged structure that cannot be hashed
        return None


def check_finite(state: Mapping[str, torch.Tensor], path) -> None:
    """Raise a CheckpointError naming the first tensor holding NaN or infinite values."""
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.layout == torch.sparse_csr:
            t = t.values()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"checkpoint '{path}': tensor '{name}' holds {bad} NaN or infinite value(s) "
                f"of {t.numel()}; the training diverged (lower the learning rate) or the file is damaged"
            )
