"""Split, train and merge back (`nnclust.sparse.vulcanizer`) on a trained MLP and its data.

The sub-model reads the frozen activations below the split. To make its outputs those
of the full model, each sample also carries a fixed offset: the full model's logits
minus the sub-model's at split time (what the mean units do not represent exactly).
With the mean units frozen (the default) and m = 1, the collapsed units keep their
activations, so the offset stays exact while the sub-model trains: the sub-model's
loss is the full model's, and merging back carries its improvement over unchanged.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from nnclust.data import Dataset
from nnclust.nets.layers import extract_layers, mlp_from_layers
from nnclust.nets.weight_layer import mlp_forward
from nnclust.sparse.selection import ParameterSelector
from nnclust.sparse.vulcanizer import forward_below, make_split, mean_unit_masks, merge, project, unit_importance
from nnclust.structure.transforms import fold_batch_norm_into_layers
from nnclust.training import evaluate, train


class _WithOffset(nn.Module):
    """sub(features) + offset, for inputs laid out as [features, offset]."""

    def __init__(self, sub: nn.Module, n_features: int):
        super().__init__()
        self.sub, self.n_features = sub, n_features

    def forward(self, x):
        return self.sub(x[:, : self.n_features]) + x[:, self.n_features :]


def vulcanize(model: nn.Module, data: Dataset, k: int, m: int, epochs: int, optimizer: dict, batch_size: int = 64,
              rule: str = "max", train_mean_units: bool = False, seed: int = 0) -> dict:  # fmt: skip
    """Returns the merged model and the accuracies of the full model before the split,
    of the sub-model after training, and of the merged model."""
    model = copy.deepcopy(model).double().eval()  # the caller's model stays as it was
    layers = fold_batch_norm_into_layers(extract_layers(model))
    x_train = data.x_train.flatten(1).double().numpy()
    split = make_split(layers, unit_importance(layers, x_train), k, m, rule, seed)
    sub = project(layers, split)

    def inputs(x: torch.Tensor) -> torch.Tensor:
        xs = x.flatten(1).double().numpy()
        feats = forward_below(layers, split, xs)
        offset = mlp_forward(layers, xs)[0] - mlp_forward(sub, feats)[0]
        return torch.from_numpy(np.concatenate([feats, offset], axis=1)).float()

    sub_data = Dataset(f"{data.name}-sub", inputs(data.x_train), data.y_train, inputs(data.x_test), data.y_test,
                       (sub[0].n_in + sub[-1].n_out,), data.num_classes)  # fmt: skip
    sub_model, _ = mlp_from_layers(sub)
    wrapped = _WithOffset(sub_model, sub[0].n_in)
    callbacks = []
    if not train_mean_units:
        masks = {f"sub.{k}": torch.from_numpy(v) for k, v in mean_unit_masks(sub, split).items()}
        callbacks.append(ParameterSelector(masks))
    before = evaluate(model.float(), data.x_test, data.y_test)[1]
    train(wrapped, sub_data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, seed=seed,
          callbacks=callbacks, progress=False)  # fmt: skip
    for cb in callbacks:
        cb.remove()
    sub_acc = evaluate(wrapped, sub_data.x_test, sub_data.y_test)[1]
    merged_layers = merge(layers, split, extract_layers(sub_model))
    merged, _ = mlp_from_layers(merged_layers, input_shape=tuple(data.input_shape))
    return {
        "model": merged,
        "accuracy_before": before,
        "accuracy_sub_model": sub_acc,
        "accuracy_merged": evaluate(merged, data.x_test, data.y_test)[1],
        "units_per_layer": k + 1,
    }
