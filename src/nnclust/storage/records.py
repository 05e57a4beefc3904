"""A run folder's JSON records, read defensively and written atomically.

A folder store keeps each run as ``run.json`` (status, result, artifact names),
``config.json``, ``info.json`` and ``metrics.json``. Every reader of ours goes
through `read_record`, which turns anything that is not the expected shape (an empty
file left by a kill, a list, a truncated file, a field of the wrong type) into one
`DamagedRecordError` naming the file and what is wrong, instead of a traceback.
Writers go through `write_json`: a temporary file in the same folder, then a rename,
so a kill leaves either the old record or the new one, never half of one. A kill
between the two leaves a ``.<name>.*.tmp`` file, which `remove_stale_temp` clears.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

RUN = "run.json"
CONFIG = "config.json"
INFO = "info.json"
METRICS = "metrics.json"
TEMP_SUFFIX = ".tmp"

# Fields of run.json that readers use, with the types they must have when present.
_RUN_FIELDS = {"status": str, "artifacts": list, "experiment": dict, "host": dict, "meta": dict, "command": str}


class DamagedRecordError(ValueError):
    """A run record exists but is not what the folder store writes."""


def _damaged(path: Path, what: str) -> DamagedRecordError:
    return DamagedRecordError(
        f"run record '{path}' is damaged ({what}); the run was probably killed while writing it. "
        "Restore it from a copy (mongo_import, a backup) or move the run folder aside"
    )


def read_json(path: str | os.PathLike, default=None):
    """The JSON object (a dict) in `path`; `default` when the file does not exist
    (a DamagedRecordError when `default` is None); a DamagedRecordError when the file
    cannot be read, is not JSON, or holds something other than an object."""
    path = Path(path)
    if not path.is_file():
        if default is not None:
            return default
        raise DamagedRecordError(f"run record '{path}' does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"unreadable: {type(exc).__name__}") from None
    if not text.strip():
        raise _damaged(path, "empty file")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _damaged(path, f"not JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(value, dict):
        raise _damaged(path, f"a JSON {type(value).__name__}, not an object")
    return value


def read_run(folder: str | os.PathLike) -> dict:
    """``run.json`` of a run folder, with the fields readers use type-checked."""
    path = Path(folder) / RUN
    run = read_json(path)
    for key, kind in _RUN_FIELDS.items():
        if key in run and run[key] is not None and not isinstance(run[key], kind):
            raise _damaged(path, f"field '{key}' is a {type(run[key]).__name__}, not a {kind.__name__}")
    if not all(isinstance(a, str) for a in run.get("artifacts") or []):
        raise _damaged(path, "field 'artifacts' holds something other than file names")
    return run


def read_config(folder: str | os.PathLike, required: bool = True) -> dict:
    """``config.json`` of a run folder (``{}`` when absent and not `required`)."""
    return read_json(Path(folder) / CONFIG, None if required else {})


def read_info(folder: str | os.PathLike) -> dict:
    """``info.json`` of a run folder, ``{}`` when the run recorded no info."""
    return read_json(Path(folder) / INFO, {})


def read_metrics(folder: str | os.PathLike) -> dict[str, dict]:
    """``metrics.json`` of a run folder: ``{name: {"values": [...], "steps": [...], ...}}``."""
    path = Path(folder) / METRICS
    metrics = read_json(path, {})
    for name, series in metrics.items():
        if not isinstance(series, Mapping) or not all(isinstance(series.get(k, []), list) for k in ("values", "steps")):
            raise _damaged(path, f"metric '{name}' is not a series of values and steps")
    return metrics


def status(folder: str | os.PathLike) -> str | None:
    """The status in a run folder's ``run.json`` (None when it records none)."""
    return read_run(folder).get("status")


def write_json(path: str | os.PathLike, obj, **dump_options) -> Path:
    """Write `obj` as JSON to `path` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    text = json.dumps(obj, **dump_options)
    return write_bytes(path, text.encode())


def write_atomically(path: str | os.PathLike, write: Callable) -> Path:
    """Create `path` through ``write(f)`` on a binary temporary file beside it, fsync it
    and rename it over `path`: a reader sees the old file or the whole new one, and a
    failure leaves no temporary file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (`write_atomically`)."""
    return write_atomically(path, lambda f: f.write(data))


def temp_files(folder: str | os.PathLike) -> list[Path]:
    """The temporary files of interrupted atomic writes in a run folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))


def remove_stale_temp(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed run left in its folder; returns them.

    Only for a run that no longer writes (finished, or dead): a live run's write in
    progress looks the same."""
    removed = []
    for p in temp_files(folder):
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    return removed
