"""The hypernetwork normalizer (crude): a small network generates every weight of an
MLP from learned unit embeddings, is trained to preserve the MLP's function, and its
weights are written back as plain weights.

Every node (input, hidden unit, output) has an embedding e in R^d and every weight
matrix a layer embedding z_l in R^d. The weight from node j of group l to node i of
group l+1 is ``G([e_i, e_j, z_l])``, with G an MLP 3d -> hidden -> 1 (tanh) shared by
all layers. The biases are learned directly, starting from the MLP's. Embeddings,
G and biases are first fitted to the MLP's weights (a warm-up), then trained with the
MSE between the generated network's outputs and the MLP's original outputs on
``data.x_train``; the generated weights (times the masks,
so zero weights stay zero) are then copied into the MLP. A network described by a few
numbers per unit is what this normal form looks for; the output change it leaves is
what the caller measures.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from nnclust.core import seeding
from nnclust.nets.validate import layer_modules
from nnclust.training import make_optimizer


class WeightGenerator(nn.Module):
    """Node and layer embeddings and the generator G of an MLP with node group sizes
    `sizes` (inputs, then each layer's outputs); parameters initialised from `gen`."""

    def __init__(self, sizes: list[int], biases: list[torch.Tensor], embedding_dim: int, hidden: int, gen):
        super().__init__()
        d = embedding_dim
        self.nodes = nn.ParameterList([nn.Parameter(torch.randn(n, d, generator=gen)) for n in sizes])
        self.layers = nn.Parameter(torch.randn(len(sizes) - 1, d, generator=gen))
        self.biases = nn.ParameterList([nn.Parameter(b.detach().clone()) for b in biases])
        self.g = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        with torch.no_grad():
            for lin in (self.g[0], self.g[2]):
                bound = 1.0 / lin.in_features**0.5
                lin.weight.copy_(torch.rand(lin.weight.shape, generator=gen) * 2 * bound - bound)
                lin.bias.copy_(torch.rand(lin.bias.shape, generator=gen) * 2 * bound - bound)

    def weights(self) -> list[torch.Tensor]:
        """The generated weight matrices, shape (n_{l+1}, n_l) each."""
        out = []
        for layer, (src, dst) in enumerate(zip(self.nodes, self.nodes[1:])):
            pairs = dst[:, None, :] * src[None, :, :] * self.layers[layer]
            out.append(self.g(pairs).squeeze(-1))
        return out


def hypernet(
    model: nn.Module,
    data,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    embedding_dim: int,
    hidden: int,
    warmup_steps: int = 0,
    optimizer: str = "adam",
    masks: Mapping[str, torch.Tensor] | None = None,
    progress: bool = False,
) -> list[float]:
    """Fit a `WeightGenerator` to `model` (an MLP, trained in place) and write the
    generated weights into it. Returns the MSE to the original outputs at each of the
    `steps` steps.

    First `warmup_steps` steps fit the generated weights to the MLP's own (the mean over
    layers of ||W_gen - W||^2 / ||W||^2): from a random start, fitting the outputs alone
    can leave every unit of a layer inactive, where no gradient remains. Then `steps`
    steps fit the outputs on minibatches of ``data.x_train`` (``normalizer.order``
    stream of `seed`; the generator is initialised from the ``normalizer.init`` stream).
    """
    mods = layer_modules(model)
    names = [f"{m.linear_key}.weight" for m in mods]
    bias_names = [f"{m.linear_key}.bias" for m in mods]
    sizes = [mods[0].linear.weight.shape[1]] + [m.linear.weight.shape[0] for m in mods]
    dtype = mods[0].linear.weight.dtype
    hyper = WeightGenerator(
        sizes,
        [m.linear.bias for m in mods],
        embedding_dim,
        hidden,
        seeding.torch_generator(seed, "normalizer.init"),
    ).to(dtype)
    held = [None if masks is None or n not in masks else masks[n].to(dtype) for n in names]

    def generated():
        weights = [w if m is None else w * m for w, m in zip(hyper.weights(), held)]
        return {**dict(zip(names, weights)), **dict(zip(bias_names, hyper.biases))}

    model.eval()
    with torch.no_grad():
        target = model(data.x_train.to(dtype))
    opt = make_optimizer({"name": optimizer, "lr": lr, "momentum": 0.0}, hyper.parameters())
    originals = [m.linear.weight.detach().clone() for m in mods]
    for _ in tqdm(range(warmup_steps), desc="hypernet warm-up", disable=not progress):
        weights = generated()
        loss = sum(
            ((weights[n] - w) ** 2).sum() / (w**2).sum().clamp_min(1e-12) for n, w in zip(names, originals)
        ) / len(names)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    opt.state.clear()  # the warm-up's moment estimates belong to another loss
    gen = seeding.torch_generator(seed, "normalizer.order")
    n = len(data.x_train)
    order, pos, curve = torch.randperm(n, generator=gen), 0, []
    for _ in tqdm(range(steps), desc="hypernet", disable=not progress):
        if pos >= n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        out = functional_call(model, generated(), (data.x_train[idx].to(dtype),))
        loss = torch.nn.functional.mse_loss(out, target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.item()))
    with torch.no_grad():
        for name, value in generated().items():
            model.get_parameter(name).copy_(value)
    return curve
