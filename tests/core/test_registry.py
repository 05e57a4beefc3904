import dataclasses
import functools
import importlib
import pickle
import pkgutil
import sys

import pytest

import nnclust
from nnclust.clustering.shuffles import SHUFFLES
from nnclust.core.lazy import Lazy, lazy_exports
from nnclust.core.registry import Registry, UnknownNameError
from nnclust.data import DATASETS
from nnclust.nets.init import BIAS_INITS, INITS
from nnclust.nets.registry import MODELS
from nnclust.pruning import CRITERIA, SCHEDULES, SCOPES
from nnclust.pruning.imp import REWINDS
from nnclust.regularizers import REGULARIZERS
from nnclust.structure.graph import CNN_NODE_SETS
from nnclust.training import OBJECTIVES, OPTIMIZERS

ALL = {
    "dataset": DATASETS,
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "shuffle method": SHUFFLES,
    "pruning schedule": SCHEDULES,
    "pruning scope": SCOPES,
    "pruning criterion": CRITERIA,
    "CNN node set (cnn_nodes)": CNN_NODE_SETS,
    "regularizer": REGULARIZERS,
    "objective": OBJECTIVES,
    "init": INITS,
    "bias init": BIAS_INITS,
    "rewind": REWINDS,
}


def test_register_look_up_and_list():
    reg = Registry("colour", {"red": 1})
    reg.add("blue", 2)

    @reg.register("green")
    def green():
        return 3

    assert reg["red"] == 1 and reg.get("blue") == 2 and reg["green"] is green
    assert reg.names() == ["blue", "green", "red"] == sorted(reg)
    assert "red" in reg and "pink" not in reg and len(reg) == 3
    assert dict(reg.items()) == {"red": 1, "blue": 2, "green": green}


def test_unknown_name_lists_the_valid_ones():
    reg = Registry("colour", {"red": 1, "blue": 2})
    with pytest.raises(ValueError, match=r"^unknown colour 'pink'; valid names are \['blue', 'red'\]$"):
        reg["pink"]
    with pytest.raises(KeyError):  # also a KeyError, for mapping-style callers
        reg["pink"]
    with pytest.raises(UnknownNameError, match="None"):
        reg[None]
    with pytest.raises(UnknownNameError):
        reg[["not", "hashable"]]


def test_names_are_registered_once():
    reg = Registry("colour", {"red": 1})
    with pytest.raises(ValueError, match="already registered"):
        reg.add("red", 2)
    with pytest.raises(ValueError, match="non-empty strings"):
        reg.add("", 2)


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_project_registry_is_a_registry_and_rejects_unknown_names(kind):
    reg = ALL[kind]
    assert isinstance(reg, Registry) and reg.kind == kind and len(reg) >= 1
    with pytest.raises(ValueError, match=rf"unknown {kind.split(' (')[0]}.*'no-such-name'.*{reg.names()[0]}"):
        reg["no-such-name"]


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module `lazy_probe` on the path, not yet imported."""
    (tmp_path / "lazy_probe.py").write_text("VALUE = object()\n\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    yield "lazy_probe"
    sys.modules.pop("lazy_probe", None)


def test_lazy_entries_are_imported_when_first_looked_up(probe_module):
    reg = Registry("thing", {"value": Lazy("lazy_probe:VALUE"), "plain": 1})
    reg.add("double", Lazy("lazy_probe:double"))
    assert reg.names() == ["double", "plain", "value"] and "value" in reg and len(reg) == 3
    assert reg["plain"] == 1 and "lazy_probe" not in sys.modules
    value = reg["value"]
    assert value is sys.modules["lazy_probe"].VALUE and reg["value"] is value
    assert reg["double"](4) == 8
    with pytest.raises(ValueError, match=r"unknown thing 'other'; valid names are \['double', 'plain', 'value'\]"):
        reg["other"]


def test_a_lazy_reference_calls_its_target_and_pickles_by_name(probe_module):
    double = Lazy("lazy_probe:double")
    assert "lazy_probe" not in sys.modules and repr(double) == "Lazy('lazy_probe:double')"
    assert double(21) == 42 and double.resolve() is sys.modules["lazy_probe"].double
    copy = pickle.loads(pickle.dumps(functools.partial(double, 5)))
    assert copy() == 10 and copy.func == double


@pytest.mark.parametrize("target", ["lazy_probe", "lazy_probe:", ":VALUE", None])
def test_a_lazy_target_names_module_and_attribute(target):
    with pytest.raises(ValueError, match="package.module:attribute"):
        Lazy(target)


def test_a_lazy_target_that_is_not_there_fails_when_used_naming_it(probe_module):
    missing = Lazy("lazy_probe:NOT_THERE")  # written without importing anything
    with pytest.raises(ImportError, match="'lazy_probe:NOT_THERE'"):
        missing.resolve()
    with pytest.raises(ImportError):
        Registry("thing", {"gone": Lazy("no_such_module_here:x")})["gone"]


def test_lazy_exports_import_a_name_when_it_is_first_read(probe_module):
    package = type(sys)("lazy_package")
    package.__getattr__, package.__dir__ = lazy_exports("lazy_package", ["lazy_probe:double"])
    sys.modules["lazy_package"] = package
    try:
        assert "double" in dir(package) and "lazy_probe" not in sys.modules
        from lazy_package import double  # noqa: PLC0415

        assert double is sys.modules["lazy_probe"].double and vars(package)["double"] is double
        with pytest.raises(AttributeError, match="'lazy_package' has no attribute 'triple'"):
            package.triple  # noqa: B018
    finally:
        del sys.modules["lazy_package"]


def _lazy_parts(entry):
    """The `Lazy` references inside a registry entry (a spec record, a tuple, a partial)."""
    if isinstance(entry, Lazy):
        return [entry]
    if isinstance(entry, functools.partial):
        return _lazy_parts(entry.func)
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        entry = [getattr(entry, f.name) for f in dataclasses.fields(entry)]
    if isinstance(entry, (tuple, list)):
        return [part for item in entry for part in _lazy_parts(item)]
    return []


def _project_registries() -> dict[str, Registry]:
    """Every registry of the package (every module imported), by kind."""
    found = {}
    for info in pkgutil.walk_packages(nnclust.__path__, prefix="nnclust."):
        module = importlib.import_module(info.name)
        found.update({id(v): v for v in vars(module).values() if isinstance(v, Registry)})
    by_kind = {reg.kind: reg for reg in found.values()}
    assert len(by_kind) == len(found), "two registries share a kind, so their errors read alike"
    return by_kind


def test_the_project_registries_include_the_listed_ones():
    found = _project_registries()
    assert all(found[kind] is reg for kind, reg in ALL.items()) and len(found) > len(ALL)


@pytest.mark.parametrize("kind", sorted(_project_registries()))
def test_every_lazy_target_of_a_project_registry_is_there(kind):
    reg = _project_registries()[kind]
    for name in reg.names():
        for ref in _lazy_parts(reg[name]):  # looking the entry up resolves it if it is lazy itself
            assert callable(ref.resolve()), (name, ref)
