"""The optimizer registry: the config's ``optimizer.name`` picks one, with `OPTIMIZER_DEFAULTS`.

Importing this module does not import torch (config checks read the names); each
builder imports its optimizer class when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnclust.core.config import check_keys
from nnclust.core.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = ["OPTIMIZERS", "OPTIMIZER_DEFAULTS", "make_optimizer"]


def _adam(params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    from torch.optim import Adam

    return Adam(params, lr=lr, weight_decay=weight_decay)


def _sgd(params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    from torch.optim import SGD

    return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


OPTIMIZERS = Registry("optimizer", {"adam": _adam, "sgd": _sgd})
OPTIMIZER_DEFAULTS = {"name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}


def make_optimizer(spec: dict, params) -> torch.optim.Optimizer:
    check_keys("optimizer", spec, OPTIMIZER_DEFAULTS)
    spec = {**OPTIMIZER_DEFAULTS, **spec}
    if spec["lr"] <= 0:
        raise ValueError(f"optimizer.lr must be > 0, got {spec['lr']}")
    build = OPTIMIZERS[spec["name"]]
    return build(params, spec["lr"], spec["momentum"], spec["weight_decay"])
