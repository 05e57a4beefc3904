"""Every config key of every experiment script reaches the run.

The harness is generated from the experiments' own declarations: the constraints each
script checks in its config hook. Every declared key has one entry in `ENTRIES`:

- `Result`: a tiny run with the default and one with `value` (all else equal) store
  different results or artifacts, and the stored config (and, where the run records
  it, the info) names the value used;
- `Execution`: a spy on the executor shows that `value` reached it, and the numbers of
  the run equal those of the default run;
- `Elsewhere`: another test of the suite changes the key and checks its effect (named,
  and checked to exist).

A declared key without an entry fails `test_every_declared_key_has_an_entry`; a key of a
script's config that no constraint declares needs one in `UNDECLARED`
(`test_every_config_key_outside_the_constraints_has_an_entry`).

Runs share one tiny trained network (moons, 2-12-12-2) and are cached per config, so a
base run serves every entry of its script.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib
import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from sacred.observers import FileStorageObserver

from nnclust.core.constraints import get_path
from nnclust.exec.grid import run_in_process
from nnclust.storage import paths

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- entry kinds


@dataclass(frozen=True)
class W:
    """A value known once the shared runs exist: ``world[name]``."""

    name: str


@dataclass(frozen=True)
class Result:
    """Changing the key to `value` changes the stored result or artifacts.

    `base`: config (dotted keys) both runs share, when the default run cannot show the
    key (e.g. momentum needs sgd). `also`: further changes the variant needs to be a
    valid config (a dataset's options). `info(info, value)`: the run's info names the
    value. `raises`: the changed value is refused with this message (a reference that
    must match another), which shows the value reached the body.
    """

    value: object
    base: Mapping = field(default_factory=dict)
    also: Mapping = field(default_factory=dict)
    info: Callable | None = None
    raises: str | None = None


@dataclass(frozen=True)
class Execution:
    """The value reaches the executor (`seen(records)` is the value seen by the spy),
    and the numbers are those of the default run, apart from `ignore` (timings and the
    result's echo of the setting)."""

    value: object
    seen: Callable
    base: Mapping = field(default_factory=dict)
    ignore: tuple = ()


@dataclass(frozen=True)
class Elsewhere:
    """Checked by `test` ("tests/<file>.py::<function>"), because `why`."""

    test: str
    why: str


def resolve(value, world):
    if isinstance(value, W):
        return world[value.name]
    if isinstance(value, dict):
        return {k: resolve(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world) for v in value]
    return value


def apply(config: Mapping, updates: Mapping) -> dict:
    """`config` with each dotted key of `updates` set (a whole section when the key names one)."""
    out = copy.deepcopy(dict(config))
    for key, value in updates.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------- spies


class Records(dict):
    def add(self, name, value):
        self.setdefault(name, []).append(value)


def _spy_training(mp, rec):
    import nnclust.training

    real = nnclust.training.train

    def train(model, data, **kw):
        rec.add("train", {k: kw.get(k) for k in ("device", "progress", "checkpoint_every", "seed")})
        return real(model, data, **{**kw, "device": "cpu"})  # the CPU stands in for any device

    mp.setattr(nnclust.training, "train", train)


def _spy_map(mp, rec, module):
    real = module.map_tasks

    def map_tasks(fn, items, n_jobs=1, desc=None, progress=True, scheduler_address=None, **kw):
        items = list(items)
        rec.add("map", {"n_jobs": n_jobs, "progress": progress, "scheduler_address": scheduler_address,
                        "items": len(items)})  # fmt: skip
        return real(fn, items, n_jobs, desc, progress, None, **kw)  # local workers stand in for the cluster

    mp.setattr(module, "map_tasks", map_tasks)


def _spy_shuffle(mp, rec):
    import nnclust.clustering.batched as batched
    import nnclust.clustering.study as study

    _spy_map(mp, rec, study)
    real = batched.batched_spectral_embeddings
    mp.setattr(torch.cuda, "is_available", lambda: True)

    def embeddings(adjs, k, device, **kw):
        rec.add("gpu_batch", {"device": device, "size": len(adjs)})
        return real(adjs, k, "cpu", **kw)

    mp.setattr(batched, "batched_spectral_embeddings", embeddings)
    real_kmeans = batched.batched_kmeans
    mp.setattr(batched, "batched_kmeans", lambda xs, k, n_init, rngs, device: real_kmeans(xs, k, n_init, rngs, "cpu"))


def _spy_ablate(mp, rec):
    import nnclust.exec.parallel

    _spy_map(mp, rec, nnclust.exec.parallel)


def _spy_imp(mp, rec):
    import tqdm.auto

    _spy_training(mp, rec)
    real_threads = torch.set_num_threads

    def set_num_threads(n):
        rec.add("threads", n)
        real_threads(n)

    mp.setattr(torch, "set_num_threads", set_num_threads)

    class Bar(tqdm.auto.tqdm):
        def __init__(self, *a, **kw):
            rec.add("bar", kw.get("desc"))
            super().__init__(*a, **{**kw, "disable": True})

    mp.setattr(tqdm.auto, "tqdm", Bar)


def _spy_normalize(mp, rec):
    import nnclust.experiments.normalize as body

    real = body.normalize

    def normalize(*a, **kw):
        rec.add("normalize", {"progress": kw.get("progress")})
        return real(*a, **kw)

    mp.setattr(body, "normalize", normalize)


def _spy_compact(mp, rec):
    import nnclust.sparse

    real = nnclust.sparse.time_inference

    def time_inference(model, x, repeats=5, warmup=1):
        rec.add("timed", {"batch": int(x.shape[0]), "repeats": repeats})
        return real(model, x, repeats, warmup)

    mp.setattr(nnclust.sparse, "time_inference", time_inference, raising=False)
    _spy_placement(mp, rec)


def _any_device(mp):
    """The config check accepts a CUDA name here, where no GPU is: the placement and
    training spies put the work on the CPU and record the name that reached them."""
    from nnclust.core.constraints import Device

    real = Device.problem
    mp.setattr(Device, "problem", lambda self, v: None if str(v).startswith("cuda") else real(self, v))


def _spy_placement(mp, rec):
    """Every placement goes through .to: the CPU stands in for the device asked for,
    and the device names that reached .to are recorded."""
    real_module_to, real_tensor_to = torch.nn.Module.to, torch.Tensor.to

    def cpu(args, kw):
        def sub(a):
            if isinstance(a, (str, torch.device)) and str(a).startswith("cuda"):
                rec.add("to", str(a))
                return "cpu"
            return a

        return tuple(sub(a) for a in args), {k: sub(v) for k, v in kw.items()}

    def module_to(self, *args, **kw):
        args, kw = cpu(args, kw)
        return real_module_to(self, *args, **kw)

    def tensor_to(self, *args, **kw):
        args, kw = cpu(args, kw)
        return real_tensor_to(self, *args, **kw)

    mp.setattr(torch.nn.Module, "to", module_to)
    mp.setattr(torch.Tensor, "to", tensor_to)


def _spy_loader(mp, rec):
    """The data folder each body passes to the dataset registry."""
    import nnclust.experiments as bodies

    for name in ("train", "imp", "symmetry", "forgetting", "normalize", "compact"):
        module = importlib.import_module(f"{bodies.__name__}.{name}")
        real = module.load_dataset

        def load_dataset(*a, _real=real, **kw):
            rec.add("root", kw.get("root"))
            return _real(*a, **kw)

        mp.setattr(module, "load_dataset", load_dataset)


def _fake_rows(mp, rec):
    """The factor grid's runs, answered without training: each row's numbers derive
    from its config, so a change in what the grid asks for shows in its table."""
    import nnclust.exec.grid

    def value(config, salt):
        text = json.dumps([config, salt], sort_keys=True, default=str)
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8

    def run_rows(script, rows, root=".", n_jobs=1, scheduler_address=None, progress=True):
        rec.add("rows", {"script": script, "rows": rows, "root": str(root)})
        rec.add("exec", {"n_jobs": n_jobs, "scheduler_address": scheduler_address, "progress": progress})
        out = []
        for i, (config, named) in enumerate(rows):
            folder = Path(root) / script / str(i)
            folder.mkdir(parents=True, exist_ok=True)
            key = [config, named]
            if script == "train_model":
                for name in (paths.PRUNED_MODEL, paths.UNPRUNED_MODEL):
                    (folder / name).write_bytes(b"")
                res = {"test_accuracy": value(key, "a"), "unpruned_test_accuracy": value(key, "u")}
            else:
                res = {k: value(key, k) for k in ("true_ncut", "mean", "std", "z_score", "p_value")}
                res["shuffle_method"] = config.get("shuffle_method")
            out.append((str(folder), res))
        return out

    mp.setattr(nnclust.exec.grid, "run_rows", run_rows)


def _linear_schedule(mp, rec):
    """A second pruning schedule (linear instead of cubic), so that the key has a
    value other than its default."""
    from nnclust.pruning.schedules import SCHEDULES, polynomial_sparsity

    def linear(*a, **kw):
        rec.add("schedule", "linear")
        return polynomial_sparsity(*a, **{**kw, "power": 1})

    mp.setitem(SCHEDULES._entries, "linear", linear)


def _stub_figures(mp):
    """Figures are drawn by the scripts' own tests; here a figure artifact is a stub
    that names the figure, so that its presence still shows and runs stay quick."""
    import nnclust.viz.figures as figures
    import nnclust.viz.imp as imp_figures

    for module in (figures, imp_figures):
        for name, fn in vars(module).items():
            if (
                callable(fn)
                and getattr(fn, "__module__", None) == module.__name__
                and name not in ("save", "layer_order")
            ):
                mp.setattr(module, name, lambda *a, _name=name, **kw: _name)
    mp.setattr(figures, "save", lambda fig, path: Path(path).write_text(f"figure {fig}"))


SPIES = {
    "train_model": [_spy_training, _linear_schedule, _spy_loader],
    "weight_symmetry": [_spy_training, _linear_schedule, _spy_loader],
    "shuffle_and_cluster": [_spy_shuffle],
    "ablate_clusters": [_spy_ablate],
    "imp_experiment": [_spy_imp, _spy_placement, _spy_loader],
    "normalize_model": [_spy_normalize, _spy_loader],
    "compact_model": [_spy_compact, _spy_loader],
    "clustering_factors": [_fake_rows],
    "forgetting": [_spy_training, _spy_loader],
}


# ---------------------------------------------------------------- runs


@dataclass
class Outcome:
    result: dict | None
    config: dict
    info: dict
    artifacts: dict  # name -> sha256
    records: Records
    error: Exception | None = None
    folder: str | None = None


def _digest(path: Path) -> str:
    if path.suffix == ".pt":  # the tensors, not the zip container around them
        blob = torch.load(path, weights_only=True)
        return hashlib.sha256(repr(_canonical(blob)).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _canonical(obj):
    if isinstance(obj, torch.Tensor):
        t = obj.to_dense() if obj.layout != torch.strided else obj
        return (str(t.dtype), tuple(t.shape), t.detach().cpu().numpy().tobytes())
    if isinstance(obj, Mapping):
        return tuple((k, _canonical(v)) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0])))
    if isinstance(obj, (list, tuple)):
        return tuple(_canonical(v) for v in obj)
    return obj


class Runner:
    """Runs scripts in-process with their spies, one folder observer each, cached by config."""

    def __init__(self, root: Path):
        self.root, self.cache, self.world = root, {}, {}

    def __call__(self, script: str, config: Mapping) -> Outcome:
        key = (script, json.dumps(config, sort_keys=True, default=str))
        if key not in self.cache:
            self.cache[key] = self._run(script, dict(config))
        return self.cache[key]

    def _run(self, script, config) -> Outcome:
        module = importlib.import_module(script)
        folder = self.root / script
        rec = Records()
        threads = torch.get_num_threads()
        with pytest.MonkeyPatch.context() as mp:
            _stub_figures(mp)
            _any_device(mp)
            torch.set_num_threads(1)  # tiny nets: one thread is fastest on a shared machine
            for spy in SPIES.get(script, []):
                spy(mp, rec)
            try:
                run = run_in_process(module.ex, [FileStorageObserver(str(folder))], {"seed": 1, **config})
            except Exception as exc:  # noqa: BLE001 - a refused value is an outcome to compare
                return Outcome(None, {}, {}, {}, rec, exc)
            finally:
                torch.set_num_threads(threads)
        out = folder / str(run._id)
        read = lambda name: json.loads((out / name).read_text()) if (out / name).is_file() else {}  # noqa: E731
        arts = {p.name: _digest(p) for p in out.iterdir() if p.name not in _RUN_FILES}
        return Outcome(read("run.json")["result"], read("config.json"), read("info.json"), arts, rec, None, str(out))

    def folder_of(self, script: str, config: Mapping) -> str:
        outcome = self(script, config)
        assert outcome.error is None, f"a shared {script} run failed: {outcome.error!r}"
        return outcome.folder


_RUN_FILES = {"run.json", "config.json", "info.json", "metrics.json", "cout.txt"}


def _base(script: str, world) -> dict:
    return resolve(copy.deepcopy(BASE[script]), world)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    root = tmp_path_factory.mktemp("wiring")
    r = Runner(root)
    w = r.world
    trained = Path(r.folder_of("train_model", _base("train_model", w)))
    w["trained"] = str(trained)
    w["pruned_file"] = str(trained / paths.PRUNED_MODEL)
    w["unpruned_file"] = str(trained / paths.UNPRUNED_MODEL)
    w["loose_file"] = str(shutil.copy(trained / paths.PRUNED_MODEL, root / "loose.pt"))
    bn = {**BASE["train_model"], "model": {"name": "mlp", "hidden": [12, 12], "batch_norm": True}}
    w["trained_bn"] = r.folder_of("train_model", bn)
    w["trained_cnn"] = r.folder_of("train_model", CNN_TRAIN)
    w["clustered"] = r.folder_of("spectral_cluster_model", _base("spectral_cluster_model", w))
    w["clustered4"] = r.folder_of("spectral_cluster_model", {**_base("spectral_cluster_model", w), "num_clusters": 4})
    w["imp"] = r.folder_of("imp_experiment", _base("imp_experiment", w))
    w["imp_level0"] = str(Path(w["imp"]) / paths.imp_level_model(0))
    w["factor_root"] = str(root / "factor_cells")
    w["factor_root2"] = str(root / "factor_cells2")
    return r


# ---------------------------------------------------------------- tiny configs

MOONS = {"name": "moons", "n_samples": 200, "noise": 0.1}
CNN_TRAIN = {
    "dataset": {"name": "digits"},
    "model": {"name": "cnn", "conv_channels": [2, 2], "hidden": [6], "batch_norm": False},
    "epochs": 1,
    "progress": False,
}
BASE = {
    "train_model": {
        "dataset": MOONS,
        "model": {"name": "mlp", "hidden": [12, 12]},
        "optimizer": {"name": "adam", "lr": 0.02},
        "epochs": 3,
        "batch_size": 32,
        "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 2},
        "progress": False,
    },
    "spectral_cluster_model": {"model": W("trained"), "num_clusters": 3, "n_init": 4, "plot": False},
    "shuffle_and_cluster": {
        "model": W("trained"),
        "num_clusters": 3,
        "n_init": 4,
        "num_shuffles": 3,
        "spread_searches": 2,
        "plot": False,
        "progress": False,
    },
    "ablate_clusters": {"clustering": W("clustered"), "num_null": 2, "progress": False, "plot": False},
    "compare_masks_clusters": {"clustering": W("clustered"), "plot": False},
    "clustering_factors": {
        "conditions": ["control"],
        "seeds": [0],
        "num_shuffles": 2,
        "shuffle_methods": ["all"],
        "n_jobs": 1,
        "root": W("factor_root"),
        "progress": False,
        "plot": False,
    },
    "imp_experiment": {
        "dataset": {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 100, "noise": 0.1},
        "model": {"name": "mlp", "hidden": [6, 6]},
        "init": {"name": "normal", "bias": "same", "std": 0.3},
        "optimizer": {"name": "adam", "lr": 0.02},
        "imp": {"levels": 1, "target_params": 40, "max_epochs": 2},
        "progress": False,
        "num_threads": 1,
    },
    "connectivity": {"model": W("imp")},
    "weight_symmetry": {
        "driver": "shuffled_mask",
        "model": {"name": "mnist_fc", "width": 8, "depth": 1},
        "epochs": 1,
        "mask_type": "random",
        "sparsity": 0.5,
        "progress": False,
    },
    "normalize_model": {"model": W("trained"), "normalizer": "sort_neurons", "progress": False},
    "mix_models": {"models": [W("pruned_file"), W("unpruned_file")], "method": "average"},
    "forgetting": {
        "model": {"name": "mlp", "hidden": [8]},
        "epochs_a": 1,
        "epochs_b": 1,
        "classes_a": [0, 1, 2],
        "classes_b": [3, 4, 5],
        "variants": ["finetune", "selector_bottom"],
        "optimizer": {"name": "adam", "lr": 0.01},
    },
    "compact_model": {"model": W("trained"), "repeats": 1, "batch_size": 8},
}


def _train(name):
    return lambda rec: [c[name] for c in rec.get("train", [])]


def _map(name):
    return lambda rec: [c[name] for c in rec.get("map", [])]


def _loader_root(rec):
    return rec.get("root", [])


def _info_data(info, value):
    return info["data"]["dataset"] == value


SGD = {"optimizer.name": "sgd"}
CLUSTER_TERM = {"cluster_gradient": True}
PRUNE_DRIVER = {"driver": "prune", "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 1}}
FIXED_PARAM = {"driver": "fixed_param", "depths": [1], "num_parameters": 1000}
COMPACT_TIMING = ("speedup", "time_before_s", "time_after_s")

GRAPH_ENTRIES = {
    "model": Result(W("unpruned_file")),
    "num_clusters": Result(4),
    "n_init": Result(1),
    "graph.normalize": Result(False),
    "graph.cnn_nodes": Result("conv", base={"model": W("trained_cnn")}),
    "graph.normalize_eps": Result(1.0),
    "plot": Result(True),
}

ENTRIES = {
    "train_model": {
        "dataset.name": Result("circles"),
        "model.name": Result("mlp_sequential"),
        "optimizer.name": Result("sgd"),
        "optimizer.lr": Result(0.005),
        "optimizer.momentum": Result(0.5, base=SGD),
        "optimizer.weight_decay": Result(0.05),
        "epochs": Result(4),
        "batch_size": Result(16),
        "lr_decay": Result(0.5),
        "pruning.final_sparsity": Result(0.7),
        "pruning.num_pruning_epochs": Result(1),
        "pruning.num_finetune_epochs": Result(1),
        "pruning.scope": Result("global"),
        "pruning.schedule": Result("linear"),
        "pruning.criterion": Result("mav"),
        "pruning.criterion_samples": Result(10, base={"pruning.criterion": "mav"}),
        "pruning.keep_last_dense": Result(True),
        "cluster_gradient": Result(True),
        "cluster_gradient_config.lambda": Result(0.5, base=CLUSTER_TERM),
        "cluster_gradient_config.num_eigs": Result(1, base=CLUSTER_TERM),
        "cluster_gradient_config.frequency": Result(2, base=CLUSTER_TERM),
        "cluster_gradient_config.normalize": Result(False, base=CLUSTER_TERM),
        "regularizers": Result([{"name": "l1", "lambda": 0.01}]),
        "device": Execution("cuda", _train("device")),
        "progress": Execution(True, _train("progress")),
        "checkpoint_every": Execution(1, _train("checkpoint_every")),
        "resume": Elsewhere(
            "tests/test_resume.py::test_a_stopped_run_resumes_to_the_same_numbers",
            "a run to resume must be stopped mid-way; that test stops one and compares every number",
        ),
        "dropconnect": Result(0.5),
    },
    "spectral_cluster_model": GRAPH_ENTRIES,
    "shuffle_and_cluster": {
        **GRAPH_ENTRIES,
        "num_shuffles": Result(4),
        "shuffle_method": Result("nonzero"),
        "shuffle_bn": Result(True, base={"model": W("trained_bn")}),
        "shuffle_n_init": Result(1),
        "spread_searches": Result(0),
        "n_jobs": Execution(2, _map("n_jobs")),
        "scheduler_address": Execution("tcp://127.0.0.1:8786", _map("scheduler_address")),
        "device": Execution("cuda", lambda rec: [b["device"] for b in rec.get("gpu_batch", [])]),
        "batch_size": Execution(
            2, lambda rec: max(b["size"] for b in rec.get("gpu_batch", [{"size": None}])), base={"device": "cuda"}
        ),
        "progress": Execution(True, _map("progress")),
        "resume": Elsewhere(
            "tests/test_resume_studies.py::test_a_killed_shuffle_study_resumes_to_the_same_result",
            "a study to resume must be killed mid-way; that test kills one and compares every number",
        ),
    },
    "ablate_clusters": {
        "model": Result(W("unpruned_file"), raises="clustered '.*', but model="),
        "clustering": Result(W("clustered4")),
        "mode": Result("silence"),
        "num_null": Result(3),
        "n_jobs": Execution(2, _map("n_jobs")),
        "scheduler_address": Execution("tcp://127.0.0.1:8786", _map("scheduler_address")),
        "progress": Execution(True, _map("progress")),
        "plot": Result(True),
    },
    "compare_masks_clusters": {
        "model": Result(W("unpruned_file"), raises="clustered '.*', but model="),
        "clustering": Result(W("clustered4")),
        "plot": Result(True),
    },
    "clustering_factors": {
        "conditions": Result(["control", "l1"]),
        "base_config": Result(None),
        "seeds": Result([1]),
        "num_clusters": Result(4),
        "num_shuffles": Result(3),
        "shuffle_methods": Result(["nonzero"]),
        "n_jobs": Execution(2, lambda rec: [e["n_jobs"] for e in rec["exec"]]),
        "scheduler_address": Execution(
            "tcp://10.0.0.1:8786", lambda rec: [e["scheduler_address"] for e in rec["exec"]]
        ),
        "root": Result(W("factor_root2")),
        "progress": Execution(True, lambda rec: [e["progress"] for e in rec["exec"]]),
        "plot": Result(True),
        "train_updates": Result({"epochs": 2}),
    },
    "imp_experiment": {
        "dataset.name": Result("moons", also={"dataset": MOONS}),
        "model.name": Result("mlp_sequential"),
        "init.name": Result("kaiming_uniform"),
        "init.bias": Result("zero"),
        "init.std": Result(0.5),
        "optimizer.name": Result("sgd"),
        "optimizer.lr": Result(0.05),
        "batch_size": Result(16),
        "imp.levels": Result(2),
        "imp.target_params": Result(60),
        "imp.extend": Result(1),
        "imp.scope": Result("layer"),
        "imp.prune_biases": Result(False),
        "imp.rewind": Result("none"),
        "imp.rewind_step": Result(2, base={"imp.rewind": "late"}),
        "imp.max_epochs": Result(3),
        "imp.patience": Result(1, base={"imp.max_epochs": 8, "optimizer.lr": 1.0}),  # a rate at which it stalls
        "imp.loss_cutoff": Result(5.0),
        "imp.validation_fraction": Result(0.5),
        "task_inputs": Result([[0, 2], [1, 3]]),
        "task_outputs": Result([[1], [0]]),
        "progress": Execution(True, lambda rec: ["IMP levels" in rec.get("bar", [])]),
        "num_threads": Execution(2, lambda rec: rec.get("threads", [])[:1]),
        "device": Execution("cuda", lambda rec: sorted(set(rec.get("to", [])))),
        "init.bias_constant": Result(0.5, base={"init.bias": "constant"}),
        "imp.split_distance_threshold": Result(2.0),  # above the dense net's sqrt(2): level 0 counts
        "resume": Elsewhere(
            "tests/test_resume_studies.py::test_a_killed_imp_run_resumes_to_the_same_numbers",
            "a run to resume must be killed mid-way; that test kills one and compares every number",
        ),
    },
    "connectivity": {
        "model": Result(W("imp_level0")),
        "num_tasks": Result(2),
        "task_inputs": Result([[0, 2], [1, 3]], base={"num_tasks": 2}),
        "task_outputs": Result([[1], [0]], base={"num_tasks": 2}),
    },
    "weight_symmetry": {
        "driver": Result("train"),
        "dataset.name": Result("moons", also={"dataset": MOONS}),
        "model.name": Result("mnist_cnn", also={"model": {"name": "mnist_cnn", "filters": 2, "depth": 1}}),
        "optimizer.name": Result("sgd"),
        "optimizer.lr": Result(0.05),
        "epochs": Result(2),
        "batch_size": Result(32),
        "lr_decay": Result(0.5, base={"epochs": 2}),
        "mask_type": Result("per_neuron"),
        "sparsity": Result(0.7),
        "sparsity_range": Result([0.2, 0.3], base={"driver": "random_mask"}),
        "element_masks": Result(True, base={"model": {"name": "mnist_cnn", "filters": 2, "depth": 1}}),
        "dense_output": Result(False),
        "init": Result("he"),
        "depths": Result([2], base=FIXED_PARAM),
        "num_parameters": Result(2000, base=FIXED_PARAM),
        "pruning.final_sparsity": Result(0.7, base=PRUNE_DRIVER),
        "pruning.num_pruning_epochs": Result(2, base={**PRUNE_DRIVER, "epochs": 2}),
        "pruning.scope": Result("global", base=PRUNE_DRIVER),
        "pruning.schedule": Result("linear", base={**PRUNE_DRIVER, "epochs": 2, "pruning.num_pruning_epochs": 2}),
        "device": Execution("cuda", _train("device")),
        "progress": Execution(True, _train("progress")),
    },
    "normalize_model": {
        "model": Result(W("unpruned_file")),
        "normalizer": Result("rescale_relu", info=lambda info, v: info["normalizer"]["name"] == v),
        "dataset": Result({"name": "moons", "n_samples": 200, "noise": 0.4}, info=_info_data),
        "tol": Result(0.5),
        "probe_size": Result(16, base={"model": W("loose_file"), "normalizer": "rescale_relu"}),
        "progress": Execution(True, lambda rec: [c["progress"] for c in rec["normalize"]]),
    },
    "mix_models": {
        "models": Result([W("pruned_file"), W("unpruned_file"), W("unpruned_file")]),
        "method": Result("rank_and_zero", info=lambda info, v: info["normalizer"]["name"] == f"mix:{v}"),
        "keep": Result(
            0.9, base={"method": "rank_and_zero"}, info=lambda info, v: info["normalizer"]["options"]["keep"] == v
        ),
    },
    "forgetting": {
        "classes_a": Result([0, 1, 2, 6]),
        "classes_b": Result([3, 4, 7]),
        "epochs_a": Result(2),
        "epochs_b": Result(2),
        "batch_size": Result(32),
        "fraction": Result(0.6, base={"epochs_b": 3}),
        "variants": Result(["finetune"]),
        "optimizer.name": Result("sgd"),
        "dataset.name": Result("moons", also={"dataset": MOONS, "classes_a": [0], "classes_b": [1]}),
        "model.name": Result("cnn", also={"model": {"name": "cnn"}}),
    },
    "compact_model": {
        "model": Result(W("trained_bn")),
        "format": Result("csr", info=lambda info, v: info["normalizer"]["name"] == f"compact:{v}"),
        "dtype": Result("float64", info=lambda info, v: info["normalizer"]["options"]["dtype"] == v),
        "dataset": Result({"name": "moons", "n_samples": 200, "noise": 0.4}, info=_info_data),
        "batch_size": Execution(
            16, lambda rec: [t["batch"] for t in rec["timed"]], ignore=(*COMPACT_TIMING, "batch_size")
        ),
        "repeats": Execution(2, lambda rec: [t["repeats"] for t in rec["timed"]], ignore=COMPACT_TIMING),
        "device": Execution("cuda", lambda rec: sorted(set(rec.get("to", []))), ignore=COMPACT_TIMING),
    },
}


# The modularity benchmark's own tests change every key of its config one at a time
# against one tiny run (tests/test_modularity_benchmark.py); its entries point there.
_MODULARITY = "tests/test_modularity_benchmark.py::"
ENTRIES["modularity_benchmark"] = {
    **{
        key: Elsewhere(_MODULARITY + "test_every_key_changes_the_result", "a changed value changes the stored result")
        for key in (
            "widths",
            "num_modules",
            "p_in",
            "strengths",
            "networks",
            "num_shuffles",
            "shuffle_methods",
            "k_values",
            "alpha",
            "n_init",
            "stability_searches",
            "graph.normalize",
            "graph.normalize_eps",
        )
    },  # fmt: skip
    **{
        key: Elsewhere(
            _MODULARITY + "test_execution_keys_reach_the_executor_and_leave_the_numbers",
            "the value reaches map_tasks and the rows are the default run's",
        )
        for key in ("n_jobs", "scheduler_address", "progress")
    },
    "plot": Elsewhere(_MODULARITY + "test_plot_decides_whether_the_power_curve_is_drawn", "the plot artifact"),
}


# ---------------------------------------------------------------- keys outside the constraints

# Config keys a script reads that no constraint declares (a data folder, a normalizer's
# options, a command's input, options passed on to a registry): each has an entry as well.
UNDECLARED = {
    "train_model": {"data_root": Execution("elsewhere/datasets", _loader_root)},
    "imp_experiment": {"data_root": Execution("elsewhere/datasets", _loader_root)},
    "weight_symmetry": {
        "data_root": Execution("elsewhere/datasets", _loader_root),
        "source": Elsewhere(
            "tests/test_config_wiring.py::test_the_summary_command_reads_source",
            "only the summary command reads it, which a run does not",
        ),
    },
    "forgetting": {
        "data_root": Execution("elsewhere/datasets", _loader_root),
        "progress": Execution(True, _train("progress")),
    },
    "normalize_model": {
        "data_root": Execution("elsewhere/datasets", _loader_root, base={"dataset": MOONS}),
        "options": Result({"threshold": 0.5}, base={"normalizer": "delete_dead_neurons"}),
        "example": Elsewhere(
            "tests/normalizers/test_examples.py::test_make_example_rnn_takes_its_options_and_delete_dead_reads_it",
            "only the make_example commands read it, which a run does not",
        ),
    },
    "compact_model": {
        "data_root": Execution("elsewhere/datasets", _loader_root, base={"dataset": MOONS}, ignore=COMPACT_TIMING)
    },
}


# ---------------------------------------------------------------- coverage


def _scripts() -> dict[str, dict]:
    """Script name -> the constraints its config hook checks, read from the hook itself."""
    out = {}
    for path in sorted((ROOT / "src").glob("*.py")):
        if "make_experiment(" not in path.read_text():
            continue
        ex = importlib.import_module(path.stem).ex
        found = None
        for hook in ex.config_hooks:
            for cell, name in zip(hook.__closure__ or (), hook.__code__.co_freevars):
                if name == "constraints":
                    found = cell.cell_contents
        assert found is not None, f"{path.name} declares no constraints for its config hook"
        out[path.stem] = found
    return out


DECLARED = _scripts()


def _config_keys(script: str) -> set[str]:
    """Top-level keys of a script's config scopes, the seed aside."""
    keys = set()
    for scope in importlib.import_module(script).ex.configurations:
        keys |= set(scope())
    return keys - {"seed"}


def _undeclared(script: str) -> set[str]:
    return _config_keys(script) - {k.split(".")[0] for k in DECLARED[script]}


ALL_KEYS = [(s, k) for s in sorted(DECLARED) for k in [*DECLARED[s], *sorted(_undeclared(s))]]


def _entry(script, key):
    return {**ENTRIES.get(script, {}), **UNDECLARED.get(script, {})}.get(key)


def test_every_declared_key_has_an_entry():
    missing = [f"{s}: {k}" for s in sorted(DECLARED) for k in DECLARED[s] if k not in ENTRIES.get(s, {})]
    stale = [f"{s}: {k}" for s in ENTRIES for k in ENTRIES[s] if k not in DECLARED.get(s, {})]
    assert not missing, "config keys without a wiring check (add them to ENTRIES):\n" + "\n".join(missing)
    assert not stale, "entries for keys no script declares:\n" + "\n".join(stale)
    assert len(DECLARED) == 14


def test_every_config_key_outside_the_constraints_has_an_entry():
    missing = [f"{s}: {k}" for s in sorted(DECLARED) for k in sorted(_undeclared(s)) if k not in UNDECLARED.get(s, {})]
    stale = [f"{s}: {k}" for s in UNDECLARED for k in UNDECLARED[s] if k not in _undeclared(s)]
    assert not missing, "config keys without a constraint or a wiring check (add them to UNDECLARED):\n" + "\n".join(
        missing
    )
    assert not stale, "UNDECLARED entries for keys that are declared or gone:\n" + "\n".join(stale)


def test_tests_named_elsewhere_exist():
    for s, k in ALL_KEYS:
        entry = _entry(s, k)
        if isinstance(entry, Elsewhere):
            file, name = entry.test.split("::")
            tree = ast.parse((ROOT / file).read_text())
            assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, entry.test


def test_the_summary_command_reads_source(monkeypatch, tmp_path):
    import pandas as pd

    import weight_symmetry
    from nnclust.experiments import symmetry

    seen = []
    monkeypatch.setattr(symmetry, "summary", lambda source, out: (seen.append(source), (pd.DataFrame(), "figure"))[1])
    weight_symmetry.ex.observers[:] = []
    weight_symmetry.ex.run("summary", config_updates={"source": str(tmp_path)})
    assert seen == [str(tmp_path)]


@pytest.mark.parametrize(
    ("script", "key"),
    [(s, k) for s, k in ALL_KEYS if not isinstance(_entry(s, k), Elsewhere)],
    ids=[f"{s}:{k}" for s, k in ALL_KEYS if not isinstance(_entry(s, k), Elsewhere)],
)
def test_key_reaches_the_run(runner, script, key):
    entry = _entry(script, key)
    assert entry is not None, f"{script}: {key} has no entry"
    world = runner.world
    base = apply(_base(script, world), resolve(dict(entry.base), world))
    value = resolve(entry.value, world)
    changed = apply(base, {**resolve(dict(getattr(entry, "also", {})), world), key: value})
    default = runner(script, base)
    assert default.error is None, f"the base run failed: {default.error!r}"
    assert get_path(default.config, key) != value, "the changed value is the default"
    other = runner(script, changed)
    if isinstance(entry, Result) and entry.raises:
        assert other.error is not None and re.search(entry.raises, str(other.error)), other.error
        assert str(value) in str(other.error) or Path(value).name in str(other.error)
        return
    assert other.error is None, f"the changed run failed: {other.error!r}"
    assert get_path(other.config, key) == value  # the stored config names the value used
    if isinstance(entry, Result):
        assert (default.result, default.artifacts) != (other.result, other.artifacts), "the run did not change"
        if entry.info is not None:
            assert entry.info(other.info, value) and not entry.info(default.info, value)
    else:
        seen = entry.seen(other.records)
        assert seen and all(v == value for v in (seen if isinstance(seen, list) else [seen])), seen
        before = entry.seen(default.records)
        assert before != seen
        strip = lambda r: {k: v for k, v in (r or {}).items() if k not in entry.ignore}  # noqa: E731
        assert strip(other.result) == strip(default.result)
