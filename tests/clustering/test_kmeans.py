"""The batched multi-start k-means: closed-form cases, seeding, and quality against
scikit-learn's KMeans with the same number of starts on trained networks' embeddings."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from nnclust.clustering.batched import batched_kmeans, batched_kmeans_starts
from nnclust.clustering.kmeans import _Nearest, _relocate_empty, kmeans, kmeans_plusplus, kmeans_starts
from nnclust.clustering.spectral import kmeans_labels, ncut, spectral_embedding
from nnclust.clustering.study import _shuffled_graph
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.nets.layers import extract_layers
from nnclust.structure.graph import build_graph


def blobs(seed=0, k=4, per=30, d=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(k, d))
    x = np.concatenate([c + rng.normal(scale=0.1, size=(per, d)) for c in centres])
    return x, np.repeat(np.arange(k), per), centres


def same_partition(a, b):
    """True when two labelings split the rows alike, whatever the cluster numbering."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("k", [2, 3, 4, 5, 9, 17, 65])  # around powers of two: indices packed in low bits; 65: float64
def test_separated_blobs_are_found_with_their_inertia(k):
    x, truth, _ = blobs(k=k)
    labels, inertia = kmeans(x, k, 5, np.random.default_rng(0))
    assert same_partition(labels, truth)
    # the inertia of the true partition, computed independently
    expected = sum(((x[truth == c] - x[truth == c].mean(0)) ** 2).sum() for c in range(k))
    assert inertia == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_units_of_the_rows_do_not_matter(scale):
    # squared distances of rows in these units leave float32's range (1e-38 to 3e38)
    x, truth, _ = blobs(k=5)
    labels, inertia = kmeans(x * scale, 5, 5, np.random.default_rng(0))
    assert same_partition(labels, truth)
    assert np.array_equal(labels, kmeans(x, 5, 5, np.random.default_rng(0))[0])
    expected = sum(((x[truth == c] - x[truth == c].mean(0)) ** 2).sum() for c in range(5))
    assert inertia == pytest.approx(expected * scale**2, rel=1e-9)


def test_as_many_clusters_as_distinct_points_gives_zero_inertia():
    x = np.arange(12.0).reshape(6, 2) ** 2
    labels, inertia = kmeans(x, 6, 3, np.random.default_rng(1))
    assert sorted(labels.tolist()) == list(range(6)) and inertia == pytest.approx(0.0, abs=1e-9)


def test_empty_clusters_move_to_the_farthest_points():
    # Two groups of identical points, three clusters: k-means++ must put a third centre
    # on a duplicate, whose cluster is empty and is moved onto a point; the groups stay apart.
    x = np.array([[0.0]] * 5 + [[10.0]] * 6)
    labels, inertia = kmeans(x, 3, 4, np.random.default_rng(0))
    assert inertia == 0.0
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]


def test_an_empty_cluster_takes_the_row_farthest_from_its_centre():
    x = np.array([[0.0], [1.0], [2.5], [9.0], [10.0], [14.0]])
    labels = np.array([[0, 0], [0, 0], [0, 0], [1, 1], [1, 1], [1, 1]])  # cluster 2 empty in both starts
    centres = np.array([[[1.0], [10.0], [50.0]], [[-3.0], [13.0], [50.0]]])
    _relocate_empty(x, labels, centres, 1)  # start 1: 2.5 is farthest (5.5 from -3)
    assert centres[1, 2, 0] == 2.5 and labels[2, 1] == 2
    assert centres[0, 2, 0] == 50.0 and labels[2, 0] == 0  # start 0 untouched
    _relocate_empty(x, labels, centres, 0)  # start 0: 14 (4 from 10), not 2.5 (1.5 from 1)
    assert centres[0, 2, 0] == 14.0 and labels[5, 0] == 2


def test_best_start_is_returned_and_every_start_is_a_lloyd_fixed_point():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(200, 2))  # no structure: many local optima
    labels, inertia, centres = kmeans_starts(x, 8, 12, np.random.default_rng(2), tol=0.0)
    for s in range(12):
        own = labels[:, s]
        means = np.stack([x[own == c].mean(0) for c in range(8)])
        # converged: the centres are the means of their clusters, and the labels their nearest centres
        np.testing.assert_allclose(centres[s], means, rtol=1e-12, atol=1e-12)
        assert np.array_equal(np.linalg.norm(x[:, None] - means[None], axis=2).argmin(axis=1), own)
        assert inertia[s] == pytest.approx(((x - means[own]) ** 2).sum(), rel=1e-12)
    assert inertia.max() > inertia.min() * 1.01  # the starts found different optima
    best_labels, best = kmeans(x, 8, 12, np.random.default_rng(2), tol=0.0)
    assert best == inertia.min() and np.array_equal(best_labels, labels[:, inertia.argmin()])


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_float32_nearest_centre_is_the_exact_one_but_for_near_ties(offset):
    # Far from the origin |x|^2 dwarfs the distances; the rows are centred before float32.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 7)) + offset
    centres = x[rng.choice(3000, size=(9, 11))]  # 9 starts, 11 centres each
    exact = ((x[:, None, None, :] - centres[None]) ** 2).sum(axis=3)  # (n, S, k), float64
    got = _Nearest(x, 11, 9)(centres)
    ordered = np.sort(exact, axis=2)
    clear = ordered[:, :, 1] - ordered[:, :, 0] > 1e-4 * ordered[:, :, 1]
    assert clear.mean() > 0.99
    assert np.array_equal(got[clear], exact.argmin(axis=2)[clear])
    assert np.array_equal(_Nearest(x, 11, 9, np.float64)(centres), exact.argmin(axis=2))


def test_kmeans_plusplus_draws_in_proportion_to_squared_distance():
    # After a first centre at 0, all of the squared-distance mass is on the row at 10.
    x = np.array([[10.0], [0.0], [0.0], [0.0], [0.0]])
    c = kmeans_plusplus(x, 2, 20, np.random.default_rng(0))
    assert all(sorted(start[:, 0].tolist()) == [0.0, 10.0] for start in c)


def greedy_plusplus_one_start_at_a_time(x, k, n_init, rng):
    """Greedy k-means++ written plainly, start by start, drawing the same random numbers."""
    n, trials = len(x), 2 + int(np.log(k))
    first = rng.integers(n, size=n_init)
    closest = [((x - x[f]) ** 2).sum(axis=1) for f in first]
    centres = [[x[f]] for f in first]
    for _ in range(1, k):
        r = rng.random((n_init, trials))
        for s in range(n_init):
            cum = np.cumsum(closest[s])
            cand = np.minimum(np.searchsorted(cum, r[s] * cum[-1]), n - 1)
            pots = [np.minimum(closest[s], ((x - x[j]) ** 2).sum(axis=1)) for j in cand]
            best = int(np.argmin([p.sum() for p in pots]))
            closest[s] = pots[best]
            centres[s].append(x[cand[best]])
    return np.array(centres)


def test_kmeans_plusplus_matches_a_plain_one_start_at_a_time_version():
    x = np.random.default_rng(6).normal(size=(300, 4))
    ours = kmeans_plusplus(x, 7, 40, np.random.default_rng(1))
    plain = greedy_plusplus_one_start_at_a_time(x, 7, 40, np.random.default_rng(1))
    # float32 potentials may pick another candidate where two are within rounding
    same = [np.array_equal(a, b) for a, b in zip(ours, plain)]
    assert np.mean(same) >= 0.9


def test_kmeans_plusplus_draws_distinct_points_per_start():
    x, _, _ = blobs(1)
    c = kmeans_plusplus(x, 4, 6, np.random.default_rng(0))
    assert c.shape == (6, 4, 3)
    for start in c:  # on separated blobs, greedy k-means++ puts one centre in each blob
        near = np.linalg.norm(start[:, None] - blobs(1)[2][None], axis=2).argmin(axis=1)
        assert sorted(near.tolist()) == [0, 1, 2, 3]


def test_same_seed_same_labels_other_seed_other_labels():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5))
    a = kmeans(x, 6, 8, np.random.default_rng(7))
    b = kmeans(x, 6, 8, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    seeded = [kmeans_labels(x, 6, s, 1) for s in (0, 0, 1)]
    assert np.array_equal(seeded[0], seeded[1]) and not np.array_equal(seeded[0], seeded[2])


@pytest.mark.parametrize("k, n_init, match", [(0, 5, "k must be between 1"), (400, 5, "k must be"), (3, 0, "n_init")])
def test_bad_arguments_name_the_value(k, n_init, match):
    with pytest.raises(ValueError, match=match):
        kmeans(np.zeros((300, 2)), k, n_init, np.random.default_rng(0))


def test_quality_matches_scikit_learn_with_equal_starts_on_trained_nets(pruned_digits_mlp):
    """Best-of-n_init inertia and n-cut, averaged over 10 seeds, on the trained net's graph
    and on two of its 'all' shuffles: no worse than KMeans(n_init) by more than 1%, about
    two standard errors of these means on this small net (on the 784-256x4 benchmark
    net the means agree to 1e-7)."""
    run, _ = pruned_digits_mlp
    layers = extract_layers(load_checkpoint(run.artifacts["pruned_model.pt"]))
    graphs = [build_graph(layers)] + [_shuffled_graph(i, layers, "all", 0, False, {}) for i in range(2)]
    k, n_init, seeds = 8, 10, range(10)
    for g in graphs:
        _, emb = spectral_embedding(g.adjacency, k, 0, g.sides)
        ours = [kmeans(emb, k, n_init, np.random.default_rng(s)) for s in seeds]
        theirs = [KMeans(k, n_init=n_init, random_state=s).fit(emb) for s in seeds]
        assert np.mean([i for _, i in ours]) <= np.mean([t.inertia_ for t in theirs]) * 1.01
        ours_ncut = np.mean([ncut(g.adjacency, lab) for lab, _ in ours])
        assert ours_ncut <= np.mean([ncut(g.adjacency, t.labels_) for t in theirs]) * 1.01


def test_torch_kmeans_reaches_the_numpy_inertias_for_the_same_starts_on_trained_nets(pruned_digits_mlp):
    """`batched_kmeans_starts` on CPU against `kmeans_starts`: the trained net's embedding
    and two of its 'all' shuffles' (different sizes: padding) in one batch, each with its
    own rng; every start's inertia agrees to float tolerance, and the labels with it."""
    run, _ = pruned_digits_mlp
    layers = extract_layers(load_checkpoint(run.artifacts["pruned_model.pt"]))
    graphs = [build_graph(layers)] + [_shuffled_graph(i, layers, "all", 0, False, {}) for i in range(2)]
    k, n_init = 8, 10
    embs = [spectral_embedding(g.adjacency, k, 0, g.sides)[1] for g in graphs]
    assert len({e.shape[0] for e in embs}) > 1  # graphs of several sizes share the batch
    labels, inertia = batched_kmeans_starts(embs, k, n_init, [np.random.default_rng(s) for s in range(3)])
    for b, emb in enumerate(embs):
        ref_labels, ref_inertia, _ = kmeans_starts(emb, k, n_init, np.random.default_rng(b))
        np.testing.assert_allclose(inertia[b], ref_inertia, rtol=1e-10)
        assert (labels[b] == ref_labels).mean() > 0.999
    # and the best start, as `kmeans` picks it
    best = batched_kmeans(embs, k, n_init, [np.random.default_rng(s) for s in range(3)])
    for b, emb in enumerate(embs):
        ref_labels, ref_inertia = kmeans(emb, k, n_init, np.random.default_rng(b))
        assert best[b][1] == pytest.approx(ref_inertia, rel=1e-10)
        assert same_partition(best[b][0], ref_labels)


def test_torch_kmeans_finds_blobs_moves_empty_clusters_and_differs_by_rng():
    x, truth, _ = blobs(k=4)
    ((labels, inertia),) = batched_kmeans([x], 4, 5, [np.random.default_rng(0)])
    assert same_partition(labels, truth)
    expected = sum(((x[truth == c] - x[truth == c].mean(0)) ** 2).sum() for c in range(4))
    assert inertia == pytest.approx(expected, rel=1e-9)
    # duplicates force an empty cluster at k-means++ (see the numpy test above)
    dup = np.array([[0.0]] * 5 + [[10.0]] * 6)
    got, ref = batched_kmeans([dup], 3, 4, [np.random.default_rng(0)])[0], kmeans(dup, 3, 4, np.random.default_rng(0))
    assert same_partition(got[0], ref[0]) and got[1] == pytest.approx(ref[1], abs=1e-12)
    # other draws, other starts: the per-start inertias of two rngs differ
    emb = np.random.default_rng(5).normal(size=(200, 4))
    _, a = batched_kmeans_starts([emb], 6, 5, [np.random.default_rng(0)])
    _, b = batched_kmeans_starts([emb], 6, 5, [np.random.default_rng(1)])
    assert not np.allclose(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_kmeans_on_cuda_reaches_the_cpu_inertias():
    rng = np.random.default_rng(0)
    embs = [rng.normal(size=(n, 6)) for n in (500, 430)]
    _, cpu = batched_kmeans_starts(embs, 6, 20, [np.random.default_rng(s) for s in range(2)])
    _, gpu = batched_kmeans_starts(embs, 6, 20, [np.random.default_rng(s) for s in range(2)], device="cuda")
    # float32 steps on another device may settle a near tie otherwise: compare the best
    np.testing.assert_allclose(gpu.min(axis=1), cpu.min(axis=1), rtol=1e-6)


def test_torch_relocation_moves_an_empty_cluster_to_the_row_farthest_from_its_centre():
    from nnclust.clustering.batched import _relocate_empty as relocate

    x = torch.tensor([[0.0], [1.0], [2.5], [9.0], [10.0], [14.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])  # cluster 2 empty
    counts = torch.bincount(labels, minlength=3)
    centres = torch.tensor([[-3.0], [13.0], [50.0]], dtype=torch.float64)
    relocate(x, labels, centres, counts)  # 2.5 is farthest (5.5 from -3), before 14 (1 from 13)
    assert centres[2, 0] == 2.5 and labels.tolist() == [0, 0, 2, 1, 1, 1]
    centres = torch.tensor([[1.0], [10.0], [50.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    relocate(x, labels, centres, counts)  # 14 (4 from 10), not 2.5 (1.5 from 1)
    assert centres[2, 0] == 14.0 and labels.tolist() == [0, 0, 0, 1, 1, 2]
