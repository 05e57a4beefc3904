"""How much of a network's permutation symmetry a sparsity mask leaves (pure functions).

The hidden units of a dense layer are interchangeable: permuting them (with their
incoming and outgoing weights) gives the same function, so an L-hidden-layer, N-wide
dense net has N!^L equivalent orderings. A mask keeps the permutations of hidden units,
each within its layer, that map the mask onto itself; inputs and outputs carry meaning
and stay fixed. Their number is the order of the automorphism group of the masked
network's layered graph, coloured so that each input and each output is its own colour
and the hidden units of a layer share one (`count_symmetries`, exact).

Units with the same incoming *and* outgoing pattern (twins) swap freely, which gives
the per-layer product prod_k c_k! over groups of identical patterns of sizes c_k
(`layer_symmetries`). It is only a lower bound: a permutation may also swap units a <-> b
of one layer together with their children c <-> d in the next, where no two of the four
are twins. The exact count is that product times the automorphisms of the graph with
each group of twins collapsed to one unit.

*Zeroed* units (no incoming or no outgoing connection) are fixed by default: each is
its own colour, as if it were an input, so the count measures the symmetry among the
units that compute something. ``zeroed="free"`` lets them move like any other unit
(k isolated units of a layer add k! orderings).

Masks are given as a list of bool arrays in forward order, shaped like the weights:
(out, in) for fc, (out, in, kh, kw) for conv; an fc after a conv takes the conv's
channels flattened channel-major, (C, H, W) -> C*H*W, as ``Tensor.flatten`` does. A conv
unit is a channel; a permutation moves a channel's whole kernels (and an fc after it
moves the channel's H*W inputs together), so two connections match only when their
kernel (or position) patterns do.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from nnclust.structure.connectivity import backward_reach, forward_reach

LOG10_E = 1.0 / math.log(10.0)
ZEROED = ("fixed", "free")


def _as_list(masks) -> list[np.ndarray]:
    if isinstance(masks, Mapping):
        masks = list(masks.values())
    out = []
    for m in masks:
        m = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
        if m.ndim not in (2, 4):
            raise ValueError(f"masks must be 2-D (fc) or 4-D (conv) arrays, got shape {m.shape}")
        out.append(m.astype(bool))
    return out


def _labelled_blocks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Per layer a bool (n_out, n_in_units, k) array: unit-to-unit connections, each with
    its pattern of k entries (a conv kernel's kh*kw, an fc-after-conv channel's H*W
    positions, 1 for an fc after an fc). Raises if consecutive masks do not chain."""
    blocks = []
    for i, m in enumerate(masks):
        n_units = masks[i - 1].shape[0] if i else None
        if m.ndim == 4:
            if i and m.shape[1] != n_units:
                raise ValueError(
                    f"a conv mask with {m.shape[1]} input channels follows a layer of {n_units} units "
                    f"(mask {i} of shape {m.shape}); give the masks in forward order, one per weight layer"
                )
            blocks.append(m.reshape(m.shape[0], m.shape[1], -1))
        elif i and masks[i - 1].ndim == 4:
            if m.shape[1] % n_units:
                raise ValueError(
                    f"an fc mask with {m.shape[1]} inputs follows a layer of {n_units} units (mask {i}): "
                    f"after a conv of C channels an fc reads C*H*W inputs; give the masks in forward order"
                )
            blocks.append(m.reshape(m.shape[0], n_units, -1))
        else:
            if i and m.shape[1] != n_units:
                raise ValueError(
                    f"an fc mask with {m.shape[1]} inputs follows a layer of {n_units} units (mask {i}): "
                    f"each fc mask is (out, in) with in = the previous layer's out; give the masks in forward order"
                )
            blocks.append(m[:, :, None])
    return blocks


def _patterns(blocks: list[np.ndarray], g: int) -> tuple[np.ndarray, np.ndarray]:
    """Hidden layer `g` (the outputs of block g): (n_units, *) incoming and outgoing patterns."""
    n_units = blocks[g].shape[0]
    incoming = blocks[g].reshape(n_units, -1)
    outgoing = blocks[g + 1].transpose(1, 0, 2).reshape(n_units, -1)
    return incoming, outgoing


def _twins(incoming: np.ndarray, outgoing: np.ndarray, zeroed: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of units with identical incoming and outgoing patterns.

    Returns (representative unit of each group (its first unit), group sizes, whether the
    group is a fixed zeroed unit), in the order of the representatives. With
    ``zeroed="fixed"`` each zeroed unit is a group of its own, never merged.
    """
    n = incoming.shape[0]
    alive = incoming.any(1) & outgoing.any(1)
    pooled = np.ones(n, bool) if zeroed == "free" else alive
    idx = np.flatnonzero(pooled)
    if idx.size:
        # Packed bytes make the row comparison in np.unique 8x cheaper for wide layers.
        patterns = np.packbits(np.concatenate([incoming[idx], outgoing[idx]], axis=1), axis=1)
        _, first, counts = np.unique(patterns, axis=0, return_index=True, return_counts=True)
        reps, sizes = idx[first], counts
    else:
        reps, sizes = np.zeros(0, int), np.zeros(0, int)
    lone = np.flatnonzero(~pooled)
    reps = np.concatenate([reps, lone]).astype(int)
    sizes = np.concatenate([sizes, np.ones(lone.size, int)]).astype(int)
    fixed = np.arange(reps.size) >= reps.size - lone.size
    order = np.argsort(reps)  # groups in unit order: a layer without twins keeps its own order
    return reps[order], sizes[order], fixed[order]


def log10_factorial(n) -> np.ndarray:
    """log10(n!) through log-gamma, exact enough and finite for any width."""
    return np.array([math.lgamma(int(k) + 1) * LOG10_E for k in np.ravel(n)]).reshape(np.shape(n))


def unit_symmetry(incoming: np.ndarray, outgoing: np.ndarray) -> dict:
    """Twin statistics of one group of units (zeroed units fixed).

    Parameters
    ----------
    incoming : bool (n_units, a), each unit's incoming pattern.
    outgoing : bool (n_units, b), each unit's outgoing pattern.

    Returns
    -------
    ``total_units``, ``zeroed_units`` (no incoming or no outgoing connection),
    ``unique_units`` (distinct patterns among the others), ``group_sizes`` (sizes of
    the groups of identical patterns, descending) and ``log10_symmetries_lower_bound``
    (log10 of prod (group size)!: the swaps of twins alone, a lower bound on the count).
    """
    n = incoming.shape[0]
    _, sizes, fixed = _twins(incoming, outgoing, "fixed")
    counts = sizes[~fixed]
    return {
        "total_units": int(n),
        "zeroed_units": int(fixed.sum()),
        "unique_units": int(len(counts)),
        "group_sizes": sorted((int(c) for c in counts), reverse=True),
        "log10_symmetries_lower_bound": float(log10_factorial(counts).sum()),
    }


def layer_symmetries(masks) -> list[dict]:
    """`unit_symmetry` of every hidden group: the outputs of each layer but the last."""
    blocks = _labelled_blocks(_as_list(masks))
    return [unit_symmetry(*_patterns(blocks, g)) for g in range(len(blocks) - 1)]


def _quotient_graph(blocks: list[np.ndarray], zeroed: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The layered graph with each group of twins collapsed to one vertex.

    Returns (prod of group sizes' factorials as an exact int, vertex colours (int array),
    edge sources, edge targets). A vertex's colour says what an automorphism may map it
    to: an input or output only to itself, a fixed zeroed unit only to itself, a group of
    twins to a group of the same layer and size. Where a layer's connections carry
    different patterns (conv kernels), each connection becomes a vertex coloured by its
    pattern, joined to both ends, so that only connections of equal pattern map onto
    each other.
    """
    keys: dict = {}

    def colour(key) -> int:
        return keys.setdefault(key, len(keys))

    n_layers = len(blocks)
    sel = [np.arange(blocks[0].shape[1])]  # inputs: all kept, each its own colour
    colours = [[colour(("input", int(i))) for i in sel[0]]]
    factor = 1
    for g in range(n_layers - 1):
        reps, sizes, fixed = _twins(*_patterns(blocks, g), zeroed)
        factor *= math.prod(math.factorial(int(c)) for c in sizes)
        sel.append(reps)
        colours.append(
            [colour(("fixed", g, int(r)) if f else ("hidden", g, int(c))) for r, c, f in zip(reps, sizes, fixed)]
        )
    sel.append(np.arange(blocks[-1].shape[0]))
    colours.append([colour(("output", int(o))) for o in sel[-1]])
    offsets = np.cumsum([0] + [len(s) for s in sel])
    src, dst, extra = [], [], []
    n_vertices = int(offsets[-1])
    for g, block in enumerate(blocks):
        q = block  # (n_out, n_in, k) between kept vertices, in their order; a copy only if needed
        if not np.array_equal(sel[g + 1], np.arange(block.shape[0])):
            q = q[sel[g + 1]]
        if not np.array_equal(sel[g], np.arange(block.shape[1])):
            q = q[:, sel[g]]
        out_idx, in_idx = np.nonzero(q[:, :, 0] if q.shape[2] == 1 else q.any(-1))
        a, b = in_idx + offsets[g], out_idx + offsets[g + 1]
        label_ids = np.zeros(a.size, np.int64)
        if q.shape[2] > 1:
            _, label_ids = np.unique(np.packbits(q[out_idx, in_idx], axis=1), axis=0, return_inverse=True)
            label_ids = label_ids.ravel()
        if label_ids.size and label_ids.max() > 0:  # patterns differ: one vertex per connection
            mid = n_vertices + np.arange(a.size)
            n_vertices += a.size
            extra.append([colour(("connection", g, int(lab))) for lab in label_ids])
            src += [a, mid]
            dst += [mid, b]
        else:
            src.append(a)
            dst.append(b)
    flat = [c for group in colours + extra for c in group]
    edges = (np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64))
    return factor, np.asarray(flat, np.int64), *edges


def _refine(owner: np.ndarray, nbr: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Colour refinement: split cells by the multiset of neighbour cells until stable.

    `owner`, `nbr`: both directions of every edge. A multiset is summarised by two sums
    of random 26-bit values, one per neighbour cell: integers below 2^53, so float64
    `bincount` adds them exactly and in any order, the result depends on the graph alone,
    and every automorphism maps each cell to itself. Two different multisets could share
    both sums (probability ~2^-52 a pair); that can only merge cells, and
    `_is_equitable` checks the outcome where it matters.
    """
    rng = np.random.default_rng(0)  # the values only set the odds of a shared sum
    n = cells.size
    _, cells = np.unique(cells, return_inverse=True)
    cells = cells.ravel()
    k = int(cells.max()) + 1 if n else 0
    while True:
        # a value per vertex first: gathering from n entries is far cheaper than per edge
        sums = [np.bincount(owner, weights=rng.integers(0, 2**26, size=k).astype(np.float64)[cells][nbr], minlength=n)
                for _ in range(2)]  # fmt: skip
        _, new = np.unique(np.stack([cells.astype(np.float64), *sums], 1), axis=0, return_inverse=True)
        new = new.ravel()
        k_new = int(new.max()) + 1 if n else 0
        if k_new == k:
            return cells
        cells, k = new, k_new


def _is_equitable(owner: np.ndarray, nbr: np.ndarray, cells: np.ndarray) -> bool:
    """Whether every vertex of a cell has the same number of neighbours in each cell
    (exact integer comparison of each vertex's row against its cell's first vertex)."""
    n = cells.size
    if not n:
        return True
    k = int(cells.max()) + 1
    keys, counts = np.unique(owner * k + cells[nbr], return_counts=True)  # sorted by vertex, then cell
    vertex, cell = keys // k, keys % k
    start = np.searchsorted(vertex, np.arange(n))
    length = np.searchsorted(vertex, np.arange(n), side="right") - start
    _, first = np.unique(cells, return_index=True)
    rep = first[cells]
    if np.any(length != length[rep]):
        return False
    within = np.arange(keys.size) - np.repeat(start, length)
    mirror = np.repeat(start[rep], length) + within
    return bool(np.array_equal(cell, cell[mirror]) and np.array_equal(counts, counts[mirror]))


def _automorphisms(colours: np.ndarray, src: np.ndarray, dst: np.ndarray) -> int:
    """Order of the automorphism group of a vertex-coloured undirected graph (exact int).

    Colour refinement first: in an equitable partition a vertex alone in its cell is
    fixed by every automorphism and its edges to any cell are all-or-none, so such
    vertices can be dropped without changing the group; a mask without symmetry leaves
    nothing. What is left goes to BLISS through igraph rather than nauty (pynauty), as
    measured on random masks of 784-1024-1024-1024-10 and 784-4096-4096-4096-10 nets at
    50-99% sparsity, the whole graph given to each: BLISS took 0.02-0.9 s, nauty 0.06-1.0 s;
    on 4096 interchangeable vertices BLISS took 25 s, nauty 174 s; and BLISS gives the
    order as an exact integer, nauty as a float mantissa and a power of ten.
    """
    n = colours.size
    owner, nbr = np.concatenate([src, dst]), np.concatenate([dst, src])
    cells = _refine(owner, nbr, colours)
    sizes = np.bincount(cells)
    if sizes.size == n:  # every vertex alone in its cell: only the identity (the usual case)
        return 1
    if _is_equitable(owner, nbr, cells):
        keep = np.flatnonzero(sizes[cells] > 1)
    else:  # a shared hash sum: the cells are still invariant, but none may be dropped
        keep = np.arange(n)
    if not keep.size:
        return 1
    index = np.full(n, -1, np.int64)
    index[keep] = np.arange(keep.size)
    both = (index[src] >= 0) & (index[dst] >= 0)
    a, b = index[src[both]], index[dst[both]]
    _, sub_colours = np.unique(cells[keep], return_inverse=True)

    import igraph  # here: an exact count is the only user, and scripts start without it

    graph = igraph.Graph(n=int(keep.size), edges=list(zip(a.tolist(), b.tolist())))
    # BLISS returns the order as a decimal string, which Python turns into an int; a group
    # of 4096! elements has 13020 digits, past the default limit of 4300.
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return int(graph.count_automorphisms(color=sub_colours.ravel().tolist()))
    finally:
        sys.set_int_max_str_digits(limit)


def _check_zeroed(zeroed: str) -> str:
    if zeroed not in ZEROED:
        raise ValueError(f"zeroed must be one of {list(ZEROED)} (how units without connections count), got {zeroed!r}")
    return zeroed


def count_symmetries(masks, zeroed: str = "fixed") -> int:
    """The number of permutations of hidden units, each within its layer, that map every
    mask onto itself, inputs and outputs fixed (an exact Python int; it can have tens of
    thousands of digits, so results store `log10_int` of it).

    `masks`: a list (or a dict in layer order) of bool arrays, see the module docstring.
    `zeroed`: ``"fixed"`` (a unit without incoming or outgoing connections stays where it
    is) or ``"free"`` (it moves like any unit with its pattern).
    """
    zeroed = _check_zeroed(zeroed)
    blocks = _labelled_blocks(_as_list(masks))
    if len(blocks) < 2:
        return 1  # no hidden layer, nothing to permute
    factor, colours, src, dst = _quotient_graph(blocks, zeroed)
    return factor * _automorphisms(colours, src, dst)


def log10_int(n: int) -> float:
    """log10 of a positive Python int of any size (``math.log10`` reads ints exactly
    past the float range)."""
    if n < 1:
        raise ValueError(f"log10_int takes a positive int, got {n}")
    return math.log10(n)


def num_digits(n: int) -> int:
    """Decimal digits of a positive int, without converting it to a string."""
    d = int(log10_int(n)) + 1
    while 10**d <= n:  # the float log can sit a hair off near a power of ten
        d += 1
    while d > 1 and 10 ** (d - 1) > n:
        d -= 1
    return d


def _unit_blocks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """(n_out, n_in) unit-to-unit patterns: a conv kernel or an fc's per-channel inputs
    count as one edge if any entry is kept."""
    return [b.any(-1) for b in _labelled_blocks(masks)]


def effective_masks(masks) -> list[np.ndarray]:
    """The masks with every connection that lies on no input-to-output path removed.

    A unit ablated by an earlier layer (no path from any input) ablates what it feeds,
    and a unit that reaches no output makes its incoming connections useless. A
    connection u -> v is on such a path exactly when u is reached from the inputs and v
    reaches the outputs (`structure.connectivity`'s forward and backward reach).
    """
    masks = _as_list(masks)
    blocks = [b.astype(np.float64) for b in _unit_blocks(masks)]
    fed, feeds = forward_reach(blocks), backward_reach(blocks)
    out = []
    for g, m in enumerate(masks):
        src, dst = fed[g], feeds[g + 1]
        if m.ndim == 4:
            keep = dst[:, None, None, None] & src[None, :, None, None]
        else:
            per = m.shape[1] // src.size
            keep = dst[:, None] & np.repeat(src, per)[None, :]
        out.append(m & keep)
    return out


def mask_sparsity(masks) -> float:
    """Fraction of masked-out entries over all masks."""
    masks = _as_list(masks)
    total = sum(m.size for m in masks)
    return float(sum(m.size - m.sum() for m in masks) / total) if total else 0.0


def symmetry_stats(masks, effective: bool = True) -> dict:
    """Whole-network symmetry statistics of `masks` (a list, or a dict in layer order).

    Returns plain JSON types:

    - ``log10_symmetries``: log10 of `count_symmetries` (exact, zeroed units fixed), and
      ``symmetries_num_digits``, its decimal digits;
    - ``log10_symmetries_zeroed_free``: the same with zeroed units free to move;
    - ``log10_symmetries_lower_bound``: log10 of the product of every layer's twin swaps
      (`layer_symmetries`, zeroed units fixed), never above ``log10_symmetries``;
    - sums over hidden layers of ``total_units``, ``zeroed_units``, ``unique_units``;
    - ``sparsity``; ``layers`` (per-layer counts and ``log10_symmetries_lower_bound``);
    - when `effective`, the same for `effective_masks` under ``effective``.
    """
    masks = _as_list(masks)
    layers = layer_symmetries(masks)
    exact = count_symmetries(masks, "fixed")
    stats = {key: int(sum(lay[key] for lay in layers)) for key in ("total_units", "zeroed_units", "unique_units")}
    stats.update(
        {
            "log10_symmetries": log10_int(exact),
            "symmetries_num_digits": num_digits(exact),
            "log10_symmetries_zeroed_free": log10_int(count_symmetries(masks, "free")),
            "log10_symmetries_lower_bound": float(sum(lay["log10_symmetries_lower_bound"] for lay in layers)),
            "sparsity": mask_sparsity(masks),
            "layers": [{k: v for k, v in lay.items() if k != "group_sizes"} for lay in layers],
        }
    )
    if effective:
        stats["effective"] = symmetry_stats(effective_masks(masks), effective=False)
    return stats


def dense_masks(shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """All-True masks of the given weight shapes (a dense network)."""
    return [np.ones(tuple(s), bool) for s in shapes]
