"""Artifacts are stored under a stated MIME type, so a MongoDB store does not guess."""

from pathlib import Path

import pytest

from nnclust.experiments.artifacts import add_artifact, content_type


@pytest.mark.parametrize(
    "name, expected",
    [("pruned_model.pt", "application/octet-stream"), ("imp_states.npz", "application/octet-stream"),
     ("training_curves.png", "image/png"), ("mask_within_cluster.csv", "text/csv")],
)  # fmt: skip
def test_artifacts_carry_their_content_type(name, expected):
    assert content_type(name) == expected

    class Run:
        def add_artifact(self, filename, name=None, metadata=None, content_type=None):
            self.got = (Path(filename).name, name, content_type)

    run = Run()
    add_artifact(run, Path("/tmp"), name)
    assert run.got == (name, name, expected)
