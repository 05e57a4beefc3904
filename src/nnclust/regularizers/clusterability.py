"""Clusterability regularizer: the small eigenvalues of the weight graph's normalized Laplacian.

The term is the mean of eigenvalues 2..k+1 (ascending, the first being the trivial 0)
of L = I - D^-1/2 A D^-1/2, where A is the weight graph of `nnclust.graph.build_graph`
with ``normalize=False`` and ``cnn_nodes="full"``: |w| edges for fc layers, kernel L1
norms for conv layers, the flatten summing |w| over a channel's spatial positions, batch
norm folded in as gamma / sqrt(running_var + eps) on each output unit's incoming edges,
and only the components that join inputs to outputs. Small values mean the graph falls
apart into k weakly joined clusters (Cheeger), so adding the term to the loss makes the
network more clusterable.

The edge weights are built from the live parameters as torch tensors, so autograd
carries the chain rule through abs, the batch-norm scale and the conv L1 sums. The
eigenvalues themselves go through `LaplacianEigenvalues`, whose backward is the analytic
eigenvalue derivative. For an edge of weight w between nodes p and q (A_pq = A_qp = w,
so both degrees change), with u the unit eigenvector of eigenvalue lambda and
y = D^-1/2 u, first-order perturbation theory (d lambda = u^T dL u) gives

    d lambda / d w = (1 - lambda) (y_p^2 + y_q^2) - 2 y_p y_q.

So the backward costs O(edges * k) and never forms a dense matrix, whereas autograd
through a dense ``eigh`` costs O(N^3) time and several N x N matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh
from torch import nn

from nnclust import seeding
from nnclust.config import check_keys
from nnclust.graph import GraphError, io_components
from nnclust.models.validate import layer_modules
from nnclust.spectral import DENSE_LIMIT, GRAM_DENSE_FILL, bipartite_eigs, bipartite_split

METHODS = ("auto", "dense", "eigsh", "torch")
CONFIG_KEYS = ("lambda", "num_eigs", "frequency", "normalize")
CONFIG_DEFAULTS = {"lambda": 0.01, "num_eigs": 3, "frequency": 1, "normalize": True}
# Incoming L2 norm that `rescale_hidden_units` gives every hidden unit (He-style scale).
UNIT_NORM = math.sqrt(2.0)


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class EdgeList:
    """The upper triangle of the weight graph over the nodes that join inputs to outputs.

    Attributes
    ----------
    values : (n_edges,) tensor of positive edge weights, differentiable w.r.t. the
        model's fc/conv weights and batch-norm gammas; on the model's device and dtype.
    heads, tails : int64 (n_edges,) numpy arrays, node indices with heads < tails,
        numbered over the kept nodes only (0..n_kept-1).
    keep : bool (n_nodes,), which of all nodes survived component removal.
    group : int (n_nodes,), node group of every node (0 = inputs, g = outputs of layer g-1).
    """

    values: torch.Tensor
    heads: np.ndarray
    tails: np.ndarray
    keep: np.ndarray
    group: np.ndarray

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    def odd_side(self) -> np.ndarray:
        """Bool (n_kept,): the kept nodes in odd node groups. Edges only join consecutive
        groups, so every edge has exactly one end on the odd side (the graph is bipartite)."""
        return (self.group[self.keep] % 2).astype(bool)

    def adjacency(self) -> sp.csr_matrix:
        """(n_kept, n_kept) symmetric CSR adjacency of the current (detached) edge values."""
        w = self.values.detach().double().cpu().numpy()
        return _symmetric(w, self.heads, self.tails, self.n_kept)


def _symmetric(w: np.ndarray, heads: np.ndarray, tails: np.ndarray, n: int) -> sp.csr_matrix:
    rows = np.concatenate([heads, tails])
    cols = np.concatenate([tails, heads])
    return sp.csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n, n))


def _nonzero(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entries of a 2-d tensor that are nonzero: (values (n,), rows (n,), cols (n,)),
    row-major, values still attached to autograd."""
    flat = torch.nonzero(block.detach().reshape(-1)).squeeze(1)
    # index_select's backward is an index_add, much cheaper than the sorting
    # accumulate-index_put behind block[rows, cols].
    return block.reshape(-1).index_select(0, flat), flat // block.shape[1], flat % block.shape[1]


def _layer_edges(model: nn.Module, masks: dict | None) -> tuple[list, int]:
    """Per layer, its edges (values, rows = output unit, cols = input unit) in row-major
    order and the number of its output units; and the number of input nodes.

    The same arithmetic as `nnclust.graph.fold_batch_norm` + `edge_blocks`, which work on
    detached numpy arrays; here the values must stay in the autograd graph of the
    parameters. The graph-equality test pins the two against each other. Zero entries
    (pruned weights, all-zero kernels, a zero BN scale) are absent edges, as in
    `nnclust.graph.assemble`; their weights get zero gradient since d|w|/dw = 0 at 0.
    """
    layers = []
    mods = layer_modules(model)
    for i, m in enumerate(mods):
        w = m.linear.weight
        if masks is not None and f"{m.linear_key}.weight" in masks:
            mask = masks[f"{m.linear_key}.weight"]
            w = w * mask.to(device=w.device, dtype=w.dtype)
        scale = None
        if m.bn is not None:
            if m.bn.weight is None or m.bn.running_var is None:
                raise GraphError(f"batch norm '{m.bn_key}' needs affine=True and running statistics")
            scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
        after_conv = i > 0 and mods[i - 1].kind == "conv"
        if m.kind == "fc" and not after_conv:
            # One edge per nonzero weight: pick those before any arithmetic, so that the
            # work and the backward scale with the unpruned weights, not the dense shape.
            values, rows, cols = _nonzero(w)
            if scale is not None:
                values = values * scale.index_select(0, rows)
                nonzero = values.detach() != 0
                values, rows, cols = values[nonzero], rows[nonzero], cols[nonzero]
            values = values.abs()
        else:
            if scale is not None:
                w = w * scale.reshape((-1,) + (1,) * (w.dim() - 1))
            w = w.abs()
            if m.kind == "conv":
                block = w.sum(dim=(2, 3))
            else:
                # The flatten lays out each channel's spatial positions contiguously.
                block = w.reshape(w.shape[0], mods[i - 1].linear.out_channels, -1).sum(dim=2)
            values, rows, cols = _nonzero(block)
        layers.append((values, rows.cpu().numpy(), cols.cpu().numpy(), w.shape[0]))
    first = mods[0].linear
    n_inputs = first.in_channels if mods[0].kind == "conv" else first.in_features
    return layers, int(n_inputs)


def weight_graph_edges(model: nn.Module, masks: dict | None = None) -> EdgeList:
    """The edge list of `model`'s weight graph, restricted to components joining inputs
    to outputs (the graph of ``build_graph(extract_layers(model), normalize=False)``).

    `masks` maps ``<linear_key>.weight`` to a 0/1 tensor shaped like that weight; masked
    entries are treated as pruned (zero) even where the weight is not yet zero.

    Raises
    ------
    GraphError
        when no path joins an input to an output.
    """
    layers, n_inputs = _layer_edges(model, masks)
    sizes = [n_inputs] + [n_out for *_, n_out in layers]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = torch.cat([v for v, *_ in layers])
    heads = np.concatenate([cols + offsets[g] for g, (_, _, cols, _) in enumerate(layers)]).astype(np.int64)
    tails = np.concatenate([rows + offsets[g + 1] for g, (_, rows, _, _) in enumerate(layers)]).astype(np.int64)
    n = int(offsets[-1])
    group = np.repeat(np.arange(len(sizes)), sizes)
    # Component labels need only the sparsity pattern, and io_components treats the
    # graph as undirected, so the lower triangle suffices. The tails (rows) are already
    # sorted, so it is a CSR matrix as it stands. (`graph.assemble` builds the whole
    # symmetric adjacency, in an order not tied to the torch edge values.)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(tails, minlength=n))])
    lower = sp.csr_matrix((np.ones(heads.size), heads, indptr), shape=(n, n))
    keep = io_components(lower, group)
    if not keep.any():
        raise GraphError(
            "no path joins an input to an output: the network is disconnected (pruned too far, or dead layers)"
        )
    # Both ends of an edge lie in one component, so keeping the head keeps the edge.
    edge_kept = keep[heads]
    new_index = np.cumsum(keep) - 1
    if not edge_kept.all():
        values = values.index_select(0, torch.from_numpy(np.flatnonzero(edge_kept)).to(values.device))
        heads, tails = heads[edge_kept], tails[edge_kept]
    return EdgeList(values=values, heads=new_index[heads], tails=new_index[tails], keep=keep, group=group)


# ------------------------------------------------------------------ eigen-solve


class LaplacianEigensolver:
    """The `num` smallest eigenpairs of L = I - D^-1/2 A D^-1/2 of an edge list.

    Methods:

    ``"dense"``
        scipy ``eigh`` of M = D^-1/2 A D^-1/2 as one dense N x N matrix (CPU); the
        reference the others are tested against.
    ``"eigsh"``
        the bipartite reduction, `nnclust.spectral.bipartite_eigs` (CPU). Edges only
        join consecutive layers, so even and odd layers form the two sides of a
        bipartite graph, M = [[0, B], [B^T, 0]], whose largest eigenpairs come from the
        Gram matrix B^T B over the smaller side: densely when that side has at most
        `dense_limit` nodes or B is at least `dense_fill` full, else by Lanczos on the
        operator x -> B^T (B x). Against Lanczos on M this takes about a third of the
        time (29 ms against 86 ms on the 2330-node pruned MLP of the benchmark). When
        the smaller side has too few nodes, or a wanted sigma is near 0, M itself is
        solved (densely up to `dense_limit` nodes, else by Lanczos). Shift-invert is
        not used: the sparse LU of M - I costs more than all Lanczos iterations
        together (1.2 s on the same graph).
    ``"torch"``
        ``torch.linalg.eigh`` of dense M on the edge values' device (for CUDA).
    ``"auto"``
        ``"torch"`` for CUDA tensors, else ``"eigsh"``.

    Lanczos starts from the previous call's eigenvectors when the operator has the
    same size: during training the graph moves little between steps, and the warm start
    saves about a fifth of the iterations.
    """

    def __init__(
        self, method: str = "auto", dense_limit: int = DENSE_LIMIT, seed: int = 0, dense_fill: float = GRAM_DENSE_FILL
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        self.method = method
        self.dense_limit = int(dense_limit)
        self.dense_fill = float(dense_fill)
        self.seed = seed
        self._warm: dict[tuple[str, int], np.ndarray] = {}  # (operator, size) -> start vector

    def pick(self, values: torch.Tensor) -> str:
        if self.method != "auto":
            return self.method
        return "torch" if values.is_cuda else "eigsh"

    def solve(self, edges: EdgeList, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (num,) ascending and y = D^-1/2 U (n_kept, num), float64 on the
        edge values' device."""
        values, n = edges.values.detach(), edges.n_kept
        device = values.device
        if self.pick(values) == "torch":
            w = values.double()
            h, t = (torch.from_numpy(a).to(device) for a in (edges.heads, edges.tails))
            degree = torch.zeros(n, dtype=w.dtype, device=device).index_add_(0, h, w).index_add_(0, t, w)
            s = degree.rsqrt()
            m = torch.zeros(n, n, dtype=w.dtype, device=device)
            m[h, t] = m[t, h] = w * s[h] * s[t]
            mvals, u = torch.linalg.eigh(m)  # ascending: the largest of M come last
            del m
            return 1.0 - mvals[-num:].flip(0), u[:, -num:].flip(1) * s[:, None]
        w = values.double().cpu().numpy()
        h, t = edges.heads, edges.tails  # int64 (n_edges,)
        degree = np.bincount(h, w, minlength=n) + np.bincount(t, w, minlength=n)
        s = 1.0 / np.sqrt(degree)
        mw = w * s[h] * s[t]
        if self.pick(values) == "dense":
            m = _symmetric(mw, h, t, n).toarray()
            mvals, u = scipy.linalg.eigh(m, subset_by_index=[n - num, n - 1])
        else:
            mvals, u = self._bipartite(mw, edges, num)
        order = np.argsort(-mvals)
        lam = torch.from_numpy(1.0 - mvals[order]).to(device)
        # C order: the backward gathers rows of y.
        y = torch.from_numpy(np.ascontiguousarray(u[:, order] * s[:, None])).to(device)
        return lam, y

    def _lanczos(self, op, num: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The `num` largest eigenpairs of a symmetric operator, warm-started per (name, size)."""
        size = op.shape[0]
        v0 = self._warm.get((name, size))
        if v0 is None:
            v0 = seeding.rng(self.seed, f"clusterability.{name}").uniform(-1, 1, size)
        vals, vecs = eigsh(op, k=num, which="LA", v0=v0)
        # The sum of the eigenvectors has weight on each of them; a little noise keeps it
        # out of an exactly invariant subspace, where Lanczos would break down.
        self._warm[(name, size)] = vecs.sum(axis=1) + seeding.rng(self.seed, "clusterability.warm").uniform(
            -1e-3, 1e-3, size
        )
        return vals, vecs

    def _bipartite(self, mw: np.ndarray, edges: EdgeList, num: int) -> tuple[np.ndarray, np.ndarray]:
        """The `num` largest eigenpairs (unordered) of M with off-diagonal entries `mw`,
        through the singular values of its bipartite block."""
        n, h, t = edges.n_kept, edges.heads, edges.tails
        rows_nodes, cols_nodes = bipartite_split(edges.odd_side())
        cols_side = np.zeros(n, bool)
        cols_side[cols_nodes] = True
        pos = np.empty(n, np.int64)
        pos[rows_nodes] = np.arange(rows_nodes.size)
        pos[cols_nodes] = np.arange(cols_nodes.size)
        head_in_cols = cols_side[h]
        r = pos[np.where(head_in_cols, t, h)]
        c = pos[np.where(head_in_cols, h, t)]
        b = sp.csr_matrix((mw, (r, c)), shape=(rows_nodes.size, cols_nodes.size))
        found = bipartite_eigs(b, num, lambda op, k: self._lanczos(op, k, "gram"), self.dense_limit, self.dense_fill)
        if found is not None:
            sigma, top, bottom = found
            u = np.empty((n, num))
            u[rows_nodes], u[cols_nodes] = top, bottom
            return sigma, u
        m = _symmetric(mw, h, t, n)
        if n <= self.dense_limit:
            return scipy.linalg.eigh(m.toarray(), subset_by_index=[n - num, n - 1])
        return self._lanczos(m, num, "m")


class LaplacianEigenvalues(torch.autograd.Function):
    """values (n_edges,) -> the `num` smallest normalized-Laplacian eigenvalues (num,).

    Backward: d lambda_j / d w_pq = (1 - lambda_j)(y_pj^2 + y_qj^2) - 2 y_pj y_qj with
    y = D^-1/2 u_j, summed against the incoming gradient; O(n_edges * num) time and memory.
    Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, values, edges, num, solver):
        lam, y = solver.solve(edges, num)
        ctx.save_for_backward(lam, y)
        ctx.ends = tuple(torch.from_numpy(a).to(values.device) for a in (edges.heads, edges.tails))
        return lam.to(values.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        lam, y = ctx.saved_tensors
        g = grad.to(lam.dtype)
        heads, tails = ctx.ends
        # sum_j g_j (1 - lambda_j) (y_pj^2 + y_qj^2) splits into a per-node sum a_p + a_q.
        a = (y * y) @ (g * (1.0 - lam))  # (n,)
        cross = (y * g).index_select(0, heads) * y.index_select(0, tails)  # (n_edges, num)
        dvalues = a.index_select(0, heads) + a.index_select(0, tails) - 2.0 * cross.sum(dim=1)
        return dvalues.to(grad.dtype), None, None, None


def laplacian_eigenvalues(edges: EdgeList, num: int, solver: LaplacianEigensolver | None = None) -> torch.Tensor:
    """The `num` smallest eigenvalues (num,) of the normalized Laplacian of `edges`,
    ascending, differentiable w.r.t. ``edges.values``."""
    n = edges.n_kept
    if num >= n:
        raise ValueError(
            f"{num} eigenvalues need a graph of more than {num} nodes; this one has {n} after removing "
            "units that do not join inputs to outputs"
        )
    return LaplacianEigenvalues.apply(edges.values, edges, num, solver or LaplacianEigensolver())


def clusterability_loss(
    model: nn.Module,
    num_eigs: int,
    masks: dict | None = None,
    solver: LaplacianEigensolver | None = None,
) -> torch.Tensor:
    """Mean of eigenvalues 2..num_eigs+1 of the weight graph's normalized Laplacian.

    A scalar tensor in [0, 2], on the model's device and dtype, differentiable w.r.t.
    the fc/conv weights and batch-norm gammas (the caller multiplies by lambda).
    Units that do not join inputs to outputs, and pruned (zero or masked) weights, get
    exactly zero gradient. Pass a `solver` kept across calls to warm-start the sparse
    eigen-solve.

    Raises
    ------
    ValueError
        when num_eigs < 1 or num_eigs + 1 >= the number of kept nodes.
    GraphError
        when no path joins an input to an output.
    """
    if isinstance(num_eigs, bool) or not isinstance(num_eigs, (int, np.integer)) or num_eigs < 1:
        raise ValueError(f"num_eigs must be an int >= 1, got {num_eigs!r}")
    edges = weight_graph_edges(model, masks)
    lam = laplacian_eigenvalues(edges, int(num_eigs) + 1, solver)
    return lam[1:].mean()


# ------------------------------------------------------------------ rescaling


@torch.no_grad()
def rescale_hidden_units(model: nn.Module, norm: float = UNIT_NORM) -> None:
    """Give every hidden unit incoming parameters of L2 norm `norm`, in place, moving
    the factor onto its outgoing weights; the network function is unchanged.

    ReLU(a x) = a ReLU(x) for a > 0 (max-pool and dropout commute with a, too), so
    dividing a unit's incoming parameters by a and multiplying what the next layer reads
    from it by a leaves every output as it was. A unit's incoming parameters are its
    weights and bias, or, for a unit followed by batch norm, the BN affine pair
    (gamma, beta): BN output does not scale with the pre-BN weights (in eval mode it
    would not even be a pure rescale because of eps), but gamma and beta scale it
    exactly. Across a conv -> fc flatten, channel c feeds the contiguous block
    c*H*W..(c+1)*H*W-1 of the fc inputs. Layers are processed from the input, so that
    the factor moved into layer i+1 is normalized away in its own turn. Units with
    zero norm, and batch norms without affine parameters, are left as they are.
    """
    mods = layer_modules(model)
    for m, nxt in zip(mods, mods[1:]):
        if m.bn is not None:
            if m.bn.weight is None:
                continue
            incoming = [m.bn.weight.unsqueeze(1)] + ([m.bn.bias.unsqueeze(1)] if m.bn.bias is not None else [])
        else:
            w = m.linear.weight
            incoming = [w.view(w.shape[0], -1)]
            if m.linear.bias is not None:
                incoming.append(m.linear.bias.unsqueeze(1))
        current = torch.sqrt(sum((p * p).sum(dim=1) for p in incoming))
        factor = torch.where(current > 0, current / norm, torch.ones_like(current))
        for p in incoming:
            p.div_(factor.unsqueeze(1))  # views: divides the parameters in place
        w_next = nxt.linear.weight
        n = factor.numel()
        if nxt.kind == "conv":
            w_next.mul_(factor.reshape(1, n, 1, 1))
        else:
            # conv -> fc reads H*W flattened inputs per channel; fc -> fc reads one.
            w_next.mul_(factor.repeat_interleave(w_next.shape[1] // n).unsqueeze(0))


# ------------------------------------------------------------------ callback


def _check_number(name: str, value, low: float, integer: bool = False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < low:
        kind = "an int" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


class ClusterabilityRegularizer:
    """Training callback adding lam * `clusterability_loss` every `frequency` steps.

    ``loss_term(state)`` returns the term (a scalar tensor) when ``state.step %
    frequency == 0``, else None. ``on_epoch_end`` puts the mean term value of the
    epoch's applications in ``state.metrics["cluster_term"]``.

    With `normalize`, `rescale_hidden_units` runs in ``on_step_end`` and
    ``on_epoch_end`` whenever the next step applies the term, i.e. after the optimizer
    step and any pruning and before the next forward pass. It cannot run inside
    ``loss_term``: the step's forward pass has already saved the weights for backward,
    and changing them in place would invalidate that. The very first application
    (step 0) therefore sees the weights as initialized, unless `rescale_hidden_units`
    is called on the model before training.
    """

    def __init__(
        self, lam: float = 0.01, num_eigs: int = 3, frequency: int = 1, normalize: bool = True, method: str = "auto"
    ):
        self.lam = _check_number("lambda", lam, 0.0)
        self.num_eigs = _check_number("num_eigs", num_eigs, 1, integer=True)
        self.frequency = _check_number("frequency", frequency, 1, integer=True)
        if not isinstance(normalize, (bool, np.bool_)):
            raise ValueError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = bool(normalize)
        self.solver = LaplacianEigensolver(method)
        self.last: float | None = None  # value of the last term added
        self.history: list[tuple[int, float]] = []  # (step, term value) of every application
        self._epoch: list[float] = []

    def loss_term(self, state) -> torch.Tensor | None:
        if state.step % self.frequency:
            return None
        term = self.lam * clusterability_loss(state.model, self.num_eigs, solver=self.solver)
        self.last = float(term.detach())
        self.history.append((state.step, self.last))
        self._epoch.append(self.last)
        return term

    def _rescale_if_due(self, state) -> None:
        if self.normalize and state.step % self.frequency == 0:
            rescale_hidden_units(state.model)

    def on_step_end(self, state) -> None:
        self._rescale_if_due(state)

    def on_epoch_end(self, state) -> None:
        # Pruning at the epoch end may have changed incoming norms since on_step_end.
        self._rescale_if_due(state)
        if self._epoch:
            state.metrics["cluster_term"] = float(np.mean(self._epoch))
        self._epoch = []


def from_config(cfg: dict) -> ClusterabilityRegularizer:
    """Build the callback from ``{"lambda", "num_eigs", "frequency", "normalize"}``
    (defaults 0.01, 3, 1, True); unknown keys and bad values raise ValueError."""
    check_keys("regularizer (clusterability)", cfg, CONFIG_KEYS)
    c = {**CONFIG_DEFAULTS, **cfg}
    return ClusterabilityRegularizer(c["lambda"], c["num_eigs"], c["frequency"], c["normalize"])
