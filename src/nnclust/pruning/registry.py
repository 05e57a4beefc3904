"""The pruning registries that config names: scopes, criteria (with `Criterion`, the
record each criterion is registered as), the rewinds of iterative magnitude pruning and
the initialisations of sparse networks.

Importing this module does not import torch: config checks read the names and whether a
criterion needs data; the scoring functions, in `nnclust.pruning.magnitude` and
`nnclust.pruning.criteria`, are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnclust.core.lazy import Lazy
from nnclust.core.registry import Registry

if TYPE_CHECKING:
    import torch

    from nnclust.pruning.criteria import InputStats

__all__ = ["CRITERIA", "REWINDS", "SCOPES", "SPARSE_INITS", "Criterion"]

# Scope name -> f(flat scores by tensor name, sparsity, flat tie-breaks or None) -> flat
# keep-masks by tensor name.
SCOPES = Registry(
    "pruning scope",
    {"global": Lazy("nnclust.pruning.magnitude:global_scope"), "layer": Lazy("nnclust.pruning.magnitude:layer_scope")},
)


@dataclass(frozen=True)
class Criterion:
    """A registry entry: ``score(w, stats)`` returns float64 scores shaped like `w`
    (float64, CPU); `stats` is the `InputStats` of the layer, None unless `needs_data`.
    ``tiebreak_by_magnitude`` ranks equal scores by |w|."""

    score: Callable[[torch.Tensor, InputStats | None], torch.Tensor]
    needs_data: bool = False
    tiebreak_by_magnitude: bool = True
    description: str = ""


def _score(name: str) -> Lazy:
    return Lazy(f"nnclust.pruning.criteria:{name}")


CRITERIA: Registry[Criterion] = Registry(
    "pruning criterion",
    {
        "magnitude": Criterion(_score("magnitude_score"), tiebreak_by_magnitude=False, description="|w|"),
        "mav": Criterion(_score("mav_score"), needs_data=True, description="|w * mean(a)|"),
        "maav": Criterion(_score("maav_score"), needs_data=True, description="|w| * mean(|a|)"),
        "activation_rank": Criterion(
            _score("activation_rank_score"), needs_data=True, description="how often the input unit fires"
        ),
        "negative_only": Criterion(
            _score("negative_only_score"), tiebreak_by_magnitude=False, description="|w|, w < 0 only"
        ),
        "positive_only": Criterion(
            _score("positive_only_score"), tiebreak_by_magnitude=False, description="|w|, w > 0 only"
        ),
    },
)

# name -> needs a snapshot after `rewind_step` steps of the first level (`nnclust.pruning.imp`)
REWINDS = Registry("rewind", {"init": False, "late": True, "none": False})

# Init name -> f(mask: bool tensor shaped like the weight) -> per-weight std, or None to
# keep the module's own initialisation (`nnclust.pruning.sparse_init`).
SPARSE_INITS = Registry(
    "initialisation",
    {
        "default": None,
        "he": Lazy("nnclust.pruning.sparse_init:he_std"),
        "glorot": Lazy("nnclust.pruning.sparse_init:glorot_std"),
    },
)
