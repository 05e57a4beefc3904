"""Small hand-made networks that several test packages share."""

import numpy as np

from nnclust.nets.weight_layer import WeightLayer


def small_layers(seed=0, shapes=((24, 10), (24, 24), (4, 24))):
    """Fc weight layers of the given (out, in) shapes, normal weights with about half
    of them zero."""
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(shapes):
        w = rng.normal(size=s)
        w[rng.random(s) < 0.5] = 0
        out.append(WeightLayer(f"l{i}.fc", "fc", w))
    return out
