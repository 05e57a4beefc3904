"""The random streams each run splits its seed into, read off the code path itself.

A spy on `seeding.seed_sequence` (which `rng`, `int_seed` and `torch_generator` all call)
records every stream a body derives: its parent seed, name and index, and the state it
yields. The tests pin the structure — which streams come from the run seed, which from
another stream — and that every stream is distinct and changes with the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import RecordingRun
from tests.networks import small_layers

from nnclust.core import seeding


class Streams(list):
    """(parent seed, stream, index, state) of every stream derived, in order."""

    def of(self, seed=None, stream=None):
        return [c for c in self if (seed is None or c[0] == seed) and (stream is None or c[1] == stream)]

    def keys(self, seed):
        return sorted((c[1], c[2]) for c in self.of(seed))


@pytest.fixture
def streams(monkeypatch):
    out = Streams()
    real = seeding.seed_sequence

    def spy(seed, stream, *index):
        seq = real(seed, stream, *index)
        out.append((int(seed), stream, tuple(index), tuple(seq.generate_state(4).tolist())))
        return seq

    monkeypatch.setattr(seeding, "seed_sequence", spy)
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets train fastest on one thread, on a machine shared with other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_figures(monkeypatch):
    """The figures are tested with their scripts; the bodies here only need to run."""
    import nnclust.viz.figures as figures
    import nnclust.viz.imp as imp_figures

    for module in (figures, imp_figures):
        for name in [
            n for n, f in vars(module).items() if callable(f) and getattr(f, "__module__", "") == module.__name__
        ]:
            monkeypatch.setattr(module, name, lambda *a, **kw: "figure")
    monkeypatch.setattr(figures, "save", lambda fig, path: Path(path).write_text("figure"))


def _states_distinct(calls):
    """Distinct streams (parent seed, name, index) draw distinct numbers; deriving one
    stream twice gives it twice."""
    by_key = {c[:3]: c[3] for c in calls}
    assert all(by_key[c[:3]] == c[3] for c in calls)
    assert len(set(by_key.values())) == len(by_key), "two streams draw the same numbers"


def _imp(tmp_path, seed, streams):
    from nnclust.experiments.imp import imp_job

    streams.clear()
    imp_job(
        RecordingRun(tmp_path / str(seed)), seed,
        {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 80, "noise": 0.1}, "datasets",
        {"name": "mlp", "hidden": [4, 4]}, {"name": "normal", "bias": "same", "std": 0.3},
        {"name": "adam", "lr": 0.02}, 32, {"levels": 2, "target_params": 30, "max_epochs": 1}, progress=False,
    )  # fmt: skip
    return Streams(streams)


def test_imp_streams_split_the_run_seed(tmp_path, streams, no_figures):
    first = _imp(tmp_path, 11, streams)
    level_keys = [("imp.level", (i,)) for i in range(3)]  # levels 0..2: the dense net and two prunings
    assert first.keys(11) == sorted(
        [("data_split", ()), ("imp.torch", ()), ("imp.validation", ()), ("init", ()), *level_keys]
    )
    # the data: every stream the dataset draws comes from the run's data_split stream
    split = seeding.int_seed(11, "data_split")
    data_streams = [c for c in first if c[1].startswith("data.")]
    assert data_streams and all(c[0] == split for c in data_streams)
    # the data order of level i comes from level i's stream, a new one per level
    orders = first.of(stream="data_order")
    assert [c[0] for c in orders] == [seeding.int_seed(11, "imp.level", i) for i in range(3)]
    _states_distinct(first)
    second = _imp(tmp_path, 12, streams)
    assert second.keys(12) == first.keys(11)
    # every stream of the run changes with the seed, the data split and order included
    assert not {c[3] for c in first} & {c[3] for c in second}


def test_training_draws_split_init_and_order_from_the_run_seed(tmp_path, streams, no_figures):
    from tests.conftest import train

    config = dict(dataset={"name": "moons", "n_samples": 100}, model={"name": "mlp", "hidden": [4]}, epochs=2,
                  pruning={"final_sparsity": 0.0, "num_pruning_epochs": 0})  # fmt: skip
    train(tmp_path / "a", seed=5, **config)
    assert streams.keys(5) == [("data_order", ()), ("data_split", ()), ("init", ())]
    split = seeding.int_seed(5, "data_split")
    assert all(c[0] == split for c in streams if c[1].startswith("data."))
    _states_distinct(streams)
    before = {c[3] for c in streams}
    streams.clear()
    train(tmp_path / "b", seed=6, **config)
    assert not before & {c[3] for c in streams}


def test_each_shuffle_and_its_k_means_have_their_own_streams(streams, monkeypatch):
    import nnclust.clustering.study as study

    kmeans_seeds = []
    real = study.spectral_cluster

    def spectral_cluster(adj, k, seed, *a, **kw):
        kmeans_seeds.append(seed)
        return real(adj, k, seed, *a, **kw)

    monkeypatch.setattr(study, "spectral_cluster", spectral_cluster)
    n = 5
    study.shuffle_significance(small_layers(), 4, n, "nonzero", seed=21, n_init=2, spread_searches=2, progress=False)
    # the network's own embedding and k-means, shuffle i's draw and k-means seed, the spread searches
    assert streams.keys(21) == sorted(
        [("eigsh", ()), ("kmeans", ()), *(("shuffle", (i,)) for i in range(n)),
         *(("shuffle_kmeans", (i,)) for i in range(n)), ("ncut_spread", (0,)), ("ncut_spread", (1,))]
    )  # fmt: skip
    # shuffle i's clustering is seeded from its own stream, not from the study's seed
    assert kmeans_seeds == [seeding.int_seed(21, "shuffle_kmeans", i) for i in range(n)]
    assert 21 not in kmeans_seeds and len(set(kmeans_seeds)) == n
    for s in kmeans_seeds:
        assert streams.keys(s) == [("eigsh", ()), ("kmeans", ())]
    _states_distinct(streams)


@pytest.mark.parametrize("method", ["all", "nonzero", "nonzero_resample"])
@pytest.mark.parametrize("sparse", [False, True])
def test_layers_of_one_shape_get_their_own_draws(method, sparse):
    from nnclust.clustering.shuffles import shuffle_layers
    from nnclust.nets.weight_layer import SparseWeightLayer

    # three layers with equal weights: equal draws would give equal shuffles
    (lay,) = small_layers(3, shapes=((12, 12),))
    layers = [lay, lay, lay]
    if sparse:
        layers = [SparseWeightLayer.of(x) for x in layers]
    out = shuffle_layers(layers, method, np.random.default_rng(0))
    dense = [x.dense() if sparse else x.weight for x in out]
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(dense[i], dense[j])


def test_shuffled_batch_norm_scales_draw_per_layer():
    from dataclasses import replace

    from nnclust.clustering.shuffles import shuffle_layers

    (lay,) = small_layers(4, shapes=((16, 8),))
    gamma, std = np.arange(1.0, 17.0), np.linspace(1, 2, 16)
    lay = replace(lay.with_weight(lay.weight, gamma / std), bn_gamma=gamma, bn_std=std)
    out = shuffle_layers([lay, lay], "nonzero", np.random.default_rng(1), shuffle_bn=True)
    assert not np.array_equal(out[0].bn_scale, out[1].bn_scale)
    assert sorted(out[0].bn_gamma) == sorted(gamma)  # a permutation of the unit's own values


def test_each_null_draw_of_each_cluster_has_its_own_stream(streams, monkeypatch):
    import nnclust.experiments.ablate as ablate

    drawn = []
    monkeypatch.setattr(ablate, "_lesioned_accuracy", lambda members, shared: (0.5, np.zeros(2)))
    real = ablate.random_unit_set

    def random_unit_set(group, keep, like, rng):
        members = real(group, keep, like, rng)
        drawn.append(tuple(np.flatnonzero(members)))
        return members

    monkeypatch.setattr(ablate, "random_unit_set", random_unit_set)
    group = np.repeat([0, 1], 20)
    shared = {"labels": np.tile([0, 1], 20), "group": group, "keep": np.ones(40, bool), "seed": 31,
              "base": 0.9, "base_per_class": np.zeros(2)}  # fmt: skip
    for c in (0, 1):
        ablate._null_task((c, range(0, 4)), shared)
    assert streams.keys(31) == sorted(("lesion_null", (c, i)) for c in (0, 1) for i in range(4))
    assert len(set(drawn)) == len(drawn)  # every draw its own random set
    # draws do not depend on how they are chunked over workers
    whole = list(drawn)
    drawn.clear()
    for part in (range(0, 3), range(3, 4)):
        ablate._null_task((0, part), shared)
    assert drawn == whole[:4]


def test_symmetry_masks_and_inits_draw_per_layer_from_the_run_seed(tmp_path, streams, no_figures):
    from nnclust.experiments.symmetry import run_driver

    config = {"model": {"name": "mnist_fc", "width": 8, "depth": 2}, "epochs": 1, "sparsity_range": [0.5, 0.6],
              "mask_type": "random", "init": "he", "progress": False, "dense_output": False}  # fmt: skip
    run_driver(RecordingRun(tmp_path), 41, config, "random_mask")
    layers = [(i,) for i in range(3)]
    assert streams.keys(41) == sorted(
        [("data_split", ()), ("init", ()), ("mask_sparsity", ()), ("data_order", ()),
         *(("mask/random", i) for i in layers), *(("sparse_init", i) for i in layers)]
    )  # fmt: skip
    _states_distinct(streams)


def test_the_spy_sees_every_stream_helper(streams):
    seeding.rng(1, "a")
    seeding.int_seed(1, "b", 2)
    seeding.torch_generator(1, "c")
    assert [c[:3] for c in streams] == [(1, "a", ()), (1, "b", (2,)), (1, "c", ())]
    assert Path(seeding.__file__).name == "seeding.py"
