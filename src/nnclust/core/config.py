"""Validation of nested config dicts, where values enter the library."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping


def plain(value):
    """A deep copy made only of dict, list, str, int, float, bool and None.

    Sacred hands config values over as read-only subclasses of dict and list; these
    must not leak into checkpoints (which load with ``weights_only=True``) or results.
    """
    return json.loads(json.dumps(value))


def check_keys(section: str, given: Mapping, allowed: Iterable[str]) -> None:
    """Raise a ValueError naming any key of `given` that is not in `allowed`.

    Sacred already rejects unknown top-level keys; nested dicts are checked here so
    that a typo such as ``pruning.final_sparsty`` is an error, not a silent default.
    """
    allowed = sorted(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in config section '{section}'; valid keys are {allowed}")
