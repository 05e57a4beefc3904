"""The evolution tree: which model was derived from which, rebuilt from stored runs.

Models are identified by the sha256 of their checkpoint, the same bytes in a folder
store and in MongoDB's GridFS, so the tree does not depend on run ids. A derived
model's run (normalize, compact or mix; info ``parent``, ``normalizer``,
``checkpoint_sha256``) is a child of the run whose checkpoint has its parent's sha256
(a mix under its first parent); a training run, or an external checkpoint file, is a
root. A parent run that no longer exists becomes a root marked missing.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nnclust.storage import paths, records

NORMALIZE_EXPERIMENT = "normalize_model"
# Experiments whose runs derive a model from a parent (info parent, normalizer, checkpoint_sha256).
DERIVED_EXPERIMENTS = (NORMALIZE_EXPERIMENT, "mix_models", "compact_model")
TRAIN_EXPERIMENT = "train_model"
# Metrics shown in the text and drawing, in this order, with their short names.
KEY_METRICS = {"loss": "loss", "accuracy": "acc", "mse": "mse", "hidden_neurons": "units", "sparsity": "sparsity",
               "num_parameters": "params", "nonzero_parameters": "nonzero"}  # fmt: skip


@dataclass
class StoredRun:
    """What the tree needs of one run: its experiment, id, status, info and result, and
    the sha256 of each checkpoint artifact it holds."""

    experiment: str
    run_id: int
    status: str
    info: dict
    result: dict | None
    checkpoints: dict[str, str] = field(default_factory=dict)  # artifact name -> sha256


@dataclass
class Node:
    """One model in the forest. `kind` is ``train``, ``normalized``, ``file`` (an
    external checkpoint) or ``missing`` (a parent run no longer in the store)."""

    key: str
    kind: str
    label: str
    run_id: int | None = None
    normalizer: str | None = None
    options: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    max_output_change: float | None = None
    children: list["Node"] = field(default_factory=list)

    def walk(self, depth: int = 0, parent: "Node | None" = None):
        """(node, depth, parent) for this node and its descendants, depth first."""
        yield self, depth, parent
        for child in self.children:
            yield from child.walk(depth + 1, self)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runs_from_folder(folder) -> list[StoredRun]:
    """The runs of a folder store (``normalized_models``, ``training_runs``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder '{folder}' does not exist; pass the folder of a run store")
    out = []
    for sub in sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        if not (sub / records.RUN).is_file():
            continue
        try:
            run, info = records.read_run(sub), records.read_info(sub)
        except records.DamagedRecordError as exc:
            warnings.warn(f"left out of the tree: {exc}", stacklevel=2)  # the other runs still make a tree
            continue
        ckpts = {n: _sha((sub / n).read_bytes()) for n in paths.MODEL_ARTIFACTS if (sub / n).is_file()}
        out.append(
            StoredRun(
                (run.get("experiment") or {}).get("name", ""), int(sub.name), run.get("status", ""),
                info, run.get("result"), ckpts,
            )
        )  # fmt: skip
    return out


def runs_from_mongo(spec: str) -> list[StoredRun]:
    """The training and normalize runs of a MongoDB store (``HOST:PORT:DB`` or a URL)."""
    import gridfs

    from nnclust.storage import mongo

    db = mongo.connect(spec)
    fs = gridfs.GridFS(db)
    out = []
    query = {"experiment.name": {"$in": [TRAIN_EXPERIMENT, *DERIVED_EXPERIMENTS]}}
    for run in db.runs.find(query, sort=[("_id", 1)]):
        ckpts = {
            a["name"]: _sha(fs.get(a["file_id"]).read())
            for a in run.get("artifacts", [])
            if a["name"] in paths.MODEL_ARTIFACTS
        }
        out.append(
            StoredRun(
                run["experiment"]["name"], int(run["_id"]), run.get("status", ""), run.get("info") or {},
                run.get("result"), ckpts,
            )
        )  # fmt: skip
    return out


# A compaction run records its measurements under its own names: these become the node's
# metrics (after) and its parent's (before), so compacted models show them like the rest.
# (Its parameter counts are of the nonzero ones, unlike the normalizers' num_parameters.)
_COMPACT_METRICS = {"accuracy": "accuracy_{}", "hidden_neurons": "units_{}", "nonzero_parameters": "params_{}"}
# A training run's result, when no derived model measured it: its test split, as the
# normalize and mix runs measure a trained parent. (Its sparsity counts prunable weights
# only, not the normalizers' weights and biases, so it is left out.)
_TRAIN_METRICS = {"accuracy": "test_accuracy", "loss": "test_loss", "num_parameters": "num_parameters"}


def _metrics(experiment: str, result: dict | None, which: str = "after") -> dict:
    """The key metrics a run's `result` records of its model (`which` = "after") or, for
    a derived model, of its parent ("before")."""
    result = result or {}
    if experiment == "compact_model":
        return {k: result[v.format(which)] for k, v in _COMPACT_METRICS.items() if v.format(which) in result}
    if experiment == TRAIN_EXPERIMENT:
        return {k: result[v] for k, v in _TRAIN_METRICS.items() if v in result}
    return dict(result.get("metrics" if which == "after" else "parent_metrics") or {})


def _metric_text(metrics: dict) -> str:
    parts = []
    for key, short in KEY_METRICS.items():
        v = metrics.get(key)
        if v is None:
            continue
        parts.append(f"{short}={v:.4g}" if isinstance(v, float) else f"{short}={v}")
    return " ".join(parts)


def _pick_parent(candidates: list[Node], run_ref: str | None) -> Node | None:
    """The parent among models with the parent's checkpoint sha256: usually one; when
    a normalizer returned identical bytes (an exact one applied twice) several, and
    the one whose run the reference names (experiment folder and id) is taken."""
    if len(candidates) <= 1 or not run_ref:
        return candidates[0] if candidates else None
    ref = str(run_ref).rstrip("/")
    tail = ref.split(":")[-1] if ref.startswith("mongo:") else Path(ref).name
    folder = None if ref.startswith("mongo:") else Path(ref).parent.name
    experiment = {v: k for k, v in paths.RUN_DIRS.items()}.get(folder)
    for n in candidates:
        if str(n.run_id) == tail and (experiment is None or n.label.startswith(experiment)):
            return n
    return candidates[0]


def _parent_info(info: dict) -> dict:
    """The ``parent`` entry of a derived run's info. Mix runs stored before lineage was
    copied into plain values hold there a jsonpickle back-reference (``{"py/id": n}``)
    to the first of their ``parents``, which is then read instead."""
    parent = info.get("parent") or {}
    if "sha256" not in parent and info.get("parents"):
        return dict(info["parents"][0])
    return parent


def build_forest(runs: Iterable[StoredRun]) -> list[Node]:
    """The roots of the evolution forest of `runs` (completed training and normalize
    runs; others are skipped). Children are ordered by run id."""
    runs = [r for r in runs if r.status == "COMPLETED"]
    by_sha: dict[str, list[Node]] = {}
    roots: list[Node] = []
    train_metrics: dict[int, dict] = {}
    for r in runs:
        if r.experiment != TRAIN_EXPERIMENT or not r.checkpoints:
            continue
        # The checkpoint a model reference picks first names the node, whatever the
        # order the store lists artifacts in.
        first = next(r.checkpoints[n] for n in paths.MODEL_ARTIFACTS if n in r.checkpoints)
        node = Node(key=first, kind="train", label=f"train_model {r.run_id}", run_id=r.run_id)
        train_metrics[id(node)] = _metrics(TRAIN_EXPERIMENT, r.result)
        for sha in set(r.checkpoints.values()):
            by_sha.setdefault(sha, []).append(node)
        roots.append(node)
    derived = []
    for r in runs:
        sha = r.info.get("checkpoint_sha256")
        if r.experiment not in DERIVED_EXPERIMENTS or not sha:
            continue
        norm = r.info.get("normalizer") or {}
        result = r.result or {}
        node = Node(
            key=sha, kind="normalized", label=f"{r.experiment} {r.run_id}", run_id=r.run_id,
            normalizer=norm.get("name"), options=dict(norm.get("options") or {}),
            metrics=_metrics(r.experiment, result), max_output_change=result.get("max_output_change"),
        )  # fmt: skip
        by_sha.setdefault(sha, []).append(node)
        derived.append((r, node))
    for r, node in derived:
        parent_info = _parent_info(r.info)
        psha = parent_info.get("sha256", "")
        parent = _pick_parent([n for n in by_sha.get(psha, []) if n is not node], parent_info.get("run"))
        if parent is None:
            ref = parent_info.get("ref", "?")
            missing = parent_info.get("run") is not None
            parent = Node(
                key=psha,
                kind="missing" if missing else "file",
                label=f"MISSING run {ref}" if missing else f"file {ref}",
            )
            by_sha[psha] = [parent]
            roots.append(parent)
        if not parent.metrics:
            parent.metrics = _metrics(r.experiment, r.result, "before")
        parent.children.append(node)
    for root in roots:
        # A trained model that no derived run measured shows its own training result.
        if not root.metrics and id(root) in train_metrics:
            root.metrics = train_metrics[id(root)]
    for root in roots:
        for node, _, _ in root.walk():
            node.children.sort(key=lambda n: n.run_id if n.run_id is not None else -1)
    return roots


def _root_label(root: str) -> str:
    """`root` as a run label: a run folder (``training_runs/3``) becomes
    ``train_model 3``; a label (``experiment id``) must name a known experiment and an
    integer id. Anything else is returned as given (a run id or sha256 prefix)."""
    experiments = {v: k for k, v in paths.RUN_DIRS.items()}
    parts = Path(root.rstrip("/")).parts
    if len(parts) >= 2 and parts[-2] in experiments:
        folder, run_id = parts[-2], parts[-1]
        if not run_id.isdigit():
            raise ValueError(f"--root {root!r}: the run id {run_id!r} is not an integer; e.g. --root {folder}/1")
        return f"{experiments[folder]} {run_id}"
    words = root.split()
    if len(words) == 1:
        return root
    if len(words) != 2 or words[0] not in experiments.values() or not words[1].isdigit():
        raise ValueError(
            f"--root {root!r} is not a model reference; give a run label ('train_model 1', "
            "'normalize_model 3'), a run folder (training_runs/1), a run id or a checkpoint sha256 prefix (6+ chars)"
        )
    return root


def select(roots: list[Node], root: str | None) -> list[Node]:
    """The subtrees whose top node matches `root`: a run label ("normalize_model 3"),
    a run folder ("normalized_models/3"), a run id of either kind ("3"), or a prefix of
    the checkpoint sha256 (6+ chars). A reference that matches nothing is a ValueError
    (one line) that lists some of the labels there are."""
    if root is None:
        return roots
    root = str(root).strip()
    nodes = [n for r in roots for n, _, _ in r.walk()]
    if not any(n.label == root for n in nodes):
        root = _root_label(root)
    found = [
        n
        for n in nodes
        if n.label == root
        or (n.run_id is not None and str(n.run_id) == root)
        or (len(root) >= 6 and n.key.startswith(root))
    ]
    if not found:
        labels = [n.label for n in nodes if n.run_id is not None]
        known = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
        raise ValueError(
            f"no model matches --root {root!r}; models here: {known or 'none'} "
            "(or give a run id or checkpoint sha256 prefix)"
        )
    return found


def _edge(node: Node) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted(node.options.items()) if v is not None)
    return f"{node.normalizer}" + (f"({opts})" if opts else "")


def render(roots: list[Node], ids: bool = True) -> str:
    """The forest as an indented text tree: each node with the normalizer (and options)
    that made it, its max output change and key metrics. `ids=False` leaves out run
    ids and labels, for comparing trees across stores."""
    lines = []

    def visit(node: Node, prefix: str, branch: str) -> None:
        head = node.label if ids or node.kind != "normalized" else ""
        if node.kind == "normalized":
            change = f" Δout={node.max_output_change:.3g}" if node.max_output_change is not None else ""
            text = f"{_edge(node)}{change}" + (f"  [{head}]" if head else "")
        else:
            text = head if ids else node.kind
        metrics = _metric_text(node.metrics)
        lines.append(prefix + branch + text + (f"  {metrics}" if metrics else ""))
        inner = prefix + {"": "", "├── ": "│   ", "└── ": "    "}[branch]
        for i, child in enumerate(node.children):
            visit(child, inner, "└── " if i == len(node.children) - 1 else "├── ")

    for root in roots:
        visit(root, "", "")
    return "\n".join(lines) if lines else "no models"


def forest_frame(roots: list[Node]):
    """The forest as a pandas table: one row per model with its parent, depth,
    normalizer, options and metrics (``metric.<name>``)."""
    import pandas as pd

    rows = []
    for root in roots:
        for node, depth, parent in root.walk():
            rows.append(
                {
                    "label": node.label, "kind": node.kind, "run_id": node.run_id, "depth": depth,
                    "parent": None if parent is None else parent.label, "normalizer": node.normalizer,
                    "options": json.dumps(node.options, sort_keys=True) if node.options else None,
                    "max_output_change": node.max_output_change, "sha256": node.key,
                    **{f"metric.{k}": v for k, v in node.metrics.items()},
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


# The drawing: each model a box in a slot SLOT_W inches wide, LEVEL_H inches per
# depth; trees side by side in bands of at most BAND_SLOTS slots, so that a store of
# many trained models wraps into rows instead of one wide, mostly empty canvas.
BAND_SLOTS = 6
SLOT_W, LEVEL_H, FONT_PT = 2.2, 1.35, 8.0
_TEXT_WIDTH = 30  # characters per line of a box


def layout(roots: list[Node], band_slots: int = BAND_SLOTS) -> dict[int, tuple[float, float]]:
    """(x, y) in slot units of every node (keyed by ``id(node)``): depth downward
    (y = -depth within a band), the leaves of a tree in consecutive slots in child order,
    each parent centred over its first and last child. Trees are packed left to right
    into bands of at most `band_slots` slots (a wider tree gets a band of its own);
    each band starts one level below the deepest tree of the band above."""
    pos: dict[int, tuple[float, float]] = {}

    def place(node: Node, depth: int, next_x: list[float]) -> float:
        if not node.children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(c, depth + 1, next_x) for c in node.children]
            x = (xs[0] + xs[-1]) / 2
        pos[id(node)] = (x, float(-depth))
        return x

    top, used, band_depth = 0.0, 0, 0
    for root in roots:
        nodes = list(root.walk())
        width = sum(1 for n, _, _ in nodes if not n.children)
        depth = 1 + max(d for _, d, _ in nodes)
        if used and used + width > band_slots:  # start a new band below this one
            top -= band_depth + 0.3
            used, band_depth = 0, 0
        place(root, 0, [float(used)])
        for n, _, _ in nodes:
            x, y = pos[id(n)]
            pos[id(n)] = (x, y + top)
        used += width
        band_depth = max(band_depth, depth)
    return pos


def _short(value) -> str:
    """An option value for a box: a path as its last two parts (``training_runs/2``)."""
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, str) and "/" in value:
        return "/".join(Path(value).parts[-2:])
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def box_text(node: Node) -> str:
    """The lines of a node's box: how the model was made, its run, its key metrics."""
    import textwrap

    if node.kind == "normalized":
        opts = ", ".join(f"{k}={_short(v)}" for k, v in sorted(node.options.items()) if v is not None)
        made = f"{node.normalizer}" + (f"({opts})" if opts else "")
        head = textwrap.wrap(made, _TEXT_WIDTH, break_long_words=False, break_on_hyphens=False) + [node.label]
    elif node.kind == "train":
        head = ["trained", node.label]
    else:
        head = textwrap.wrap(node.label if node.kind == "missing" else f"file {_short(node.label[5:])}", _TEXT_WIDTH)
    values = [(short, node.metrics.get(k)) for k, short in KEY_METRICS.items()]
    metrics = [f"{short} {_short(v)}" for short, v in values if v is not None]
    if node.max_output_change is not None:
        metrics.append(f"Δout {node.max_output_change:.2g}")
    body = [", ".join(metrics[i : i + 2]) for i in range(0, len(metrics), 2)]
    return "\n".join(head + body)


def draw(roots: list[Node], band_slots: int = BAND_SLOTS):
    """A matplotlib figure of the forest (`layout`): each model a box saying how it was
    made (normalizer and options, or trained / file / MISSING), its run and its key
    metrics; arrows from parent to child. SLOT_W x LEVEL_H inches per box, so the text
    is FONT_PT points whatever the size of the forest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = layout(roots, band_slots)
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    width, height = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    fig, ax = plt.subplots(figsize=(SLOT_W * width, LEVEL_H * height + 0.5))
    colors = {"train": "#cfe8cf", "normalized": "#dbe7f7", "file": "#eeeeee", "missing": "#f7d6d6"}
    boxes = {}
    for root in roots:
        for node, _, parent in root.walk():
            x, y = pos[id(node)]
            boxes[id(node)] = ax.text(x, y, box_text(node), fontsize=FONT_PT, ha="center", va="center",
                                      linespacing=1.15, bbox={"boxstyle": "round,pad=0.3", "fc": colors[node.kind],
                                                              "ec": "0.35"})  # fmt: skip
            if parent is not None:  # from the bottom of the parent's text to the top of the child's
                ax.annotate("", xy=(0.5, 1.0), xycoords=boxes[id(node)], xytext=(0.5, 0.0),
                            textcoords=boxes[id(parent)],
                            arrowprops={"arrowstyle": "->", "color": "0.45", "shrinkA": 6, "shrinkB": 6})  # fmt: skip
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.axis("off")
    ax.set_title("evolution tree: each model under its parent (acc, loss: on its test data; units: hidden units)",
                 fontsize=FONT_PT + 1)  # fmt: skip
    fig.tight_layout()
    return fig
