"""The smallest eigenpairs of the normalized Laplacian of an edge list, on CPU or GPU."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh

from nnclust.clustering.spectral import (
    DENSE_LIMIT,
    GRAM_DENSE_FILL,
    GRAM_DENSE_MAX,
    _threadpools,
    bipartite_eigs,
    bipartite_split,
    full_block,
    inverse_sqrt_degree,
    normalize_edges,
)
from nnclust.core import seeding
from nnclust.regularizers.clusterability.edges import EdgeList, symmetric

METHODS = ("auto", "dense", "eigsh", "torch")


class LaplacianEigensolver:
    """The `num` smallest eigenpairs of L = I - D^-1/2 A D^-1/2 of an edge list.

    Methods:

    ``"dense"``
        scipy ``eigh`` of M = D^-1/2 A D^-1/2 as one dense N x N matrix (CPU); the
        reference the others are tested against.
    ``"eigsh"``
        the bipartite reduction, `nnclust.clustering.spectral.bipartite_eigs` (CPU). Edges only
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
        ``torch.linalg.eigh`` on the edge values' device (for CUDA): of the bipartite
        block's Gram matrix when the smaller side has at most GRAM_DENSE_MAX nodes,
        else of dense M.
    ``"auto"``
        ``"torch"`` for CUDA tensors, else ``"eigsh"``.

    The size threshold between a dense eigh of the Gram matrix and Lanczos is
    `dense_limit` nodes on the smaller side (DENSE_LIMIT, 500), or any size from
    `dense_fill` (GRAM_DENSE_FILL) filled blocks. `benchmarks/clusterability_epoch.py`
    measures it for warm-started training solves (one BLAS thread): on dense MLPs the
    dense eigh was 1.8-3.7x faster than Lanczos at every size up to 522 nodes; on
    90%-pruned ones it was faster up to 138 nodes, and from 266 nodes the two were
    within the noise of a loaded machine of each other (Lanczos 0.56-2.0x the dense
    time), so 500 stays. A test pins that the term and gradient on both sides agree
    to 1e-10.

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
        self._plan_of: object = None  # the EdgeList.pattern that `_plan` was derived from
        self._plan: _Plan | None = None

    def warm_state(self) -> dict[str, torch.Tensor]:
        """The Lanczos warm starts as ``{"<operator>:<size>": tensor}``."""
        return {f"{name}:{size}": torch.from_numpy(v.copy()) for (name, size), v in self._warm.items()}

    def load_warm_state(self, saved: dict) -> None:
        self._warm = {}
        for key, v in saved.items():
            name, size = key.rsplit(":", 1)
            self._warm[(name, int(size))] = v.numpy().copy()

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
            return self._torch(values.double(), edges, num)
        w = values.double().cpu().numpy()
        # One BLAS thread: a training step's eigenproblem is small, and on a busy machine
        # threads spinning on it cost more than they save (the 138-node Gram matrix of
        # the digits MLP took 35 ms with two threads on a loaded 2-core machine, 0.8 ms
        # with one); products then also sum in one order whatever the machine.
        with _threadpools().limit(limits=1, user_api="blas"):
            if self.pick(values) == "dense":
                h, t = edges.heads, edges.tails
                mw, s = _normalized(w, h, t, n)
                m = symmetric(mw, h, t, n).toarray()
                mvals, u = scipy.linalg.eigh(m, subset_by_index=[n - num, n - 1])
            else:
                mvals, u, s = self._bipartite(w, edges, num)
        order = np.argsort(-mvals)
        lam = torch.from_numpy(1.0 - mvals[order]).to(device)
        # C order: the backward gathers rows of y.
        y = torch.from_numpy(np.ascontiguousarray(u[:, order] * s[:, None])).to(device)
        return lam, y

    def _torch(self, w: torch.Tensor, edges: EdgeList, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`solve` in torch on the values' device: the bipartite reduction when its Gram
        matrix is formed (n^3 work on the smaller side only: a 1024-node side of the
        2330-node 784-512³ MLP), else ``torch.linalg.eigh`` of the whole dense M."""
        device, n = w.device, edges.n_kept
        plan = self._bipartite_plan(edges)
        if plan.flat is not None:
            flat, rows, cols = plan.indices_on(device)
            b = w.new_zeros(plan.shape[0] * plan.shape[1])
            b[flat] = w
            b = b.view(plan.shape)
            s_rows, s_cols = inverse_sqrt_degree(b.sum(dim=1)), inverse_sqrt_degree(b.sum(dim=0))
            b *= s_rows[:, None]
            b *= s_cols
            found = bipartite_eigs(b, num, None, tiles=plan.tiles)
            if found is not None:
                sigma, top, bottom = found  # sigma ascending
                y = w.new_empty(n, num)
                y[rows], y[cols] = top * s_rows[:, None], bottom * s_cols[:, None]
                return 1.0 - sigma.flip(0), y.flip(1)
        h, t = edges.ends(device)
        degree = torch.zeros(n, dtype=w.dtype, device=device).index_add_(0, h, w).index_add_(0, t, w)
        mw, s = normalize_edges(w, h, t, degree)
        m = torch.zeros(n, n, dtype=w.dtype, device=device)
        m.index_put_((h, t), mw, accumulate=True)  # a pair listed twice adds up, as in `symmetric`
        m.index_put_((t, h), mw, accumulate=True)
        mvals, u = torch.linalg.eigh(m)  # ascending: the largest of M come last
        del m
        return 1.0 - mvals[-num:].flip(0), u[:, -num:].flip(1) * s[:, None]

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

    def _bipartite_plan(self, edges: EdgeList) -> _Plan:
        """What the bipartite solve derives from an edge list's structure, kept while the
        structure (``edges.pattern``) stays the same."""
        if edges.pattern is not None and self._plan_of is edges.pattern:
            return self._plan
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
        shape = (rows_nodes.size, cols_nodes.size)
        flat = r * shape[1] + c
        # B goes into a dense array when `bipartite_eigs` would make it one anyway (at
        # least `dense_fill` full); a sparse B keeps CSR and a sparse product, which on
        # many rows (large inputs) is faster. On a GPU a dense product forms the Gram
        # matrix of any B up to GRAM_DENSE_MAX columns at little cost, and its eigh is
        # always smaller than that of M. Repeated (head, tail) pairs must be summed, which
        # only the CSR path does.
        if self.pick(edges.values) == "torch":
            dense = shape[1] <= GRAM_DENSE_MAX
        else:
            dense = full_block(*shape, h.size, self.dense_fill)
        if dense and np.bincount(flat).max(initial=0) <= 1:
            plan = _Plan(rows_nodes, cols_nodes, shape, flat=flat, tiles=_tiles(edges, rows_nodes, cols_nodes))
        else:
            order = np.lexsort((c, r))  # CSR order: by row, then column
            indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=shape[0]))])
            plan = _Plan(rows_nodes, cols_nodes, shape, order=order, indices=c[order], indptr=indptr)
        self._plan, self._plan_of = plan, edges.pattern
        return plan

    def _bipartite(self, w: np.ndarray, edges: EdgeList, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The `num` largest eigenpairs (unordered) of M = D^-1/2 A D^-1/2 for edge
        values `w`, through the singular values of its bipartite block, and D^-1/2."""
        n, h, t = edges.n_kept, edges.heads, edges.tails
        plan = self._bipartite_plan(edges)
        if plan.flat is not None:
            # The Gram matrix is formed: A's block goes straight into a dense array, where
            # the degrees are its row and column sums and the scaling two broadcasts
            # (on the 784-512³ MLP 3 ms, against 11 ms for the same per edge).
            b = np.zeros(plan.shape[0] * plan.shape[1])
            b[plan.flat] = w
            b = b.reshape(plan.shape)
            s_rows, s_cols = inverse_sqrt_degree(b.sum(axis=1)), inverse_sqrt_degree(b.sum(axis=0))
            b *= s_rows[:, None]
            b *= s_cols
            s = np.empty(n)
            s[plan.rows], s[plan.cols] = s_rows, s_cols
            mw = None
        else:
            mw, s = _normalized(w, h, t, n)
            b = sp.csr_matrix((mw[plan.order], plan.indices, plan.indptr), shape=plan.shape)
        lanczos = lambda op, k: self._lanczos(op, k, "gram")  # noqa: E731
        found = bipartite_eigs(b, num, lanczos, self.dense_limit, self.dense_fill, plan.tiles)
        if found is not None:
            sigma, top, bottom = found
            u = np.empty((n, num))
            u[plan.rows], u[plan.cols] = top, bottom
            return sigma, u, s
        if mw is None:
            mw, s = _normalized(w, h, t, n)
        m = symmetric(mw, h, t, n)
        if n <= self.dense_limit:
            return *scipy.linalg.eigh(m.toarray(), subset_by_index=[n - num, n - 1]), s
        return *self._lanczos(m, num, "m"), s


def _tiles(edges: EdgeList, rows_nodes: np.ndarray, cols_nodes: np.ndarray) -> tuple | None:
    """The `dense_gram` tiles of a bipartite block: edges only join consecutive node
    groups, so the rows of group g reach only the columns of groups g-1 and g+1. Those
    are ranges when each side lists its nodes group by group, as `weight_graph_edges`
    numbers them; for other numberings, None (the whole product)."""
    group = edges.group[edges.keep]
    row_groups, col_groups = group[rows_nodes], group[cols_nodes]
    if (np.diff(row_groups) < 0).any() or (np.diff(col_groups) < 0).any():
        return None
    tiles = []
    for g in np.unique(row_groups):
        r0, r1 = np.searchsorted(row_groups, [g, g + 1])
        c0, c1 = np.searchsorted(col_groups, [g - 1, g + 2])
        tiles.append((int(r0), int(r1), int(c0), int(c1)))
    return tuple(tiles)


def _normalized(w: np.ndarray, h: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(entries of D^-1/2 A D^-1/2, D^-1/2) of an edge list's values `w`."""
    degree = np.bincount(h, w, minlength=n) + np.bincount(t, w, minlength=n)
    return normalize_edges(w, h, t, degree)


@dataclass(frozen=True)
class _Plan:
    """The bipartite block B of an edge list's structure: its rows' and columns' nodes and
    shape, and either (Gram matrix formed densely) each edge's flat position in a dense B
    and the `dense_gram` tiles, or (Lanczos on the operator) CSR order, indices and indptr."""

    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    flat: np.ndarray | None = None
    tiles: tuple | None = None
    order: np.ndarray | None = None
    indices: np.ndarray | None = None
    indptr: np.ndarray | None = None
    copies: dict = field(default_factory=dict)  # device -> (flat, rows, cols) as tensors there

    def indices_on(self, device) -> tuple:
        """(flat, rows, cols) as int64 tensors on `device`, copied there once."""
        if device not in self.copies:
            self.copies[device] = tuple(torch.from_numpy(a).to(device) for a in (self.flat, self.rows, self.cols))
        return self.copies[device]
