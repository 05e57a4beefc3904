"""The readable summary of a run: headline numbers never cut, every script covered, and
`python -m nnclust show` on folders, with one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnclust.experiments.summary import HEADLINES, format_run, summarize

ROOT = Path(__file__).resolve().parents[1]


def _write_run(folder: Path, name: str, result, status="COMPLETED", artifacts=()):
    folder.mkdir(parents=True)
    record = {"experiment": {"name": name}, "status": status, "result": result, "artifacts": list(artifacts)}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_every_script_has_headlines_and_every_headline_a_script():
    scripts = {p.stem for p in (ROOT / "src").glob("*.py")}
    names = set()
    for p in (ROOT / "src").glob("*.py"):
        text = p.read_text()
        if "make_experiment(" in text:
            names.add(re.search(r'make_experiment\(\s*"(\w+)"', text)[1])
    assert names and names <= scripts
    assert set(HEADLINES) == names


def test_shuffle_summary_keeps_the_statistics_of_a_long_result():
    rng = np.random.default_rng(0)
    result = {
        "true_ncut": 7.9, "true_ncut_searches": rng.normal(8, 0.1, 10).tolist(), "true_ncut_sd": 0.05,
        "z_sd": 0.5, "shuffled_ncuts": rng.normal(8.4, 0.1, 1000).tolist(), "mean": 8.4, "std": 0.1,
        "z_score": -5.0, "percentile": 0.0, "p_value": 1 / 1001, "shuffle_method": "all",
    }  # fmt: skip
    text = summarize("shuffle_and_cluster", result, "shuffle_clust_runs/3", ["shuffle_histogram.png"])
    lines = text.splitlines()
    # the statistics come first, in the headline order, each with its meaning
    order = [ln.split()[0] for ln in lines[1:9]]
    assert order == ["true_ncut", "mean", "std", "z_score", "p_value", "z_sd", "true_ncut_sd", "percentile"]
    assert "-5" in lines[4] and "negative: more clusterable" in lines[4]
    assert "0.000999" in lines[5]
    # the 1000 shuffles are one line: their count and range
    assert any(ln.split()[:3] == ["shuffled_ncuts", "1000", "values"] for ln in lines)
    assert len(text) < 2000
    assert lines[-1] == "  plots   shuffle_clust_runs/3/shuffle_histogram.png"


def test_records_become_a_table_and_dicts_one_line():
    result = {
        "accuracy": 0.9, "mode": "silence", "num_null": 50,
        "clusters": [{"cluster": c, "size": 3 + c, "p_value": 0.01 * (c + 1), "null_drops": list(range(50))}
                     for c in range(3)],
        "unit_counts": {"alive": 3, "dead": 1},
    }  # fmt: skip
    text = summarize("ablate_clusters", result)
    assert "  unit_counts  alive 3, dead 1" in text
    table = text.split("  clusters:\n")[1].splitlines()
    assert table[0].split() == ["cluster", "size", "p_value"]  # the 50-long list is left to run.json
    assert table[3].split() == ["2", "5", "0.03"]


def test_show_reads_folders_and_names_bad_ones(tmp_path):
    good = _write_run(tmp_path / "runs" / "1", "compact_model", {"accuracy_before": 0.9, "accuracy_after": 0.9,
                                                                  "speedup": 2.5})  # fmt: skip
    failed = _write_run(tmp_path / "runs" / "2", "train_model", None, status="FAILED")
    assert "speedup          2.5" in format_run(good)
    assert format_run(failed) == f"train_model: run {failed} is FAILED, no result"
    (tmp_path / "runs" / "3").mkdir()
    (tmp_path / "runs" / "3" / "run.json").write_text("[]")
    cmd = [sys.executable, "-m", "nnclust", "show", str(good), str(tmp_path / "runs" / "3"), str(tmp_path / "none")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 1
    assert out.stdout.startswith(f"compact_model: result of {good}\n")
    errors = out.stderr.strip().splitlines()
    assert errors == [
        f"error: '{tmp_path / 'runs' / '3' / 'run.json'}' does not hold a run record (a JSON object)",
        f"error: '{tmp_path / 'none'}' is not a run folder (no run.json); pass e.g. training_runs/1 or mongo:<db>:<id>",
    ]


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (None, "None"), (123456, "123,456"), (True, "True")])
def test_scalars_print_plainly(value, shown):
    assert summarize("forgetting", {"x": value}).splitlines()[1] == f"  x  {shown}"


def test_a_script_ends_with_its_summary_and_names_its_folder(tmp_path):
    import torch

    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.nets.registry import build_model

    arch = {"model": {"name": "mlp", "hidden": [6, 6]}, "input_shape": [4], "num_classes": 2}
    net = build_model(arch["model"], (4,), 2)
    with torch.no_grad():
        net.layer0.fc.weight[:, 2:] = 0  # inputs 2 and 3 reach nothing
    save_checkpoint(tmp_path / "net.pt", net, arch)
    cmd = [sys.executable, str(ROOT / "src" / "connectivity.py"), "with", "model=net.pt", "num_tasks=2",
           "-F", "runs"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Stored in folder runs/1" in done.stderr
    assert "Result: stored in run.json; summary below" in done.stderr
    out = done.stdout.strip().splitlines()
    assert out[0] == "connectivity: result of runs/1"
    record = json.loads((tmp_path / "runs" / "1" / "run.json").read_text())["result"]
    assert out[1].split()[:2] == ["split_metric", _fmt_like(record["split_metric"])]
    assert record["split_metric"] < 0  # task 1's inputs lost every path
    assert out[-1] == "  plots   runs/1/connectivity.png"


def _fmt_like(value):
    from nnclust.experiments.summary import _fmt

    return _fmt(value)
