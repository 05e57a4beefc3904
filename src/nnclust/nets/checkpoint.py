"""Self-describing checkpoints, written atomically and read without running code.

Ours hold ``{"format": "nnclust", "version": 2, "architecture": {...},
"state_dict": {...}, "masks": {...}, "extra": {...}, "sha256": "..."}``. The hash
covers everything else in the file (names, dtypes, shapes and bytes of every tensor,
and the architecture), and is checked on every load: a flipped byte in a tensor or in
the pickled structure is reported, not loaded; so is a version 2 file without its hash
or one whose version was set back to 1 (version 1 files never had a hash). Version 1
files and plain state dicts (as written by nn-clustering-pytorch) load with an
`UncheckedCheckpointWarning`; a state dict has no architecture, which is enough for
every graph analysis.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

FORMAT = "nnclust"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HASHED_SINCE = 2  # versions from this one on always carry a sha256


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


def _reason(exc: Exception) -> str:
    """The first line of an error, or for torch's weights-only refusal only its reason:
    torch's message advises retrying with weights_only=False, which is exactly what must
    not be done with a file from a stranger."""
    text = str(exc)
    if "Weights only load failed" in text:
        reason = re.search(r"(Unsupported [^\n]*|[Tt]rying to load unsupported [^\n]*)", text)
        return reason.group(1).strip()[:160] if reason else "not made of tensors and plain containers"
    return (text.splitlines() or [""])[0][:200]


# What a checkpoint of tensors and plain containers imports; a pickle importing anything
# else, or building objects (OBJ, NEWOBJ, INST), was made to run code.
_SAFE_MODULES = ("torch", "collections", "_codecs")
_BUILD_OPCODES = {"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}


def _all_pickles(pickletools, data: bytes):
    """The opcodes of the pickles one after another in `data` (torch's legacy format
    writes several)."""
    import io

    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        yield from pickletools.genops(stream)


def _builds_objects(path: Path) -> bool:
    """Whether the pickle in `path` (a torch zip or a bare pickle) imports modules other
    than torch's or builds objects, as far as it can be read."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                streams = [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
        else:
            streams = [path.read_bytes()]
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False
    for data in streams:
        strings, modules, ops = [], [], set()
        try:
            for op, arg, _ in _all_pickles(pickletools, data):
                ops.add(op.name)
                if op.name == "GLOBAL":
                    modules.append(str(arg).split(" ")[0])
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    modules.append(strings[-2])  # module and name are the two strings pushed before it
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:  # damaged further on: judge what could be read
            pass
        if ops & _BUILD_OPCODES or any(m.split(".")[0] not in _SAFE_MODULES for m in modules):
            return True
    return False


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    first = _reason(exc)
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
        if re.search(r"[Uu]nsupported (global|GLOBAL|class)", str(exc)) or _builds_objects(path):
            raise _refused(path, exc) from None
        raise _unreadable(path, exc) from None  # not a pickle of ours at all, or damaged
    except Exception as exc:  # torch raises several types for a damaged file
        raise _unreadable(path, exc) from exc
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        _check_integrity(obj, path)
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
        _note_unchecked(path, "a plain state dict")
        return Checkpoint(dict(obj))
    raise CheckpointError(
        f"'{path}' is neither an nnclust checkpoint nor a state dict of tensors (it holds a {type(obj).__name__})"
    )


def _check_integrity(obj: Mapping, path: Path) -> None:
    """Refuse an nnclust payload whose hash is missing, wrong, or whose version was
    set back to the unhashed version 1 while it still carries a hash."""
    version = obj.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint '{path}' has version {version!r}; this nnclust reads versions {list(READABLE_VERSIONS)}"
        )
    if version < HASHED_SINCE:
        if "sha256" in obj:
            # Version 1 files were never hashed: a hash in one means its version was edited.
            raise CheckpointError(
                f"checkpoint '{path}' says version {version} but carries a sha256, which only version "
                f"{HASHED_SINCE} and later files have: its version field was changed. Restore the file "
                "from a copy or re-run the training that produced it."
            )
        _note_unchecked(path, f"a version {version} nnclust checkpoint")
        return
    if "sha256" not in obj:
        raise CheckpointError(
            f"checkpoint '{path}' (version {version}) has no sha256, which every version {version} file carries: "
            "it was edited or damaged. Restore it from a copy or re-run the training that produced it."
        )
    if obj.get("sha256") != _safe_hash(obj):
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt: its contents do not match the sha256 stored in it. "
            "Re-run the training that produced it, or restore the file from a copy."
        )


class UncheckedCheckpointWarning(UserWarning):
    """A checkpoint from before content hashes loaded: its integrity could not be checked."""


def _note_unchecked(path: Path, what: str) -> None:
    warnings.warn(
        f"'{path}' is {what}, which carries no content hash: loaded without an integrity check "
        "(re-save it with save_checkpoint to have it checked from now on)",
        UncheckedCheckpointWarning,
        stacklevel=3,
    )


def _refused(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"refusing to load '{path}' for safety: it holds Python objects other than tensors and plain "
        f"containers ({_reason(exc)}), and unpickling them could run code. Only load it if you know where it came "
        "from, and then re-save its state dict (torch.save(model.state_dict(), path))."
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
