"""Objects named by where they are defined, imported the first time they are used.

Printing a script's config or its ``--help`` must not import torch (about a second and
a half): the registries and defaults that the config checks read live in modules that
import nothing heavy, and refer to their torch implementations by name.

`Lazy` is one such reference, ``Lazy("nnclust.nets.builders:build_network")``: a
`Registry` entry that is a `Lazy` is imported when it is first looked up, and a `Lazy`
inside an entry (a loader in a dataset spec) when it is first called. `lazy_exports`
does the same for the names that a package re-exports from its heavy modules.

A target is ``"package.module:attribute"``; tests/test_layout.py reads these strings
as imports, so a reference obeys the same layering as an import statement.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable


def _split(target: str) -> tuple[str, str]:
    module, sep, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not sep or not module or not attr:
        raise ValueError(f"a lazy target reads 'package.module:attribute', got {target!r}")
    return module, attr


def _load(module: str, attr: str):
    obj = importlib.import_module(module)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"'{module}:{attr}': {module} has no attribute {attr!r}") from None
    return obj


class Lazy:
    """The object at `target` (``"package.module:attribute"``), imported on first use.

    `resolve()` imports and returns it (once; later calls return the same object).
    Calling a `Lazy` calls its target, so a `Lazy` can stand wherever a function is
    expected without importing the function's module until it runs.

    >>> join = Lazy("os.path:join")
    >>> join("a", "b") == "a/b" and join.resolve() is __import__("os").path.join
    True
    """

    __slots__ = ("_obj", "target")

    def __init__(self, target: str):
        _split(target)
        self.target = target

    def resolve(self):
        try:
            return self._obj
        except AttributeError:
            self._obj = _load(*_split(self.target))
            return self._obj

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Lazy) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"

    def __reduce__(self):  # pickled by its target, so that workers import it themselves
        return Lazy, (self.target,)


def lazy_exports(module: str, targets: Iterable[str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for module `module` that import each of `targets`
    (``"package.module:name"``) when ``module.name`` is first read (PEP 562).

    Used as ``__getattr__, __dir__ = lazy_exports(__name__, [...])`` in a package whose
    ``__init__`` re-exports names from modules that import torch; ``from package import
    name`` then imports only what it names.
    """
    where = {}
    for target in targets:
        source, name = _split(target)
        if "." in name:
            raise ValueError(f"export {target!r}: name one attribute of the module")
        where[name] = source

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = _load(where[name], name)
        setattr(sys.modules[module], name, value)  # later reads find it directly
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module])) | set(where))

    return __getattr__, __dir__
