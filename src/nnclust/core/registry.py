"""One registry type for every extensible concept: datasets, models, optimizers,
shuffles, pruning schedules and scopes, CNN node sets, regularizers, and those to come.

A registry maps the exact string used in config to an entry (a function, a class, a
spec record). Looking up an unknown name raises a ValueError that lists the valid
names; tests parametrize over ``registry.names()``.

An entry may be a `Lazy` reference, ``Lazy("nnclust.pruning.magnitude:global_scope")``:
it is imported when the name is first looked up. Registries whose entries need torch
are written this way in modules that import nothing heavy, so that the names (and the
option defaults of spec records) are known to config checks without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from nnclust.core.lazy import Lazy

__all__ = ["Lazy", "Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(ValueError, KeyError):
    """A name that a registry does not hold. A ValueError for callers, and a KeyError so
    that mapping-style code (``name in registry``, ``dict.get``) behaves as usual."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` appears in error messages, e.g. "dataset").

    >>> SHUFFLES = Registry("shuffle method")
    >>> @SHUFFLES.register("all")
    ... def shuffle_all(w, rng): ...
    >>> SHUFFLES["all"] is shuffle_all
    True
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; a name can be registered once."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda entry: self.add(name, entry)

    def __getitem__(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names are {self.names()}") from None
        if isinstance(entry, Lazy):
            entry = self._entries[name] = entry.resolve()
        return entry

    get = __getitem__

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs in registration order; lazy entries are imported."""
        return [(name, self[name]) for name in self._entries]

    def keys(self):
        return self._entries.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
