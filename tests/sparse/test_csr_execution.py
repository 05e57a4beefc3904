"""CSR models compute what the dense ones do: every registered MLP, several sparsities,
float32 and float64; the model functions agree with forward hooks and closed forms."""

import numpy as np
import pytest
import torch

from nnclust.nets.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from nnclust.nets.layers import extract_layers
from nnclust.nets.registry import MODELS, build_model
from nnclust.pruning import magnitude_masks
from nnclust.sparse import (
    CSRLinear,
    SparseConversionError,
    SparseMLP,
    accuracy,
    csr_from_dense,
    model_nbytes,
    outputs,
    partial_outputs,
    to_csr,
    top1_top2_ratio,
    top_k_accuracy,
)
from nnclust.training import prunable_weights

MLPS = [name for name in MODELS.names() if name.startswith("mlp")]
SPARSITIES = [0.0, 0.5, 0.9, 0.99]
INPUT = (1, 8, 8)


def _randomize_batch_norm(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


def pruned_mlp(name, sparsity, dtype=torch.float32, batch_norm=False, seed=0):
    torch.manual_seed(seed)
    model = build_model({"name": name, "hidden": [48, 32], "batch_norm": batch_norm}, INPUT, 10).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    _randomize_batch_norm(model, gen)
    masks = magnitude_masks(prunable_weights(model), sparsity, "layer")
    with torch.no_grad():
        for n, p in prunable_weights(model).items():
            p.mul_(masks[n].to(p.dtype))
    return model.eval(), masks


def rel_err(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def test_every_registered_mlp_is_covered():
    assert MLPS == ["mlp", "mlp_sequential"]


@pytest.mark.parametrize("name", MLPS)
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_csr_outputs_match_the_dense_model(name, sparsity, dtype, batch_norm):
    model, _ = pruned_mlp(name, sparsity, dtype, batch_norm)
    sparse = to_csr(model, dtype=dtype)
    x = torch.rand(64, *INPUT, dtype=dtype)
    assert sparse.dtype == dtype
    assert rel_err(outputs(sparse, x), outputs(model, x)) <= 1e-5
    # only the nonzero weights are stored
    nnz = sum(int((w != 0).sum()) for w in prunable_weights(model).values())
    assert sum(lin.nnz for lin in sparse.fcs) == nnz


@pytest.mark.parametrize("name", MLPS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_partial_outputs_match_forward_hooks_on_the_dense_model(name, batch_norm):
    model, _ = pruned_mlp(name, 0.8, batch_norm=batch_norm)
    sparse = to_csr(model)
    x = torch.rand(40, *INPUT)
    # what the next layer reads: the output of each hidden layer's ReLU, and the logits
    seen = {}
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    handles = [r.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k, r in enumerate(relus)]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    expected = [seen[0], seen[1], logits]
    for layer, want in enumerate(expected):
        assert rel_err(partial_outputs(sparse, x, layer), want) <= 1e-5
        assert torch.equal(partial_outputs(model, x, layer), want)
    assert torch.equal(partial_outputs(sparse, x, -1), partial_outputs(sparse, x, 2))
    with pytest.raises(IndexError, match="layer 3 is out of range"):
        partial_outputs(sparse, x, 3)
    with pytest.raises(IndexError, match="layer 5 is out of range"):
        partial_outputs(model, x, 5)


def test_partial_outputs_are_a_numpy_forward_pass():
    model, _ = pruned_mlp("mlp", 0.7, torch.float64)
    layers = extract_layers(model)
    x = torch.rand(30, *INPUT, dtype=torch.float64)
    h = x.flatten(1).numpy()
    for i, lay in enumerate(layers):
        h = h @ lay.weight.T + lay.bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
        np.testing.assert_allclose(partial_outputs(to_csr(model, torch.float64), x, i).numpy(), h, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conversion_back_to_dense_is_exact(dtype):
    model, _ = pruned_mlp("mlp", 0.9, dtype)
    dense, arch = to_csr(model, dtype).to_dense()
    assert arch["model"] == {"name": "mlp", "hidden": [48, 32]} and arch["num_classes"] == 10
    for (k, a), (k2, b) in zip(model.state_dict().items(), dense.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype == dtype and torch.equal(a, b)
    # from a sequential network, too: the weights land in the layered mlp, unchanged
    seq, _ = pruned_mlp("mlp_sequential", 0.9, dtype)
    back, _ = to_csr(seq, dtype).to_dense()
    assert all(torch.equal(a, b) for a, b in zip(seq.state_dict().values(), back.state_dict().values()))


def test_checkpoints_with_masks_and_plain_state_dicts_convert(tmp_path):
    model, masks = pruned_mlp("mlp", 0.9)
    arch = {"model": {"name": "mlp", "hidden": [48, 32]}, "input_shape": list(INPUT), "num_classes": 10}
    path = save_checkpoint(tmp_path / "m.pt", model, arch, masks)
    ckpt = load_checkpoint(path)
    sparse = to_csr(ckpt)
    assert sparse.input_shape == INPUT  # images stay images
    x = torch.rand(20, *INPUT)
    assert rel_err(outputs(sparse, x), outputs(model, x)) <= 1e-6
    assert rel_err(outputs(to_csr(model.state_dict()), x), outputs(model, x)) <= 1e-6
    # a pruned weight that a (buggy) optimizer regrew stays out: the mask is applied
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["layer0.fc.weight"][~masks["layer0.fc.weight"]] = 1.0
    assert to_csr(Checkpoint(state, arch, masks)).fcs[0].nnz == int(masks["layer0.fc.weight"].sum())


def test_csr_checkpoint_round_trip_loads_without_code(tmp_path):
    model, _ = pruned_mlp("mlp", 0.95)
    sparse = to_csr(model)
    path = save_checkpoint(tmp_path / "csr.pt", sparse, sparse.architecture())
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["layer0.fc.weight"].layout == torch.sparse_csr
    ckpt = load_checkpoint(path)
    x = torch.rand(20, *INPUT)
    assert torch.equal(outputs(to_csr(ckpt), x), outputs(sparse, x))
    assert torch.equal(outputs(ckpt.build_model(), x), outputs(sparse.to_dense()[0], x))
    # every graph analysis reads the CSR checkpoint like a dense one
    for a, b in zip(extract_layers(ckpt), extract_layers(model)):
        np.testing.assert_array_equal(a.weight, b.weight)
    # the content hash covers the CSR values: a changed weight is caught on load
    raw["state_dict"]["layer0.fc.weight"].values()[0] += 1.0
    torch.save(raw, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "tampered.pt")


def test_csr_memory_is_values_plus_indices():
    model, _ = pruned_mlp("mlp", 0.9)
    sparse = to_csr(model)
    nnz = sum(lin.nnz for lin in sparse.fcs)
    rows = sum(lin.out_features + 1 for lin in sparse.fcs)
    biases = sum(lin.out_features for lin in sparse.fcs)
    # float32 values, int32 column indices and row pointers, float32 biases
    assert model_nbytes(sparse) == 4 * nnz + 4 * nnz + 4 * rows + 4 * biases
    assert sparse.fcs[0].weight.col_indices().dtype == torch.int32
    assert model_nbytes(model) == 4 * sum(p.numel() for p in model.parameters())


def test_csr_from_dense_keeps_exact_values_and_checks_shape():
    w = torch.tensor([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.25]])
    csr = csr_from_dense(w)
    assert csr.crow_indices().tolist() == [0, 1, 3] and csr.col_indices().tolist() == [1, 0, 2]
    assert torch.equal(csr.to_dense(), w)
    assert csr_from_dense(w, torch.int64).col_indices().dtype == torch.int64
    with pytest.raises(SparseConversionError, match="2-d"):
        csr_from_dense(torch.ones(2, 2, 2))


@pytest.mark.parametrize("name", ["cnn", "cnn_sequential"])
def test_a_cnn_is_rejected_with_the_layer_named(name):
    model = build_model({"name": name}, INPUT, 10)
    message = r"'(layer0\.conv|0_conv)' is a conv layer; conv layers are not supported"
    with pytest.raises(SparseConversionError, match=message):
        to_csr(model)


def test_wrong_input_width_is_a_clear_error():
    sparse = to_csr(pruned_mlp("mlp", 0.5)[0])
    with pytest.raises(SparseConversionError, match="input has 10 features per sample; the model reads 64"):
        sparse(torch.rand(3, 10))


def _fixed_logits_model(logits):
    """A 2-layer SparseMLP whose logits are `logits` for one-hot inputs e_n (n = sample)."""
    n, k = logits.shape
    w1 = torch.eye(n, dtype=torch.float64)
    w2 = logits.T.contiguous().double()  # (k, n): logits of sample n in column n
    z = torch.float64
    return SparseMLP([CSRLinear(w1, torch.zeros(n, dtype=z)), CSRLinear(w2, torch.zeros(k, dtype=z))])


def test_accuracy_top_k_and_top1_top2_ratio_on_known_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.5], [0.2, 0.1, 0.0]], dtype=torch.float64)
    model = _fixed_logits_model(logits)
    x = torch.eye(4, dtype=torch.float64)
    y = torch.tensor([0, 2, 2, 1])
    assert torch.equal(outputs(model, x), logits.double())
    assert accuracy(model, x, y) == 0.5  # samples 0 and 2
    assert top_k_accuracy(model, x, y, 2) == 1.0  # label 2 is second for sample 1, label 1 for sample 3
    assert top_k_accuracy(model, x, y, 3) == 1.0
    ratio = top1_top2_ratio(model, x)
    np.testing.assert_allclose(ratio.numpy(), np.exp([2.0, 1.0, 1.5, 0.1]), rtol=1e-12)
    # softmax p1/p2 by definition
    p = torch.softmax(logits.double(), 1).sort(1, descending=True).values
    np.testing.assert_allclose(ratio.numpy(), (p[:, 0] / p[:, 1]).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        top_k_accuracy(model, x, y, 4)


def test_model_functions_agree_on_dense_and_sparse_models():
    model, _ = pruned_mlp("mlp_sequential", 0.9, torch.float64)
    sparse = to_csr(model, torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(200, *INPUT, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (200,), generator=gen)
    assert accuracy(model, x, y) == accuracy(sparse, x, y)
    assert top_k_accuracy(model, x, y, 3) == top_k_accuracy(sparse, x, y, 3)
    np.testing.assert_allclose(top1_top2_ratio(model, x), top1_top2_ratio(sparse, x), rtol=1e-9)
    # batching changes only the rounding of the sparse products
    torch.testing.assert_close(outputs(sparse, x, batch_size=7), outputs(sparse, x), rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csr_on_cuda_matches_the_cpu(dtype):
    model, _ = pruned_mlp("mlp", 0.95, dtype)
    x = torch.rand(64, *INPUT, dtype=dtype)
    on_gpu = to_csr(model, dtype, device="cuda")
    assert on_gpu.device.type == "cuda"
    assert rel_err(outputs(on_gpu, x).cpu(), outputs(model, x)) <= 1e-5
    assert rel_err(partial_outputs(on_gpu, x, 0).cpu(), partial_outputs(model, x, 0)) <= 1e-5
