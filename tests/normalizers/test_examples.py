"""The make_example_mlp and make_example_rnn commands of normalize_model.py: a seeded
random model saved where `model` says, which the normalizers then take."""

import pytest
import torch
from sacred.observers import FileStorageObserver

import normalize_model
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.nets.layers import extract_layers
from nnclust.normalizers.examples import EXAMPLES, example_model


def make(command, path, **config):
    return normalize_model.ex.run(command, config_updates={"model": str(path), **config}).result


def test_make_example_mlp_saves_a_seeded_mlp_that_normalizes(tmp_path):
    res = make("make_example_mlp", tmp_path / "a.pt", seed=3)
    again = make("make_example_mlp", tmp_path / "b.pt", seed=3)
    other = make("make_example_mlp", tmp_path / "c.pt", seed=4)
    assert res["sha256"] == again["sha256"] != other["sha256"]
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert ckpt.architecture == {"model": {"name": "mlp", **{"hidden": EXAMPLES["mlp"]["hidden"]}},
                                 "input_shape": [2], "num_classes": 1}  # fmt: skip
    widths = [lay.n_out for lay in extract_layers(ckpt.build_model())]
    assert widths == [16, 16, 1]
    run = run_in_process(
        normalize_model.ex,
        [FileStorageObserver(str(tmp_path / "runs"))],
        {"model": str(tmp_path / "a.pt"), "normalizer": "rescale_relu", "progress": False},
    )
    # an exact normalizer: what is left is the float32 rounding of the stored weights
    assert run.result["relative_output_change"] < 1e-6


def test_make_example_rnn_takes_its_options_and_delete_dead_reads_it(tmp_path):
    make("make_example_rnn", tmp_path / "r.pt", seed=1, example={"hidden": [6], "input_shape": [5, 3]})
    ckpt = load_checkpoint(tmp_path / "r.pt")
    net = ckpt.build_model()
    assert ckpt.architecture["model"] == {"name": "relu_rnn", "hidden": [6]}
    assert net(torch.zeros(4, 5, 3)).shape == (4, 1)
    run = run_in_process(
        normalize_model.ex,
        [],
        {"model": str(tmp_path / "r.pt"), "normalizer": "delete_dead_neurons", "progress": False},
    )
    assert run.result["parent_hidden_widths"] == [6] and run.result["max_output_change"] == 0.0


def test_the_example_draws_from_its_seed_and_leaves_the_global_torch_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a, _ = example_model("mlp", 3)
    assert torch.equal(torch.rand(3), expected)
    b, _ = example_model("mlp", 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"example": {"hiden": [4]}}, r"unknown key\(s\) \['hiden'\]"),
        ({"example": {"hidden": [0]}}, r"example.hidden=\[0\] is not allowed: expected positive ints"),
        ({"model": None}, "model=None is not allowed"),
    ],
)
def test_bad_example_config_is_named(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message):
        normalize_model.ex.run("make_example_mlp", config_updates={"model": str(tmp_path / "a.pt"), **config})
    assert not (tmp_path / "a.pt").exists()
