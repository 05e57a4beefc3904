import math

import pytest

from nnclust.core.constraints import Boolean, Check, ConfigError, Interval, Options, Relation, get_path, validate
from nnclust.core.registry import Registry


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Interval(0, 1, closed="left"), [0, 0.5, 0.999], [1, 1.5, -0.1, math.nan, math.inf, True, "0.5", None]),
        (Interval(0, 1, closed="right"), [1, 0.5], [0]),
        (Interval(0, 1, closed="neither"), [0.5], [0, 1]),
        (Interval(1, None, integer=True), [1, 7], [0, 1.0, 2.5, False]),
        (Interval(None, 3), [-100, 3], [3.5]),
        (Options(["a", "b"]), ["a", "b"], ["c", None, ["a"]]),
        (Options(Registry("thing", {"x": 1})), ["x"], ["y"]),
        (Boolean(), [True, False], [0, 1, "true", None]),
        (Check(lambda v: v % 2 == 0, "an even int"), [2, 0], [3, "x"]),
    ],
)
def test_constraints_accept_and_reject(constraint, good, bad):
    assert all(constraint.ok(v) for v in good), good
    assert not any(constraint.ok(v) for v in bad), bad


def test_descriptions_say_what_is_expected():
    assert Interval(0, 1, closed="left").description == "a number in [0, 1)"
    assert Interval(1, None, integer=True).description == "an int >= 1"
    assert Interval(0, None, closed="neither").description == "a number > 0"
    assert Options(Registry("thing", {"y": 1, "x": 2})).description == "one of ['x', 'y']"


def test_validate_lists_every_problem_with_key_and_value():
    config = {"epochs": 0, "pruning": {"final_sparsity": 1.5, "scope": "layer", "typo": 1}}
    constraints = {
        "epochs": Interval(1, None, integer=True),
        "pruning.final_sparsity": Interval(0, 1, closed="left"),
        "pruning.scope": Options(["layer", "global"]),
        "absent.key": Boolean(),  # keys not in the config are skipped
    }
    with pytest.raises(ConfigError) as err:
        validate(config, constraints, sections={"pruning": ["final_sparsity", "scope"]})
    msg = str(err.value)
    assert "3 problems" in msg
    assert "unknown key 'pruning.typo'" in msg
    assert "epochs=0 is not allowed: expected an int >= 1" in msg
    assert "pruning.final_sparsity=1.5 is not allowed: expected a number in [0, 1)" in msg


def test_any_of_several_constraints_will_do():
    cons = {"address": [Options([None]), Check(lambda a: a.startswith("tcp://"), "a tcp:// address")]}
    validate({"address": None}, cons)
    validate({"address": "tcp://h:1"}, cons)
    with pytest.raises(ConfigError, match=r"expected one of \[None\] or a tcp:// address"):
        validate({"address": "h:1"}, cons)


def test_relations_are_checked_once_single_keys_hold():
    rel = Relation(["a.n", "b"], lambda n, b: n <= b, "a.n={a_n} must be <= b={b}")
    validate({"a": {"n": 2}, "b": 3}, {}, [rel])
    with pytest.raises(ConfigError, match=r"a.n=4 must be <= b=3"):
        validate({"a": {"n": 4}, "b": 3}, {}, [rel])
    # a broken single-key constraint is reported alone: the relation would only repeat it
    with pytest.raises(ConfigError) as err:
        validate({"a": {"n": "x"}, "b": 3}, {"a.n": Interval(0, None)}, [rel])
    assert "1 problem" in str(err.value) and "<=" not in str(err.value)


def test_get_path():
    assert get_path({"a": {"b": 1}}, "a.b") == 1
    assert get_path({"a": 1}, "a.b", None) is None
    with pytest.raises(KeyError):
        get_path({}, "a")


def test_device_names_the_missing_gpu_in_one_line():
    import torch

    from nnclust.core.constraints import Device

    assert Device().ok("cpu")
    for bad in ("gpu", "cuda:x", 0, None):
        assert Device().problem(bad) == f"expected {Device.description}"
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        assert Device().ok("cuda") and Device().problem("cuda:999").startswith("this machine has")
        return
    with pytest.raises(ConfigError) as err:
        validate({"device": "cuda"}, {"device": Device()})
    assert str(err.value).splitlines()[1] == (
        f"  - device='cuda' is not allowed: this torch build ({torch.__version__}) sees no CUDA device; use device=cpu"
    )


@pytest.mark.parametrize("script", ["train_model", "shuffle_and_cluster", "imp_experiment", "weight_symmetry"])
def test_device_is_checked_before_a_run_exists(script, tmp_path):
    import importlib

    import torch
    from sacred.observers import FileStorageObserver

    from nnclust.exec.grid import run_in_process

    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        pytest.skip("this machine has a GPU")
    ex = importlib.import_module(script).ex
    update = {"device": "cuda", **({"model": "x.pt"} if script == "shuffle_and_cluster" else {})}
    with pytest.raises(ConfigError, match="sees no CUDA device; use device=cpu"):
        run_in_process(ex, [FileStorageObserver(str(tmp_path / "runs"))], update)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
