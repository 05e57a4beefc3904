"""Declarative config constraints, checked where config enters, before any work starts.

A small vocabulary in the style of scikit-learn's ``_parameter_constraints``: each
experiment declares, per dotted config key, what a valid value is (`Interval`,
`Options`, `Boolean`, `Check`), plus `Relation` s between keys, and `validate` checks
them all at once. The errors name the key, the value and what was expected, one line
each, so a user fixes every mistake in one go.

Written here rather than taken from a typed-model library such as pydantic: Sacred
owns the config (its scopes, named configs and command line), and what is needed on top
is only "is this value allowed", with messages in Sacred's dotted key syntax; a model
class per experiment would duplicate every key that Sacred already declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


class ConfigError(ValueError):
    """One or more config values break their constraints; the message lists each."""


class Constraint:
    description = "a valid value"

    def ok(self, value) -> bool:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in [low, high] (either bound may be None, i.e. unbounded); `closed` is
    ``"both"``, ``"left"``, ``"right"`` or ``"neither"``; ``integer=True`` also asks
    for an int."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    integer: bool = False

    def ok(self, value) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if self.integer and not isinstance(value, (int, np.integer)):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    @property
    def description(self) -> str:
        kind = "an int" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            lb = "[" if self.closed in ("both", "left") else "("
            rb = "]" if self.closed in ("both", "right") else ")"
            return f"{kind} in {lb}{self.low}, {self.high}{rb}"
        if self.low is not None:
            return f"{kind} {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        if self.high is not None:
            return f"{kind} {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        return kind


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values, or of a `Registry`'s names (read when checked, so
    entries registered later count)."""

    choices: Iterable

    def _names(self) -> list:
        names = getattr(self.choices, "names", None)
        return names() if callable(names) else list(self.choices)

    def ok(self, value) -> bool:
        try:
            return value in self._names()
        except TypeError:
            return False

    @property
    def description(self) -> str:
        return f"one of {self._names()}"


class Boolean(Constraint):
    description = "true or false"

    def ok(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Check(Constraint):
    """Any predicate, with the description of what it accepts."""

    predicate: Callable[[object], bool]
    description: str = "a valid value"

    def ok(self, value) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:
            return False


class Device(Constraint):
    """``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` naming a device this machine has. torch is
    imported only for a CUDA name, so a CPU config is checked without it."""

    description = "'cpu', or 'cuda' / 'cuda:N' on a machine with that GPU"

    def problem(self, value) -> str | None:
        """Why `value` names no usable device (None when it does)."""
        if value == "cpu":
            return None
        if not isinstance(value, str) or not (value == "cuda" or value.startswith("cuda:")):
            return f"expected {self.description}"
        index = value.partition(":")[2]
        if index and not index.isdigit():
            return f"expected {self.description}"
        import torch

        if not torch.cuda.is_available():
            return f"this torch build ({torch.__version__}) sees no CUDA device; use device=cpu"
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"this machine has {count} CUDA device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})"
        return None

    def ok(self, value) -> bool:
        return self.problem(value) is None


@dataclass(frozen=True)
class Relation:
    """A condition on several keys: ``holds(*values)`` is False when broken; `message`
    says what must hold and how to fix it: a string with ``{key}`` fields (dots as
    underscores) filled with the values, or a function of the values."""

    keys: Sequence[str]
    holds: Callable[..., bool]
    message: str | Callable[..., str]


_MISSING = object()
_ABSENT = object()


def get_path(config: Mapping, key: str, default=_MISSING):
    """``config["a"]["b"]`` for ``key="a.b"``; `default` (or KeyError) when absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def unset_required(config: Mapping, constraints: Mapping[str, Constraint | Sequence[Constraint]]) -> dict[str, str]:
    """The keys left unset (None, empty) whose constraint demands a value, with what it
    expects: the keys a user must give before a run (``print_config`` shows them)."""
    out = {}
    for key, cons in constraints.items():
        value = get_path(config, key, _ABSENT)
        if value is _ABSENT or not (value is None or (isinstance(value, (list, tuple, str, dict)) and not value)):
            continue
        options = list(cons) if isinstance(cons, Sequence) else [cons]
        if not any(c.ok(value) for c in options):
            out[key] = " or ".join(c.description for c in options)
    return out


def validate(
    config: Mapping,
    constraints: Mapping[str, Constraint | Sequence[Constraint]],
    relations: Sequence[Relation] = (),
    sections: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Check `config` and raise one `ConfigError` listing every violation.

    `constraints` maps dotted keys to a constraint, or a list of which any one will do
    (e.g. ``[Options([None]), Interval(...)]``); keys absent from `config` are skipped.
    `sections` maps a nested section (``"pruning"``) to its allowed keys, so a typo in a
    nested key is an error rather than a silent default. Relations are checked only
    when every single-key constraint holds, so their messages can trust the values.
    """
    errors = []
    for section, allowed in (sections or {}).items():
        given = get_path(config, section, None)
        if isinstance(given, Mapping):
            allowed = sorted(allowed)
            for key in sorted(set(given) - set(allowed)):
                errors.append(f"unknown key '{section}.{key}'; valid keys of '{section}' are {allowed}")
    for key, cons in constraints.items():
        value = get_path(config, key, _ABSENT)
        if value is _ABSENT:
            continue
        options = list(cons) if isinstance(cons, Sequence) else [cons]
        if not any(c.ok(value) for c in options):
            expected = " or ".join(c.description for c in options)
            reasons = [c.problem(value) for c in options if hasattr(c, "problem")]
            errors.append(f"{key}={value!r} is not allowed: " + (reasons[0] if reasons else f"expected {expected}"))
    if not errors:
        for rel in relations:
            values = [get_path(config, k, None) for k in rel.keys]
            if not rel.holds(*values):
                if callable(rel.message):
                    errors.append(rel.message(*values))
                else:
                    fields = {k.replace(".", "_"): v for k, v in zip(rel.keys, values)}
                    errors.append(rel.message.format(**fields))
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ConfigError(f"invalid config ({len(errors)} problem{'s' if len(errors) > 1 else ''}):\n{lines}")
