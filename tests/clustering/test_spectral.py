import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import SpectralClustering

from nnclust.clustering.batched import batched_spectral_embeddings
from nnclust.clustering.spectral import ncut, spectral_cluster, spectral_embedding
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.nets.layers import extract_layers
from nnclust.structure.graph import build_graph


def random_graph(n, density, seed):
    rng = np.random.default_rng(seed)
    a = sp.random(n, n, density=density, random_state=rng, data_rvs=lambda k: rng.uniform(0.1, 1, k))
    a = sp.triu(a, 1)
    a = a + a.T + sp.diags(np.ones(n - 1), 1) + sp.diags(np.ones(n - 1), -1)  # a path keeps it connected
    return sp.csr_matrix(a)


def dense_ncut(a, labels):
    total = 0.0
    for c in np.unique(labels):
        inside = labels == c
        cut = a[np.ix_(inside, ~inside)].sum()
        vol = a[inside].sum()
        total += cut / vol
    return total


def test_ncut_is_zero_for_disconnected_clusters():
    block = np.ones((3, 3)) - np.eye(3)
    a = sp.block_diag([block, 2 * block, block]).tocsr()
    assert ncut(a, np.repeat([0, 1, 2], 3)) == 0.0


def test_ncut_of_two_nodes_split_is_two():
    a = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    assert ncut(a, np.array([0, 1])) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(5))
def test_ncut_matches_a_dense_computation_and_ignores_label_names(seed):
    a = random_graph(40, 0.15, seed)
    labels = np.random.default_rng(seed).integers(0, 5, 40)
    value = ncut(a, labels)
    assert value == pytest.approx(dense_ncut(a.toarray(), labels), rel=1e-12)
    perm = np.random.default_rng(seed + 100).permutation(5)
    assert ncut(a, perm[labels]) == pytest.approx(value, rel=1e-12)


def test_ncut_rejects_removed_node_labels():
    with pytest.raises(ValueError, match="-1"):
        ncut(sp.eye(3, format="csr"), np.array([0, -1, 1]))


@pytest.mark.parametrize("n", [60, 700])  # dense and sparse eigensolver paths
def test_embedding_eigenvalues_match_a_dense_laplacian(n):
    a = random_graph(n, 0.05, 7)
    vals, emb = spectral_embedding(a, 4, seed=0)
    d = np.asarray(a.sum(1)).ravel()
    lap = np.eye(n) - a.toarray() / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(lap)[:4], atol=1e-8)
    assert emb.shape == (n, 4)


def random_bipartite(n_rows, n_cols, density, seed):
    """A connected bipartite graph: rows 0..n_rows-1 on one side, the rest on the other."""
    rng = np.random.default_rng(seed)
    b = sp.random(n_rows, n_cols, density=density, random_state=rng, data_rvs=lambda k: rng.uniform(0.1, 1, k))
    # a zig-zag path through both sides keeps it connected
    steps = np.arange(max(n_rows, n_cols))
    b = b + sp.coo_matrix((np.ones(steps.size), (steps % n_rows, steps % n_cols)), shape=b.shape)
    b = b + sp.coo_matrix((np.ones(steps.size), ((steps + 1) % n_rows, steps % n_cols)), shape=b.shape)
    a = sp.bmat([[None, b], [b.T, None]]).tocsr()
    return a, np.arange(n_rows + n_cols) >= n_rows


# dense Gram (small side), dense Gram (full block), Lanczos on the Gram operator
@pytest.mark.parametrize("n_rows, n_cols, density", [(300, 200, 0.05), (900, 600, 0.6), (1100, 700, 0.02)])
def test_bipartite_embedding_equals_the_general_one(n_rows, n_cols, density):
    a, sides = random_bipartite(n_rows, n_cols, density, seed=n_cols)
    vals, emb = spectral_embedding(a, 6, seed=0, sides=sides)
    ref_vals, ref_emb = spectral_embedding(a, 6, seed=0)
    d = np.asarray(a.sum(1)).ravel()
    lap = np.eye(a.shape[0]) - a.toarray() / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(lap)[:6], atol=1e-10)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-10)
    # D^1/2 emb has orthonormal columns that satisfy L x = lambda x
    x = emb * np.sqrt(d)[:, None]
    np.testing.assert_allclose(x.T @ x, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(lap @ x, x * vals, atol=1e-7)
    # the eigenvalues are distinct, so the embeddings agree column by column (signs are fixed)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-6)
    # either side may be given as True
    np.testing.assert_allclose(spectral_embedding(a, 6, seed=0, sides=~sides)[1], emb, atol=1e-10)


def test_bipartite_path_falls_back_when_the_small_side_is_too_small():
    # 5 nodes on the small side give M only 5 nonzero singular values; the 6th wanted
    # eigenvalue of M is 0, which B^T B cannot give
    a, sides = random_bipartite(60, 5, 0.5, seed=1)
    vals, _ = spectral_embedding(a, 6, seed=0, sides=sides)
    d = np.asarray(a.sum(1)).ravel()
    lap = np.eye(a.shape[0]) - a.toarray() / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(lap)[:6], atol=1e-10)
    assert vals[-1] == pytest.approx(1.0)


def test_rank_deficient_block_falls_back_to_the_whole_graph():
    # B of rank 3 with 30 columns: sigma_4.. are 0, so 6 eigenvectors cannot all come from B^T B
    rng = np.random.default_rng(2)
    b = sp.csr_matrix(rng.uniform(0.1, 1, (50, 3)) @ rng.uniform(0.1, 1, (3, 30)))
    a = sp.bmat([[None, b], [b.T, None]]).tocsr()
    vals, emb = spectral_embedding(a, 6, seed=0, sides=np.arange(80) >= 50)
    d = np.asarray(a.sum(1)).ravel()
    lap = np.eye(80) - a.toarray() / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(lap)[:6], atol=1e-10)
    x = emb * np.sqrt(d)[:, None]
    np.testing.assert_allclose(lap @ x, x * vals, atol=1e-8)


def test_duplicate_and_explicit_zero_entries_change_nothing():
    a, sides = random_bipartite(300, 200, 0.05, seed=4)
    coo = a.tocoo()
    # every edge stored as two halves, plus a stored zero between two nodes on one side
    rows = np.concatenate([coo.row, coo.row, [0]])
    cols = np.concatenate([coo.col, coo.col, [1]])
    vals = np.concatenate([coo.data / 2, coo.data / 2, [0.0]])
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=a.shape[0]))])
    messy = sp.csr_matrix((vals[order], cols[order], indptr), shape=a.shape)  # CSR keeps duplicates
    assert messy.nnz == 2 * a.nnz + 1 and not messy.has_canonical_format
    ref_vals, ref_emb = spectral_embedding(a, 5, seed=0, sides=sides)
    for vals_, emb in [
        spectral_embedding(messy, 5, seed=0, sides=sides),
        batched_spectral_embeddings([messy], 5, "cpu", sides=[sides])[0],
        batched_spectral_embeddings([messy], 5, "cpu")[0],
    ]:
        np.testing.assert_allclose(vals_, ref_vals, atol=1e-12)
        np.testing.assert_allclose(emb, ref_emb, atol=1e-10)
    labels = np.arange(500) % 5
    assert ncut(messy, labels) == pytest.approx(ncut(a, labels), rel=1e-12)


def test_sides_must_be_a_bipartition():
    a, sides = random_bipartite(60, 40, 0.1, seed=0)
    sides[0] = True  # node 0 now shares a side with its neighbours
    with pytest.raises(ValueError, match="not a bipartition"):
        spectral_embedding(a, 3, sides=sides)
    with pytest.raises(ValueError, match="shape"):
        spectral_embedding(a, 3, sides=sides[:-1])


def test_planted_clusters_are_recovered_exactly():
    rng = np.random.default_rng(0)
    sizes = [20, 30, 25]
    blocks = [sp.csr_matrix(rng.uniform(0.5, 1, (s, s))) for s in sizes]
    a = sp.block_diag(blocks).tolil()
    a[0, 20] = a[20, 0] = a[25, 60] = a[60, 25] = 0.01  # weak links between blocks
    a = sp.csr_matrix(a)
    a = (a + a.T) / 2
    cl = spectral_cluster(a, 3, seed=0)
    truth = np.repeat([0, 1, 2], sizes)
    # the same partition up to label names
    assert len({(t, c) for t, c in zip(truth, cl.labels)}) == 3
    assert cl.ncut == pytest.approx(ncut(a, truth)) and cl.ncut < 0.01


def test_same_seed_same_labels_and_bad_cluster_counts():
    a = random_graph(80, 0.1, 3)
    one, two = spectral_cluster(a, 5, seed=11), spectral_cluster(a, 5, seed=11)
    assert one.ncut == two.ncut and np.array_equal(one.labels, two.labels)
    with pytest.raises(ValueError, match="num_clusters=80 needs a graph of more than 80 nodes"):
        spectral_cluster(a, 80)
    with pytest.raises(ValueError, match="num_clusters must be an int >= 2"):
        spectral_cluster(a, 1)


def test_no_worse_than_scikit_learn_on_a_trained_pruned_mlp(pruned_digits_mlp):
    run, _ = pruned_digits_mlp
    for path in (run.artifacts["pruned_model.pt"], run.artifacts["unpruned_model.pt"]):
        graph = build_graph(extract_layers(load_checkpoint(path)))
        ours = spectral_cluster(graph.adjacency, 12, seed=0, sides=graph.sides).ncut
        sk = SpectralClustering(
            12, affinity="precomputed", eigen_solver="arpack", assign_labels="kmeans", random_state=0
        ).fit(graph.adjacency)
        assert ours <= ncut(graph.adjacency, sk.labels_) * 1.01


def test_bipartite_block_is_the_block_between_the_sides():
    from nnclust.clustering.spectral import bipartite_block

    a, sides = random_bipartite(40, 30, 0.2, seed=3)
    rows, cols, b = bipartite_block(a, sides)
    np.testing.assert_array_equal(b.toarray(), a.toarray()[np.ix_(rows, cols)])
    assert b.has_canonical_format
    # stored zeros between two nodes of one side are no edges, on either side
    coo = a.tocoo()
    for i, j in [(0, 1), (45, 50)]:  # rows' side, columns' side
        entries = (np.append(coo.row, [i, j]), np.append(coo.col, [j, i]))
        zeros = sp.csr_matrix((np.append(coo.data, [0.0, 0.0]), entries), shape=a.shape)
        assert zeros.nnz == a.nnz + 2
        np.testing.assert_array_equal(bipartite_block(zeros, sides)[2].toarray(), b.toarray())
        with pytest.raises(ValueError, match="not a bipartition"):
            bipartite_block(sp.csr_matrix((np.append(coo.data, [1.0, 1.0]), entries), shape=a.shape), sides)
