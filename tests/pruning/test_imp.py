"""The IMP loop with a stand-in for training: targets, masks and every rewind rule."""

from types import SimpleNamespace

import pytest
import torch

from nnclust.nets.registry import build_model
from nnclust.pruning.imp import REWINDS, count_kept, iterative_magnitude_pruning, prunable_parameters, prune_to
from nnclust.pruning.trajectory import trajectory


def _net(seed=0):
    torch.manual_seed(seed)
    return build_model({"name": "mlp", "hidden": [6, 6]}, (4,), 2)


class FakeTraining:
    """Three "steps" that add 0.1 x (step + 1) to every parameter, calling step callbacks;
    records the parameters at the start and end of each level."""

    def __init__(self):
        self.starts, self.ends, self.masks = [], [], []

    def __call__(self, model, masks, level, callbacks):
        self.masks.append({k: v.clone() for k, v in masks.items()})
        self.starts.append({k: v.clone() for k, v in model.state_dict().items()})
        state = SimpleNamespace(model=model, step=0)
        for cb in callbacks:
            if hasattr(cb, "on_train_start"):
                cb.on_train_start(state)
        for s in range(3):
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.add_(0.1 * (s + 1))
                    if name in masks:
                        p.mul_(masks[name])
            state.step = s + 1
            for cb in callbacks:
                cb.on_step_end(state)
        self.ends.append({k: v.clone() for k, v in model.state_dict().items()})


@pytest.mark.parametrize("rewind", REWINDS.names())
def test_every_rewind_rule_and_the_trajectory(rewind):
    net = _net()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    p0 = sum(p.numel() for p in prunable_parameters(net).values())
    assert p0 == 4 * 6 + 6 + 6 * 6 + 6 + 6 * 2 + 2
    targets = trajectory(p0, 10, 3)
    fake, kept = FakeTraining(), []
    masks = iterative_magnitude_pruning(
        net, targets, fake, rewind=rewind, rewind_step=2, on_level=lambda lv, m, mk: kept.append(count_kept(mk))
    )
    assert kept == targets  # global scope keeps exactly each target
    for level in range(1, len(targets)):
        start = fake.starts[level]
        if rewind == "init":
            want = initial
        elif rewind == "late":  # after step 2 of level 0: initial + 0.1 + 0.2
            want = {k: v + 0.3 for k, v in initial.items()}
        else:
            want = fake.ends[level - 1]
        for name, m in fake.masks[level].items():
            torch.testing.assert_close(start[name][m], want[name][m])
            assert (start[name][~m] == 0).all()
        assert all((fake.masks[level][k] <= fake.masks[level - 1][k]).all() for k in masks)  # pruned stay pruned
    assert all(torch.equal(masks[k], fake.masks[-1][k]) for k in masks)


def test_biases_can_stay_unpruned():
    net = _net()
    params = prunable_parameters(net, prune_biases=False)
    assert all(name.endswith("weight") for name in params)
    p0 = sum(p.numel() for p in params.values())
    masks = iterative_magnitude_pruning(net, trajectory(p0, 20, 2), FakeTraining(), prune_biases=False)
    assert count_kept(masks) == 20 and (net.layer0.fc.bias != 0).all()


def test_prune_to_keeps_the_largest_and_layer_scope_prunes_each_tensor():
    params = {"a": torch.tensor([5.0, -4.0, 0.1, 0.2]), "b": torch.tensor([3.0, 0.3, -2.0, 1.0])}
    ones = {k: torch.ones(4, dtype=torch.bool) for k in params}
    glob = prune_to(params, 4, "global", ones)
    assert glob["a"].tolist() == [True, True, False, False] and glob["b"].tolist() == [True, False, True, False]
    lay = prune_to(params, 4, "layer", ones)
    assert lay["a"].tolist() == [True, True, False, False] and lay["b"].tolist() == [True, False, True, False]
    lay = prune_to({"a": params["a"], "b": params["b"] * 100}, 4, "layer", ones)
    assert lay["a"].sum() == lay["b"].sum() == 2  # global would take all of b here
    assert prune_to({"a": params["a"], "b": params["b"] * 100}, 4, "global", ones)["b"].sum() == 4
    with pytest.raises(ValueError, match="pruning target 9 must be in"):
        prune_to(params, 9, "global", ones)


def test_bad_input():
    net = _net()
    with pytest.raises(ValueError, match="unknown rewind 'half'"):
        iterative_magnitude_pruning(net, [86, 10], FakeTraining(), rewind="half")
    with pytest.raises(ValueError, match="starts at 100 but the model has 86"):
        iterative_magnitude_pruning(net, [100, 10], FakeTraining())
    with pytest.raises(ValueError, match="lower imp.rewind_step"):
        iterative_magnitude_pruning(net, [86, 10], FakeTraining(), rewind="late", rewind_step=50)
