"""Random example models for the normalizers (the normalizer document's
``make_example_mlp`` and ``make_example_rnn`` prototypes).

`EXAMPLES` holds each kind's options and defaults and imports no torch (config checks
read it); `example_model` builds one, initialised from the ``init`` stream of a seed.
"""

from __future__ import annotations

from collections.abc import Mapping

from nnclust.core import seeding
from nnclust.core.config import check_keys
from nnclust.core.constraints import ConfigError

# Defaults fit the project's small datasets: an MLP for `multiplication` (2 inputs, 1
# output), an RNN for sequences of 8 steps of 1 feature.
EXAMPLES = {
    "mlp": {"hidden": [16, 16], "input_shape": [2], "num_classes": 1},
    "rnn": {"hidden": [16], "input_shape": [8, 1], "num_classes": 1},
}
MODEL_NAMES = {"mlp": "mlp", "rnn": "relu_rnn"}


def example_options(kind: str, options: Mapping | None) -> dict:
    """The full options of example `kind` (defaults filled in), or a ConfigError naming
    an unknown key or a bad value (``example.<key>``)."""
    options = dict(options or {})
    try:
        check_keys(f"example ({kind})", options, EXAMPLES[kind])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    full = {**EXAMPLES[kind], **options}
    for key in full:
        value = full[key]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(
                f"example.{key}={value!r} is not allowed: expected positive ints, e.g. {EXAMPLES[kind][key]}"
            )
    return full


def example_model(kind: str, seed: int, options: Mapping | None = None):
    """(module, checkpoint architecture) of a randomly initialised example `kind`
    (``mlp`` or ``rnn``) with `options` (see `EXAMPLES`); the initial weights come from
    the ``init`` stream of `seed`, the global torch RNG is left as it was."""
    import torch

    from nnclust.nets.registry import build_model

    opts = example_options(kind, options)
    arch = {
        "model": {"name": MODEL_NAMES[kind], "hidden": list(opts["hidden"])},
        "input_shape": list(opts["input_shape"]),
        "num_classes": opts["num_classes"],
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.int_seed(seed, "init"))
        model = build_model(arch["model"], arch["input_shape"], arch["num_classes"])
    return model.eval(), arch
