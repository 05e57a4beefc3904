"""Config input is data: files, command-line values and resumed configs are read as
plain JSON or YAML, never decoded into Python objects.

Sacred restores JSON config files and ``key=value`` command-line values with
jsonpickle, which builds whatever a ``py/reduce`` / ``py/function`` / ``py/object``
tag names (``os.system`` included), and loads ``.pickle`` config files with
`pickle.load`. A config passed between colleagues reads as plain data, so it must
behave as plain data: `install` swaps Sacred's loaders for plain ones, and every
config source is checked for jsonpickle tags, refused with one line naming the file
or key.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping
from pathlib import Path

from nnclust.core.constraints import ConfigError

# jsonpickle's tags all start with "py/"; keys "json://..." are decoded as jsonpickle too
# (Sacred decodes with keys=True).
TAG_PREFIXES = ("py/", "json://")
YAML_SUFFIXES = (".yaml", ".yml")


class UnsafeConfigError(ConfigError):
    """A config source holds something other than plain data."""


def find_tag(value, path: str = "") -> str | None:
    """The dotted path of the first key in `value` (nested dicts and lists) that is a
    jsonpickle tag, or None when `value` is plain data."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key.startswith(TAG_PREFIXES):
                return where
            found = find_tag(item, where)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = find_tag(item, f"{path}[{i}]")
            if found:
                return found
    return None


def check_plain(value, source: str):
    """Return `value` if it holds no jsonpickle tag; else raise one line naming `source`
    (a file or a command-line key) and the tagged key."""
    tag = find_tag(value)
    if tag is not None:
        raise UnsafeConfigError(
            f"{source}: refusing '{tag}': a jsonpickle tag would build Python objects (and can run code); "
            "config values must be plain JSON/YAML data (numbers, strings, lists, dicts)"
        )
    return value


def load_config_file(filename) -> dict:
    """A config file (``.json``, ``.yaml``/``.yml``) as plain data; ``.pickle`` and
    other formats are refused."""
    path = Path(filename)
    suffix = path.suffix.lower()
    if suffix == ".pickle":
        raise UnsafeConfigError(
            f"config file '{path}': pickle config files are refused, since loading one runs code; "
            "write the config as .json or .yaml"
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise FileNotFoundError(f"config file '{path}' cannot be read ({exc.strerror or exc})") from None
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in YAML_SUFFIXES:
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file '{path}' has extension {suffix!r}; use .json or .yaml")
    except ValueError as exc:
        raise ConfigError(f"config file '{path}' is not valid {suffix[1:].upper()}: {_first_line(exc)}") from None
    except Exception as exc:  # yaml's errors, without importing yaml at module level
        raise ConfigError(f"config file '{path}' is not plain YAML data: {_first_line(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' holds a {type(data).__name__}; a config file holds a mapping of keys")
    return check_plain(data, f"config file '{path}'")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def convert_value(value: str):
    """A command-line ``key=VALUE`` as Sacred reads it (a Python literal, else the
    string), without jsonpickle's decoding; a tagged literal is refused."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    return parsed


def check_command_line(argv: list[str]) -> None:
    """Check every ``key=value`` and every config file named after ``with`` in `argv`,
    before Sacred reads any of them."""
    if "with" not in argv:
        return
    for arg in argv[argv.index("with") + 1 :]:
        if arg.startswith("-"):
            continue
        key, sep, value = arg.partition("=")
        if sep:
            check_plain(convert_value(value.strip()), f"command-line value of {key.strip()}")
        elif os.path.splitext(arg)[1].lower() in (".json", ".pickle", *YAML_SUFFIXES) and Path(arg).is_file():
            load_config_file(arg)


def install() -> None:
    """Make Sacred read config files and command-line values as plain data."""
    import sacred.arg_parser
    import sacred.config.config_files as config_files

    def refuse_tags(value: str):
        parsed = convert_value(value)
        check_plain(parsed, f"command-line value {value!r}")
        return parsed

    sacred.arg_parser._convert_value = refuse_tags
    for suffix in (".json", ".pickle", *YAML_SUFFIXES):
        old = config_files.HANDLER_BY_EXT.get(suffix)
        # Writing config files (Sacred's save_config) stays Sacred's own.
        dump, mode = (old.dump, old.mode) if old is not None else (None, "")
        config_files.HANDLER_BY_EXT[suffix] = config_files.Handler(_load_open_file, dump, mode)


def _load_open_file(f) -> dict:
    # Sacred opens the file and passes it; read it again by name as plain data.
    return load_config_file(f.name)
