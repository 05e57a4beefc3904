"""Class-split views of a dataset: train on some classes, serve the others later
(forgetting and transfer experiments). Labels keep their original class indices, so a
network with one output per class of the whole dataset sees every phase."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace


def class_subset(data, classes: Sequence[int]):
    """The examples of `data` (a classification `Dataset`) whose label is in `classes`."""
    if data.objective != "cross_entropy":
        raise ValueError(f"class splits need class labels; {data.name} has objective {data.objective!r}")
    classes = sorted(set(int(c) for c in classes))
    bad = [c for c in classes if not 0 <= c < data.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not classes of {data.name} (0..{data.num_classes - 1})")
    if not classes:
        raise ValueError("a class subset needs at least one class")
    picks = {}
    for split in ("train", "test"):
        y = getattr(data, f"y_{split}")
        keep = (y[:, None] == y.new_tensor(classes)[None, :]).any(1)
        picks[split] = (getattr(data, f"x_{split}")[keep], y[keep])
    return replace(
        data,
        name=f"{data.name}[{','.join(map(str, classes))}]",
        x_train=picks["train"][0],
        y_train=picks["train"][1],
        x_test=picks["test"][0],
        y_test=picks["test"][1],
    )


def hold_out(data, holdout: Sequence[int]):
    """(data without the `holdout` classes, data of the `holdout` classes only)."""
    holdout = sorted(set(int(c) for c in holdout))
    rest = [c for c in range(data.num_classes) if c not in holdout]
    if not rest:
        raise ValueError(f"holding out every class of {data.name} ({holdout}) leaves nothing to train on")
    return class_subset(data, rest), class_subset(data, holdout)
