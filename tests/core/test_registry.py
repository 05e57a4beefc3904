import pytest

from nnclust.clustering.shuffles import SHUFFLES
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
