"""Shuffle studies and config grids give the same numbers wherever they run."""

import os
import socket

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tests.networks import small_layers

from nnclust.clustering.batched import batched_spectral_embeddings
from nnclust.clustering.spectral import spectral_embedding
from nnclust.clustering.study import _shuffled_graph, cluster_layers, shuffle_significance
from nnclust.exec.grid import expand_grid, run_grid
from nnclust.exec.parallel import map_tasks
from nnclust.structure.graph import build_graph

MOONS = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"name": "mlp", "hidden": [12]},
    "epochs": 2,
    "batch_size": 32,
    "progress": False,
}


def random_graph(n, seed):
    rng = np.random.default_rng(seed)
    a = sp.triu(sp.random(n, n, density=0.1, random_state=rng), 1)
    a = a + a.T + sp.diags(np.ones(n - 1), 1) + sp.diags(np.ones(n - 1), -1)
    return sp.csr_matrix(a)


def test_batched_torch_embeddings_match_the_scipy_path():
    graphs = [random_graph(n, s) for s, n in enumerate([40, 55, 48])]  # padding to 55
    batched = batched_spectral_embeddings(graphs, 5, "cpu")
    for g, (vals, emb) in zip(graphs, batched):
        ref_vals, ref_emb = spectral_embedding(g, 5, seed=0)
        np.testing.assert_allclose(vals, ref_vals, atol=1e-10)
        # the same invariant subspace: projecting one basis on the other loses nothing
        q_ref, _ = np.linalg.qr(ref_emb * np.sqrt(np.asarray(g.sum(1))))
        q, _ = np.linalg.qr(emb * np.sqrt(np.asarray(g.sum(1))))
        np.testing.assert_allclose(np.linalg.svd(q_ref.T @ q, compute_uv=False), 1.0, atol=1e-8)


def test_batched_gram_embeddings_match_the_scipy_path():
    shapes = [
        ((24, 10), (24, 24), (4, 24)),
        ((30, 12), (20, 30), (5, 20)),  # padding to the largest of each side
        ((3, 40), (2, 3)),  # a 5-node small side: too few for 6 eigenvectors, solved on the CPU
    ]
    graphs = [build_graph(small_layers(seed, shape)) for seed, shape in enumerate(shapes)]
    batched = batched_spectral_embeddings([g.adjacency for g in graphs], 6, "cpu", sides=[g.sides for g in graphs])
    for g, (vals, emb) in zip(graphs, batched):
        ref_vals, ref_emb = spectral_embedding(g.adjacency, 6, seed=0)
        np.testing.assert_allclose(vals, ref_vals, atol=1e-10)
        if vals[-1] < 1 - 1e-6:  # distinct eigenvalues: the embedding itself is unique
            np.testing.assert_allclose(emb, ref_emb, atol=1e-8)
    with pytest.raises(ValueError, match="not a bipartition"):
        batched_spectral_embeddings(
            [graphs[0].adjacency], 6, "cpu", sides=[~graphs[0].sides & (np.arange(graphs[0].n_kept) > 0)]
        )


def test_batched_path_gives_the_cpu_study_numbers(monkeypatch):
    layers = small_layers()
    cpu = shuffle_significance(layers, 4, 6, "nonzero", seed=3, progress=False)
    # Run the GPU code path on the CPU: same graphs and k-means seeds, batched eigh.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    import nnclust.clustering.batched as spectral_torch

    real = spectral_torch.batched_spectral_embeddings
    monkeypatch.setattr(
        spectral_torch, "batched_spectral_embeddings", lambda adjs, k, device, **kw: real(adjs, k, "cpu", **kw)
    )
    real_kmeans = spectral_torch.batched_kmeans
    monkeypatch.setattr(
        spectral_torch, "batched_kmeans", lambda xs, k, n_init, rngs, device: real_kmeans(xs, k, n_init, rngs, "cpu")
    )
    for batch_size in (4, 6):  # k-means of a batch in torch, every shuffle and start at once
        batched = shuffle_significance(
            layers, 4, 6, "nonzero", seed=3, progress=False, device="cuda", batch_size=batch_size
        )
        np.testing.assert_allclose(batched["shuffled_ncuts"], cpu["shuffled_ncuts"], rtol=1e-9)
        assert batched["true_ncut"] == cpu["true_ncut"]


def test_study_true_ncut_is_the_clustering_experiments_and_bad_args_fail_early():
    layers = small_layers(1)
    _, clustering = cluster_layers(layers, 4, seed=7)
    for n_jobs in (1, 2):  # the network's own clustering runs as a task like the shuffles
        assert shuffle_significance(layers, 4, 4, seed=7, n_jobs=n_jobs, progress=False)["true_ncut"] == clustering.ncut
    with pytest.raises(ValueError, match="num_clusters=80 needs a graph of more than 80 nodes"):
        shuffle_significance(layers, 80, 4, progress=False, n_jobs=2)
    with pytest.raises(ValueError, match="shuffle_n_init must be >= 1"):
        shuffle_significance(layers, 4, 4, shuffle_n_init=0, progress=False)


def test_progress_bar_counts_shuffles(monkeypatch):
    from tqdm import tqdm

    import nnclust.exec.parallel

    bars = []

    class Recorded(tqdm):
        def close(self):
            bars.append((self.total, self.n))
            super().close()

    monkeypatch.setattr(nnclust.exec.parallel, "tqdm", Recorded)
    shuffle_significance(small_layers(), 4, 6, progress=True, batch_size=4)
    assert bars[0] == (6, 6)  # not 7: the network's own clustering is not a shuffle
    with pytest.raises(ValueError, match="got 2 counts for 3 items"):
        map_tasks(abs, [1, 2, 3], counts=[1, 1], progress=False)


def test_device_errors_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="device must be"):
        shuffle_significance(small_layers(), 4, 3, device="tpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            shuffle_significance(small_layers(), 4, 3, device="cuda", progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="cannot use scheduler_address"):
        shuffle_significance(small_layers(), 4, 3, device="cuda", scheduler_address="tcp://127.0.0.1:1", progress=False)
    with pytest.raises(ValueError, match="n_jobs=2 would go unused"):
        shuffle_significance(small_layers(), 4, 3, device="cuda", n_jobs=2, progress=False)


def test_shuffle_script_refuses_workers_with_a_gpu_before_a_run_exists(tmp_path, monkeypatch):
    """With device=cuda the shuffles run batched on the GPU: n_jobs or a Dask scheduler
    would be recorded and never used, so the config is refused (a GPU is pretended here,
    so that the device itself passes its check)."""
    import shuffle_and_cluster
    from nnclust.core.constraints import ConfigError, Device
    from nnclust.exec.grid import run_in_process
    from nnclust.experiments.sacred_setup import RunFolderObserver

    real = Device.problem
    monkeypatch.setattr(Device, "problem", lambda self, v: None if v == "cuda" else real(self, v))
    for extra, message in [({"n_jobs": 2}, "n_jobs=2 would go unused"),
                           ({"scheduler_address": "tcp://127.0.0.1:1"}, "cannot use scheduler_address")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            run_in_process(shuffle_and_cluster.ex, [RunFolderObserver(str(tmp_path / "runs"))],
                           {"model": "missing.pt", "device": "cuda", **extra})  # fmt: skip
        assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    old = os.environ.get("PYTHONPATH")
    # worker processes import nnclust and the experiment scripts from src/
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.abspath("src"), old]))
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    )
    try:
        yield cluster
    finally:
        cluster.close()
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


def test_dask_cluster_listens_on_loopback_and_matches_local(dask_cluster):
    address = dask_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    layers = small_layers(2)
    local = shuffle_significance(layers, 4, 6, "all", seed=5, progress=False)
    remote = shuffle_significance(layers, 4, 6, "all", seed=5, progress=False, scheduler_address=address)
    assert remote == local
    assert map_tasks(abs, [-3, 2, -1], scheduler_address=address, progress=False) == [3, 2, 1]


def test_grid_rows_on_dask_match_local_runs(dask_cluster, tmp_path):
    assert expand_grid({"seed": [1, 2], "epochs": [3, 4]})[1] == {"seed": 1, "epochs": 4}
    grid = {"seed": [1, 2]}
    local = run_grid("train_model", grid, MOONS, tmp_path / "local", progress=False)
    remote = run_grid(
        "train_model", grid, MOONS, tmp_path / "dask", progress=False, scheduler_address=dask_cluster.scheduler_address
    )
    assert [r for _, r in local] == [r for _, r in remote]
    assert len({f for f, _ in remote}) == 2 and all(os.path.isdir(f) for f, _ in remote)


def _count_uses(x, shared):
    """Records each task in the copy of `shared` it was given."""
    shared["seen"].append(x)
    return os.getpid(), len(shared["seen"]), shared["scale"] * x


@pytest.fixture
def by_value():
    """Send this module's functions to workers by value, so they need not import it."""
    import sys

    import cloudpickle  # what joblib's loky workers and Dask both unpickle tasks with

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _sent_once_per_worker(results, n_items):
    assert [r[2] for r in results] == [3 * x for x in range(n_items)]
    uses = {}
    for pid, count, _ in results:
        uses.setdefault(pid, []).append(count)
    # every worker's copy saw that worker's tasks one after another: 1, 2, 3, ...
    assert all(sorted(c) == list(range(1, len(c) + 1)) for c in uses.values())
    assert max(len(c) for c in uses.values()) > 1


def _count_uses_slowly(x, shared):
    """`_count_uses`, busy long enough that an idle worker takes the next task."""
    import time

    time.sleep(0.05)
    return _count_uses(x, shared)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_shared_data_goes_to_each_local_worker_once(by_value, n_jobs):
    fn = _count_uses if n_jobs == 1 else _count_uses_slowly
    results = map_tasks(fn, range(8), n_jobs=n_jobs, progress=False, shared={"seen": [], "scale": 3})
    _sent_once_per_worker(results, 8)
    pids = {pid for pid, _, _ in results}
    # one worker is this process; two are two worker processes, both used
    assert pids == {os.getpid()} if n_jobs == 1 else (len(pids) == 2 and os.getpid() not in pids)


def _with_pid(fn, *args):
    return os.getpid(), fn(*args)


def test_a_study_on_two_workers_runs_its_shuffles_in_two_processes(by_value, monkeypatch):
    from functools import partial

    import nnclust.clustering.study as study

    pids = []
    real = study.map_tasks

    def map_tasks_with_pids(fn, items, *args, **kw):
        out = real(partial(_with_pid, fn), items, *args, **kw)
        pids.extend(p for p, _ in out)
        return [r for _, r in out]

    serial = shuffle_significance(small_layers(2), 4, 24, "nonzero", seed=5, n_init=30, progress=False)
    monkeypatch.setattr(study, "map_tasks", map_tasks_with_pids)
    parallel = shuffle_significance(small_layers(2), 4, 24, "nonzero", seed=5, n_init=30, progress=False, n_jobs=2)
    assert parallel == serial
    assert len(set(pids)) == 2 and os.getpid() not in pids


def _times_factor(x, shared):
    return x * shared.value


def test_shared_data_may_hold_classes_workers_cannot_import(by_value):
    class Factor:  # like a class defined in a user's script: pickle cannot send it by name
        def __init__(self, value):
            self.value = value

    assert map_tasks(_times_factor, [1, 2, 3], n_jobs=2, progress=False, shared=Factor(5)) == [5, 10, 15]


def test_shared_data_is_not_kept_when_joblib_runs_tasks_in_this_process():
    from types import SimpleNamespace

    from joblib import parallel_config

    import nnclust.exec.parallel

    with parallel_config(backend="threading"):
        assert map_tasks(_times_factor, [1, 2], n_jobs=2, progress=False, shared=SimpleNamespace(value=3)) == [3, 6]
    assert nnclust.exec.parallel._loaded == {}


def test_shared_data_goes_to_each_dask_worker_once(by_value, dask_cluster):
    address = dask_cluster.scheduler_address
    results = map_tasks(
        _count_uses, range(8), scheduler_address=address, progress=False, shared={"seen": [], "scale": 3}
    )
    _sent_once_per_worker(results, 8)


def test_unreachable_scheduler_names_the_address(monkeypatch):
    monkeypatch.setattr("nnclust.exec.parallel.CONNECT_TIMEOUT", "1s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        map_tasks(abs, [1], scheduler_address=f"tcp://127.0.0.1:{port}", progress=False)


def test_bad_grid_and_script_names():
    with pytest.raises(ValueError, match="non-empty lists"):
        expand_grid({"seed": 3})
    with pytest.raises(ValueError, match="unknown experiment 'train'"):
        run_grid("train", {"seed": [1]})


def test_batched_embeddings_left_on_the_device_equal_the_host_ones():
    graphs = [_shuffled_graph(i, small_layers(2), "all", 0, False, {}) for i in range(3)]
    args = ([g.adjacency for g in graphs], 5, "cpu")
    host = batched_spectral_embeddings(*args, sides=[g.sides for g in graphs])
    kept = batched_spectral_embeddings(*args, sides=[g.sides for g in graphs], on_device=True)
    for (vals, emb), (vals_d, emb_d) in zip(host, kept):
        assert isinstance(emb_d, torch.Tensor)
        np.testing.assert_array_equal(vals, vals_d)
        np.testing.assert_array_equal(emb, emb_d.numpy())
