import math

import numpy as np
import pytest
import torch
from torch import nn

from nnclust.clustering.spectral import DENSE_LIMIT, bipartite_eigs, dense_gram
from nnclust.data import load_dataset
from nnclust.nets.layers import extract_layers
from nnclust.nets.registry import build_model, layer_modules
from nnclust.pruning import magnitude_masks
from nnclust.regularizers import (
    REGULARIZERS,
    ClusterabilityRegularizer,
    LaplacianEigensolver,
    build_regularizer,
    clusterability_loss,
    from_config,
    rescale_hidden_units,
    weight_graph_edges,
)
from nnclust.regularizers.clusterability import EdgeCache, EdgeList
from nnclust.regularizers.clusterability.autograd import _edge_derivatives, laplacian_eigenvalues
from nnclust.structure.graph import GraphError, build_graph
from nnclust.training import apply_masks, prunable_weights, train

K = 3  # eigenvalues 2..4 of the Laplacian
# Every eigen-solve branch: dense M; the bipartite reduction with its Gram matrix solved
# densely (smaller side <= dense_limit) or by Lanczos; the Gram matrix in torch (the CUDA
# path, here on CPU).
SOLVERS = {
    "dense": lambda: LaplacianEigensolver("dense"),
    "gram_dense": lambda: LaplacianEigensolver("eigsh"),
    "gram_lanczos": lambda: LaplacianEigensolver("eigsh", dense_limit=0, dense_fill=float("inf")),
    "torch": lambda: LaplacianEigensolver("torch"),
}


def mlp(seed: int = 0, hidden=(8, 8), n_in: int = 6, n_out: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return build_model({"name": "mlp", "hidden": list(hidden)}, (n_in,), n_out).double()


def prune(model: nn.Module, sparsity: float) -> None:
    """Zero the smallest-magnitude `sparsity` of each layer's weights, in place."""
    if sparsity:
        apply_masks(model, magnitude_masks(prunable_weights(model), sparsity, "layer"))


def random_batch_norms(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.3, 2.0)
                mod.weight.uniform_(0.3, 1.5)
                mod.weight[0] *= -1  # a negative gamma: the graph uses |gamma|
                mod.bias.uniform_(-0.5, 0.5)
    return model.double()


def cnn(seed: int = 0, size: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    spec = {"name": "cnn", "conv_channels": [3, 4], "hidden": [5], "batch_norm": True}
    return random_batch_norms(build_model(spec, (1, size, size), 3))


def bn_mlp(seed: int = 0) -> nn.Module:
    """A 6-8-8-3 MLP with batch norm; unit 1 of the first BN has gamma = 0, so its
    incoming edges vanish from the graph (it stays, through its outgoing ones)."""
    torch.manual_seed(seed)
    model = random_batch_norms(build_model({"name": "mlp", "hidden": [8, 8], "batch_norm": True}, (6,), 3))
    with torch.no_grad():
        model.layer0.bn.weight[1] = 0
    return model


def graph_params(model) -> dict[str, torch.Tensor]:
    """Every parameter tensor the term depends on: fc/conv weights and BN gammas."""
    params = {}
    for m in layer_modules(model):
        params[f"{m.linear_key}.weight"] = m.linear.weight
        if m.bn is not None:
            params[f"{m.bn_key}.weight"] = m.bn.weight
    return params


def dense_eigenvalues(model) -> np.ndarray:
    """All eigenvalues of L = I - D^-1/2 A D^-1/2 of `build_graph`'s graph, by numpy."""
    adj = build_graph(extract_layers(model), normalize=False).adjacency.toarray()
    d = adj.sum(axis=1)
    lap = np.eye(len(d)) - adj / np.sqrt(np.outer(d, d))
    return np.linalg.eigvalsh(lap)


def assert_gap_safe(model, k: int = K) -> None:
    # FD needs eigenvalue k+1 (the last one used) apart from k+2 (the first one not used).
    vals = dense_eigenvalues(model)
    assert vals[k + 1] - vals[k] > 1e-3


def check_gradient(
    model, solver: str, skip: dict | None = None, k: int = K, eps: float = 1e-6
) -> dict[str, torch.Tensor]:
    """Central differences against autograd for every parameter tensor; returns the gradients.

    `skip` maps a parameter name to a bool mask of entries left out of the FD check.
    """
    solver = SOLVERS[solver]()
    params = graph_params(model)
    loss = clusterability_loss(model, k, solver=solver)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    with torch.no_grad():
        for name, p in params.items():
            flat = p.view(-1)
            check = np.ones(flat.numel(), bool) if skip is None or name not in skip else ~skip[name].view(-1).numpy()
            fd = torch.zeros_like(flat)
            for i in np.flatnonzero(check):
                orig = flat[i].item()
                flat[i] = orig + eps
                up = clusterability_loss(model, k, solver=solver).item()
                flat[i] = orig - eps
                down = clusterability_loss(model, k, solver=solver).item()
                flat[i] = orig
                fd[i] = (up - down) / (2 * eps)
            g = grads[name].view(-1)
            sel = torch.from_numpy(np.flatnonzero(check))
            rel = (fd[sel] - g[sel]).norm() / fd[sel].norm()
            assert rel < 1e-5, f"{name}: relative error {rel:.2e}"
    return grads


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_gradient_matches_finite_differences_mlp(solver):
    model = mlp(seed=1)
    assert_gap_safe(model)
    check_gradient(model, solver)


def test_gradient_with_a_bipartite_side_smaller_than_the_eigenvalues():
    # A single 6 -> 3 layer and k = 2: the 3 x 3 Gram matrix of the outputs cannot give
    # 3 eigenpairs (sigma > 0), so Lanczos runs on M itself. (With k = 3 eigenvalue 4
    # would be the 1 of M's null space, degenerate with eigenvalue 5.)
    model = mlp(seed=10, hidden=())
    assert_gap_safe(model, k=2)
    check_gradient(model, "gram_lanczos", k=2)
    check_gradient(model, "torch", k=2)  # the GPU path then solves all of M as well


@pytest.mark.parametrize("size", [6, 8])  # 8x8 leaves 2x2 positions per channel at the flatten
def test_gradient_matches_finite_differences_cnn_with_batch_norm(size):
    model = cnn(seed=2, size=size)
    assert_gap_safe(model)
    grads = check_gradient(model, "dense")
    assert any(".bn." in name and g.abs().sum() > 0 for name, g in grads.items())


def test_gradient_matches_finite_differences_mlp_with_batch_norm():
    model = bn_mlp(seed=11)
    assert_gap_safe(model)
    grads = check_gradient(model, "gram_dense")
    assert torch.all(grads["layer0.fc.weight"][1] == 0)  # gamma = 0: no incoming edges
    assert grads["layer0.bn.weight"][1] == 0 and grads["layer0.bn.weight"][0] != 0


def test_gradient_of_pruned_network_is_zero_on_pruned_weights():
    model = mlp(seed=3, hidden=(16, 16))
    masks = magnitude_masks(prunable_weights(model), 0.5, "layer")
    with torch.no_grad():
        for name, w in prunable_weights(model).items():
            w.mul_(masks[name])
    assert_gap_safe(model)
    grads = check_gradient(model, "dense", skip={n: ~m for n, m in masks.items()})
    for name, mask in masks.items():
        assert torch.all(grads[name][~mask] == 0)


def test_masks_remove_edges_of_nonzero_weights():
    model = mlp(seed=4, hidden=(16, 16))
    masks = magnitude_masks(prunable_weights(model), 0.5, "layer")
    params = list(prunable_weights(model).values())
    masked = clusterability_loss(model, K, masks=masks)
    grads = torch.autograd.grad(masked, params)
    for g, mask in zip(grads, masks.values()):
        assert torch.all(g[~mask] == 0)
    with torch.no_grad():
        for w, mask in zip(params, masks.values()):
            w.mul_(mask)
    assert clusterability_loss(model, K).item() == pytest.approx(masked.item(), abs=1e-14)


def isolated_mlp() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A 6-8-8-3 MLP with a dead unit and a side component {input 0, h1[0], h2[0]} that
    reaches no output; returns the model and, per weight, the entries of removed units."""
    model = mlp(seed=5)
    w1, w2, w3 = prunable_weights(model).values()
    with torch.no_grad():
        # Side component: input 0 -> h1[0] -> h2[0], and h2[0] feeds no output.
        w1[:, 0] = 0
        w1[0, :] = 0
        w1[0, 0] = 0.7
        w2[:, 0] = 0
        w2[0, :] = 0
        w2[0, 0] = -0.9
        w3[:, 0] = 0
        # Dead unit h1[1]: no incoming and no outgoing weights.
        w1[1, :] = 0
        w2[:, 1] = 0
    removed = [torch.zeros_like(w, dtype=torch.bool) for w in (w1, w2, w3)]
    removed[0][0, 0] = True
    removed[1][0, 0] = True
    return model, dict(zip(prunable_weights(model), removed))


def test_removed_units_get_zero_gradient():
    model, removed = isolated_mlp()
    edges = weight_graph_edges(model)
    assert edges.n_kept == 25 - 4  # input 0, h1[0], h2[0] and h1[1] are gone
    assert_gap_safe(model)
    grads = check_gradient(model, "dense")
    for name, where in removed.items():
        assert torch.all(grads[name][where] == 0)
    assert grads["layer0.fc.weight"][0, 0] == 0 and grads["layer1.fc.weight"][0, 0] == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: mlp(seed=1),
        lambda: cnn(seed=2),
        lambda: cnn(seed=2, size=8),
        lambda: bn_mlp(seed=11),
        lambda: isolated_mlp()[0],
        lambda: mlp(seed=10, hidden=(2,)),
    ],
)
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_value_is_mean_of_dense_laplacian_eigenvalues(make, solver):
    model = make()
    graph = build_graph(extract_layers(model), normalize=False)
    edges = weight_graph_edges(model)
    np.testing.assert_array_equal(edges.keep, graph.keep)
    assert abs(edges.adjacency() - graph.adjacency).max() < 1e-12
    value = clusterability_loss(model, K, solver=SOLVERS[solver]()).item()
    assert value == pytest.approx(dense_eigenvalues(model)[1 : K + 1].mean(), abs=1e-12)


def test_auto_method_is_the_bipartite_reduction_on_cpu():
    assert LaplacianEigensolver("auto").pick(torch.zeros(3)) == "eigsh"
    with pytest.raises(ValueError, match="method must be one of"):
        LaplacianEigensolver("lobpcg")


def test_float32_model_gives_float32_term_and_gradient():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8]}, (6,), 3)
    loss = clusterability_loss(model, K)
    loss.backward()
    assert loss.dtype == torch.float32 and model.layer0.fc.weight.grad.dtype == torch.float32


# ---------------------------------------------------------------- rescaling


def incoming_norms(model) -> list[torch.Tensor]:
    out = []
    for m in layer_modules(model)[:-1]:
        if m.bn is not None:
            out.append(torch.sqrt(m.bn.weight**2 + m.bn.bias**2))
        else:
            w = m.linear.weight.reshape(m.linear.weight.shape[0], -1)
            out.append(torch.sqrt((w**2).sum(1) + m.linear.bias**2))
    return out


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: mlp(seed=6, hidden=(8, 8)), (6,)),
        (lambda: cnn(seed=7, size=8), (1, 8, 8)),
        (lambda: build_model({"name": "cnn_sequential", "conv_channels": [3], "hidden": [5]}, (1, 8, 8), 3), (1, 8, 8)),
    ],
)
def test_rescaling_keeps_the_function_and_sets_incoming_norms(make, shape):
    model = make().double().eval()
    x = torch.randn(16, *shape, dtype=torch.float64)
    before = model(x)
    rescale_hidden_units(model)
    torch.testing.assert_close(model(x), before, rtol=1e-12, atol=1e-12)
    for norms in incoming_norms(model):
        torch.testing.assert_close(norms, torch.full_like(norms, math.sqrt(2)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rescale_hidden_units(model)  # idempotent
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=1e-12, atol=0)


def test_rescaling_skips_units_with_zero_norm():
    model = mlp(seed=8).eval()
    with torch.no_grad():
        model.layer0.fc.weight[2] = 0
        model.layer0.fc.bias[2] = 0
    x = torch.randn(8, 6, dtype=torch.float64)
    before = model(x)
    rescale_hidden_units(model)
    torch.testing.assert_close(model(x), before, rtol=1e-12, atol=1e-12)
    norms = incoming_norms(model)[0]
    assert norms[2] == 0 and torch.all(torch.isfinite(model.layer1.fc.weight))


# ----------------------------------------------------------------- training


def test_training_with_the_term_lowers_it():
    data = load_dataset("moons", seed=0, n_samples=600)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16, 16]}, data.input_shape, data.num_classes)
    reg = ClusterabilityRegularizer(lam=1.0, num_eigs=3, frequency=1, normalize=True)
    logged = {}
    state = train(
        model,
        data,
        epochs=2,
        batch_size=32,
        optimizer={"name": "adam", "lr": 1e-2},
        callbacks=[reg],
        log=lambda name, value, epoch: logged.setdefault(name, []).append(value),
        progress=False,
    )
    assert len(reg.history) == state.step
    assert logged["cluster_term"][-1] < logged["cluster_term"][0]
    assert reg.history[-1][1] < 0.8 * reg.history[0][1]


def test_term_applies_every_frequency_steps():
    class State:
        model = mlp(seed=9)
        step = 0
        metrics: dict = {}

    reg = ClusterabilityRegularizer(lam=0.5, num_eigs=2, frequency=3, normalize=False)
    state = State()
    terms = []
    for step in range(7):
        state.step = step
        terms.append(reg.loss_term(state))
    assert [t is not None for t in terms] == [True, False, False, True, False, False, True]
    assert terms[0].item() == pytest.approx(0.5 * clusterability_loss(state.model, 2).item())
    reg.on_epoch_end(state)
    assert state.metrics["cluster_term"] == pytest.approx(terms[0].item())


# ---------------------------------------------------------------- bad input


def test_too_many_eigenvalues_raise():
    model = mlp(hidden=(3,), n_in=2, n_out=2)  # 7 nodes
    assert clusterability_loss(model, 5).dim() == 0
    with pytest.raises(ValueError, match="7 nodes"):
        clusterability_loss(model, 6)
    with pytest.raises(ValueError, match="num_eigs must be an int >= 1"):
        clusterability_loss(model, 0)


def test_disconnected_network_raises():
    model = mlp()
    with torch.no_grad():
        model.layer1.fc.weight.zero_()
    with pytest.raises(GraphError, match="no path joins an input to an output"):
        clusterability_loss(model, K)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_every_registered_regularizer_builds_from_an_empty_config(name):
    reg = build_regularizer({"name": name})
    assert hasattr(reg, "loss_term")


def test_config_defaults_and_errors():
    reg = from_config({})
    assert (reg.lam, reg.num_eigs, reg.frequency, reg.normalize) == (0.01, 3, 1, True)
    reg = from_config({"lambda": 0.1, "num_eigs": 5, "frequency": 4, "normalize": False})
    assert (reg.lam, reg.num_eigs, reg.frequency, reg.normalize) == (0.1, 5, 4, False)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lam'\]"):
        from_config({"lam": 0.1})
    with pytest.raises(ValueError, match="lambda must be a finite number >= 0.0, got -1"):
        from_config({"lambda": -1})
    with pytest.raises(ValueError, match="num_eigs must be an int >= 1, got 0"):
        from_config({"num_eigs": 0})
    with pytest.raises(ValueError, match="num_eigs must be an int >= 1, got 2.5"):
        from_config({"num_eigs": 2.5})
    with pytest.raises(ValueError, match="frequency must be an int >= 1, got 0"):
        from_config({"frequency": 0})
    with pytest.raises(ValueError, match="normalize must be a bool, got 'yes'"):
        from_config({"normalize": "yes"})
    with pytest.raises(ValueError, match=r"unknown regularizer 'spectral'.*clusterability"):
        build_regularizer({"name": "spectral"})


def test_the_regularizer_graph_uses_each_batch_norms_own_eps():
    model = bn_mlp(seed=4)
    model.layer0.bn.eps = 0.7
    with torch.no_grad():
        model.layer0.bn.running_var[:3] = 1e-4
    edges = weight_graph_edges(model)
    w = model.layer0.fc.weight.detach().numpy()
    bn = model.layer0.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + 0.7)).detach().numpy()
    block = np.abs(w * scale[:, None])  # the layer0 block, written out by hand
    adj = edges.adjacency().toarray()
    n_in = w.shape[1]
    np.testing.assert_allclose(adj[n_in : n_in + w.shape[0], :n_in], block, rtol=1e-12)


def test_a_solver_loaded_with_saved_warm_starts_continues_bit_for_bit():
    # Lanczos starts from the previous call's vectors: a resumed run must get them back
    model = mlp(seed=3, hidden=(30, 30), n_in=20, n_out=5)
    edges = weight_graph_edges(model)
    first = SOLVERS["gram_lanczos"]()
    first.solve(edges, K + 1)
    saved = first.warm_state()
    assert saved and all(isinstance(v, torch.Tensor) for v in saved.values())
    with torch.no_grad():
        model.layer0.fc.weight.mul_(1.01)  # the next training step's graph
    edges = weight_graph_edges(model)
    resumed = SOLVERS["gram_lanczos"]()
    resumed.load_warm_state(saved)
    cold = SOLVERS["gram_lanczos"]()
    lam, y = first.solve(edges, K + 1)
    lam_r, y_r = resumed.solve(edges, K + 1)
    assert torch.equal(lam, lam_r) and torch.equal(y, y_r)
    lam_c, _ = cold.solve(edges, K + 1)
    assert not torch.equal(lam, lam_c)  # a cold start takes other iterations: the last bits differ


def term_and_gradient(model, solver, cache=None) -> tuple[float, torch.Tensor]:
    params = graph_params(model)
    loss = clusterability_loss(model, K, solver=solver, cache=cache)
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.item(), torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("hidden", [480, 512])  # Gram side 490 and 522 nodes: either side of DENSE_LIMIT
def test_the_solver_choice_gives_the_same_term_and_gradient_on_both_sides_of_the_threshold(hidden):
    model = mlp(seed=4, hidden=(hidden, hidden), n_in=64, n_out=10)
    prune(model, 0.9)  # fill 0.1: below GRAM_DENSE_FILL, so size decides
    side = int((weight_graph_edges(model).odd_side()).sum())
    assert (side <= DENSE_LIMIT) == (hidden == 480)
    ref_value, ref_grad = term_and_gradient(model, LaplacianEigensolver("dense"))
    for solver in (
        LaplacianEigensolver("auto"),  # the default: Gram eigh below the limit, Lanczos above
        LaplacianEigensolver("eigsh", dense_limit=side),  # forced Gram eigh
        LaplacianEigensolver("eigsh", dense_limit=side - 1, dense_fill=float("inf")),  # forced Lanczos
        LaplacianEigensolver("torch"),  # the GPU path: the Gram matrix on both sides
    ):
        value, grad = term_and_gradient(model, solver)
        assert solver.method != "torch" or solver._plan.flat is not None
        assert abs(value - ref_value) <= 1e-10 * abs(ref_value)
        assert (grad - ref_grad).norm() <= 1e-10 * ref_grad.norm()


def assert_same_edges(a, b) -> None:
    for name in ("heads", "tails", "keep", "group"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert torch.equal(a.values, b.values)


def test_an_edge_cache_gives_the_edges_built_afresh_and_follows_pruning():
    model = random_batch_norms(build_model({"name": "mlp", "hidden": [8, 8], "batch_norm": True}, (6,), 3))
    cache = EdgeCache()
    first = weight_graph_edges(model, cache=cache)
    with torch.no_grad():
        model.layer0.fc.weight.mul_(1.5)
    moved = weight_graph_edges(model, cache=cache)
    assert moved.pattern is first.pattern  # same zeros: the structure is reused
    assert not torch.equal(moved.values, first.values)
    assert_same_edges(moved, weight_graph_edges(model))
    with torch.no_grad():
        model.layer1.fc.weight[:, 2] = 0  # prune: unit 2 of layer 0 loses its outgoing edges
        model.layer0.bn.weight[4] = 0  # a zero BN scale removes unit 4's incoming edges
    pruned = weight_graph_edges(model, cache=cache)
    assert pruned.pattern is not first.pattern
    assert pruned.values.numel() < first.values.numel() - 8
    assert_same_edges(pruned, weight_graph_edges(model))
    # and the term and its gradient through the cached structure equal the fresh ones
    solver = LaplacianEigensolver("dense")
    cached_value, cached_grad = term_and_gradient(model, solver, cache)
    value, grad = term_and_gradient(model, solver)
    assert cached_value == value and torch.equal(cached_grad, grad)


@pytest.mark.parametrize("hidden", [(9, 7), (9, 7, 8), (9, 7, 8, 6)])
@pytest.mark.parametrize("sparsity", [0.0, 0.7])
def test_the_gram_tiles_cover_every_entry_and_give_the_whole_product(hidden, sparsity):
    # The solver forms B^T B from the tiles where a node group's rows meet its two
    # neighbouring groups; a tile missing a group would drop terms of the product.
    model = mlp(seed=5, hidden=hidden, n_in=11, n_out=4)
    prune(model, sparsity)
    edges = weight_graph_edges(model)
    plan = LaplacianEigensolver("eigsh", dense_fill=0.0)._bipartite_plan(edges)
    assert plan.flat is not None and plan.tiles  # B dense, its Gram matrix from tiles
    rng = np.random.default_rng(0)
    b = np.zeros(plan.shape[0] * plan.shape[1])
    b[plan.flat] = rng.uniform(0.1, 1.0, plan.flat.size)
    b = b.reshape(plan.shape)
    inside = np.zeros(plan.shape, bool)
    for r0, r1, c0, c1 in plan.tiles:
        inside[r0:r1, c0:c1] = True
    assert inside[b != 0].all()
    np.testing.assert_allclose(dense_gram(b, plan.tiles), b.T @ b, rtol=1e-13, atol=1e-15)
    # and the tiles leave out what a layered graph has no entries in, once it has 3 groups a side
    if len(hidden) >= 3:
        assert (~inside).any()


@pytest.mark.parametrize("sparsity, kind", [(0.0, "full"), (0.5, "pos"), (0.9, "edges")])
def test_the_backward_gives_the_same_derivatives_from_torch_tensors_as_from_numpy(sparsity, kind):
    # On CPU the backward runs on numpy views; on a GPU the same formula runs on torch
    # tensors, a path the CPU suite would otherwise never take.
    model = mlp(seed=6, hidden=(40, 30), n_in=20, n_out=4)
    prune(model, sparsity)
    edges = weight_graph_edges(model)
    kinds = {"full" if pos is None and rows is not None else "pos" if rows is not None else "edges"
             for _, _, rows, _, pos in edges.blocks}  # fmt: skip
    assert kinds == {kind}  # each way the backward reads a layer
    lam, y = LaplacianEigensolver("dense").solve(edges, K + 1)
    g = torch.tensor([0.0, 0.3, -0.5, 0.7], dtype=torch.float64)
    heads, tails = edges.ends("cpu")
    from_torch = torch.empty(heads.numel(), dtype=torch.float64)
    _edge_derivatives(lam, y, g, heads, tails, edges.blocks, from_torch)
    blocks = [(e0, e1, r, c, None if p is None else p.numpy()) for e0, e1, r, c, p in edges.blocks]
    from_numpy = np.empty(heads.numel())
    _edge_derivatives(lam.numpy(), y.numpy(), g.numpy(), edges.heads, edges.tails, blocks, from_numpy)
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=1e-13, atol=1e-15)
    # and both are the derivative: the per-edge formula, written out edge by edge
    yh, yt = y.numpy()[edges.heads], y.numpy()[edges.tails]
    one_minus = (1.0 - lam.numpy()) * g.numpy()
    expected = ((yh**2 + yt**2) * one_minus).sum(1) - 2.0 * (yh * yt * g.numpy()).sum(1)
    np.testing.assert_allclose(from_numpy, expected, rtol=1e-12, atol=1e-15)


def test_edge_lists_numbered_across_groups_or_with_repeated_pairs_give_the_dense_answer():
    # weight_graph_edges numbers nodes group by group, without repeats; an EdgeList built
    # by hand may do neither, and then the Gram matrix cannot come from tiles, nor B be
    # written entry by entry (repeats add up).
    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(5), [5, 6, 4, 7, 3])
    group = group[rng.permutation(group.size)]
    n = group.size
    pairs = [(p, q) for p in range(n) for q in range(p + 1, n) if abs(group[p] - group[q]) == 1]
    h, t = (np.array(x) for x in zip(*pairs))
    h, t = np.concatenate([h, h[:5]]), np.concatenate([t, t[:5]])  # five pairs twice
    edges = EdgeList(
        values=torch.from_numpy(rng.uniform(0.1, 1.0, h.size)), heads=h, tails=t, keep=np.ones(n, bool), group=group
    )
    ref = laplacian_eigenvalues(edges, K + 1, LaplacianEigensolver("dense"))
    for method in ("eigsh", "torch"):
        for fill in (0.0, 1.0):
            lam = laplacian_eigenvalues(edges, K + 1, LaplacianEigensolver(method, dense_fill=fill))
            torch.testing.assert_close(lam, ref, rtol=1e-12, atol=1e-14)
    unique = slice(0, h.size - 5)
    edges = EdgeList(edges.values[unique], h[unique], t[unique], edges.keep, group)
    solver = LaplacianEigensolver("eigsh", dense_fill=0.0)
    lam = laplacian_eigenvalues(edges, K + 1, solver)
    assert solver._plan.flat is not None and solver._plan.tiles is None  # dense B, the whole product
    torch.testing.assert_close(
        lam, laplacian_eigenvalues(edges, K + 1, LaplacianEigensolver("dense")), rtol=1e-12, atol=1e-14
    )


def test_an_upstream_gradient_of_either_sign_weights_each_eigenvalue():
    # The term feeds the mean of eigenvalues (one positive weight each) back; other losses
    # may weight them differently, with signs. Central differences against autograd.
    model = mlp(seed=1)
    assert_gap_safe(model)
    c = torch.tensor([0.0, 0.7, -1.3, 0.4], dtype=torch.float64)
    w = model.layer1.fc.weight

    def value():
        return float((laplacian_eigenvalues(weight_graph_edges(model), K + 1) * c).sum())

    (grad,) = torch.autograd.grad((laplacian_eigenvalues(weight_graph_edges(model), K + 1) * c).sum(), [w])
    fd = torch.zeros_like(w)
    with torch.no_grad():
        for i in range(w.numel()):
            orig = w.view(-1)[i].item()
            w.view(-1)[i] = orig + 1e-6
            up = value()
            w.view(-1)[i] = orig - 1e-6
            down = value()
            w.view(-1)[i] = orig
            fd.view(-1)[i] = (up - down) / 2e-6
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)


def test_a_wanted_singular_value_near_zero_falls_back_to_solving_all_of_m():
    # A rank-one layer: the bipartite block has one singular value 1 and the rest near 0,
    # where the rows' half of an eigenvector (B z / sigma) would be noise; the solvers
    # then solve M itself, and agree with the dense solver.
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": []}, (6,), 6).double()
    with torch.no_grad():
        u, v = torch.rand(6, 1, dtype=torch.float64) + 0.5, torch.rand(1, 6, dtype=torch.float64) + 0.5
        model.layer0.fc.weight.copy_(u @ v + 1e-9 * torch.rand(6, 6, dtype=torch.float64))
    edges = weight_graph_edges(model)
    for method in ("eigsh", "torch"):
        solver = LaplacianEigensolver(method, dense_fill=0.0)
        plan = solver._bipartite_plan(edges)
        w = edges.values.detach()
        b = w.new_zeros(plan.shape[0] * plan.shape[1])
        b[torch.from_numpy(plan.flat)] = w
        b = b.view(plan.shape)
        b = b / b.sum(dim=1, keepdim=True).sqrt() / b.sum(dim=0, keepdim=True).sqrt()
        assert bipartite_eigs(b if method == "torch" else b.numpy(), 3, None, tiles=plan.tiles) is None
    params = graph_params(model)

    def term_and_grad(method):
        value = clusterability_loss(model, 2, solver=LaplacianEigensolver(method, dense_fill=0.0))
        return value.item(), torch.autograd.grad(value, list(params.values()))[0]

    ref_value, ref_grad = term_and_grad("dense")
    value, grad = term_and_grad("eigsh")
    assert value == pytest.approx(ref_value, rel=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)
    assert term_and_grad("torch")[0] == pytest.approx(ref_value, rel=1e-12)
