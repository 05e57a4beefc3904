"""Train on classes A, then on classes B: how much of A survives, per variant.
The body of ``src/forgetting.py``.

Variants (phase B starts from the phase-A model each time):

- ``finetune``: every parameter trains on B.
- ``selector_bottom``: only the `fraction` of weights with the smallest |w| train on B
  (`nnclust.sparse.selection`, rule ``bottom_k``); the important ones are kept.
- ``selector_new_classes``: only the output rows (weights and biases) of B's classes.
- ``mix``: the ``finetune`` model averaged with the phase-A model
  (`nnclust.sparse.mixing`).
"""

from __future__ import annotations

import copy

from nnclust.core import seeding
from nnclust.core.constraints import Check, Interval, Options
from nnclust.core.registry import Registry
from nnclust.data import DATASETS, load_dataset
from nnclust.data.splits import class_subset
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.experiments.train import DATASET_OPTIONS, MODEL_OPTIONS
from nnclust.nets.registry import MODELS, build_model
from nnclust.storage import paths
from nnclust.training import OPTIMIZER_DEFAULTS

# torch, training and model surgery are imported inside the functions that use them, so
# that the script's print_config and --help need no torch (benchmarks/startup.py).

VARIANTS = Registry(
    "forgetting variant",
    {
        "finetune": "every parameter trains on B",
        "selector_bottom": "only the smallest-|w| fraction of the weights trains on B",
        "selector_new_classes": "only the output rows of B's classes train on B",
        "mix": "the finetune model averaged with the phase-A model",
    },
)


def _is_class_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(c, int) and not isinstance(c, bool) for c in v)


CONSTRAINTS = {
    "classes_a": Check(_is_class_list, "a non-empty list of class indices"),
    "classes_b": Check(_is_class_list, "a non-empty list of class indices"),
    "epochs_a": Interval(1, None, integer=True),
    "epochs_b": Interval(1, None, integer=True),
    "batch_size": Interval(1, None, integer=True),
    "fraction": Interval(0, 1, closed="right"),
    "variants": Check(
        lambda v: isinstance(v, list) and v and all(x in VARIANTS for x in v), f"a list of {VARIANTS.names()}"
    ),
    "optimizer.name": Options(["adam", "sgd"]),
    "dataset.name": Options(DATASETS),
    "model.name": Options(MODELS),
}
RELATIONS = [DATASET_OPTIONS, MODEL_OPTIONS]
SECTIONS = {"optimizer": OPTIMIZER_DEFAULTS}


def _accuracy(model, data, classes) -> float:
    from nnclust.training import evaluate

    part = class_subset(data, classes)
    return evaluate(model, part.x_test, part.y_test)[1]


def _phase_b(variant: str, model, data_b, classes_b, fraction, train_kwargs):
    from nnclust.nets.validate import layer_modules
    from nnclust.sparse.selection import ParameterSelector, magnitude_scores, output_classes, select
    from nnclust.training import train

    if variant in ("finetune", "mix"):
        train(model, data_b, **train_kwargs)
        return model
    weights = [f"{m.linear_key}.weight" for m in layer_modules(model)]
    if variant == "selector_bottom":
        masks = select(magnitude_scores(model, weights), "bottom_k", float(fraction))
    else:
        last = layer_modules(model)[-1].linear_key
        masks = output_classes(model, classes_b, f"{last}.weight", f"{last}.bias")
    selector = ParameterSelector(masks)
    train(model, data_b, **{**train_kwargs, "callbacks": [selector]})
    selector.remove()
    return model


def forgetting_job(
    run, seed, dataset, data_root, model, optimizer, classes_a, classes_b, epochs_a, epochs_b, batch_size,
    fraction, variants, progress=False,
):  # fmt: skip
    """Accuracy on A and on B after phase A and after phase B, for each variant."""
    import torch

    from nnclust.sparse.mixing import mix
    from nnclust.training import train

    overlap = sorted(set(classes_a) & set(classes_b))
    if overlap:
        raise ValueError(f"classes_a and classes_b share classes {overlap}; give disjoint lists")
    options = {k: v for k, v in dict(dataset).items() if k != "name"}
    data = load_dataset(dataset["name"], root=data_root, seed=seeding.int_seed(seed, "data_split"), **options)
    data_a, data_b = class_subset(data, classes_a), class_subset(data, classes_b)
    torch.manual_seed(seeding.int_seed(seed, "init"))
    net = build_model(dict(model), data.input_shape, data.num_classes)
    common = {"batch_size": batch_size, "optimizer": dict(optimizer), "progress": progress}
    train(net, data_a, epochs=epochs_a, seed=seeding.int_seed(seed, "phase_a"), **common)
    after_a = {"accuracy_a": _accuracy(net, data, classes_a), "accuracy_b": _accuracy(net, data, classes_b)}
    results = {}
    finetuned = None
    for variant in variants:
        phase_b = {**common, "epochs": epochs_b, "seed": seeding.int_seed(seed, "phase_b")}
        if variant == "mix":
            if finetuned is None:
                finetuned = _phase_b("finetune", copy.deepcopy(net), data_b, classes_b, fraction, phase_b)
            mixed = copy.deepcopy(net)
            mixed.load_state_dict(mix([net.state_dict(), finetuned.state_dict()], "average"))
            model_b = mixed
        else:
            model_b = _phase_b(variant, copy.deepcopy(net), data_b, classes_b, fraction, phase_b)
            if variant == "finetune":
                finetuned = model_b
        results[variant] = {
            "accuracy_a": _accuracy(model_b, data, classes_a),
            "accuracy_b": _accuracy(model_b, data, classes_b),
        }
        for i, name in enumerate(("accuracy_a", "accuracy_b")):
            run.log_scalar(f"{variant}.{name}", results[variant][name], i)
    from nnclust.viz.figures import forgetting_plot

    tmp = scratch("forgetting-")
    add_artifact(run, tmp, paths.FORGETTING_PLOT, forgetting_plot(after_a, results))
    return {"after_a": after_a, "after_b": results}
