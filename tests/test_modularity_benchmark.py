"""The modularity benchmark: its table against independent computations, and the script
end to end, in-process, with every config key reaching the numbers."""

import json

import numpy as np
import pytest
from sacred.observers import FileStorageObserver
from scipy import stats

import modularity_benchmark
from nnclust.clustering.planted import planted_network
from nnclust.clustering.study import shuffle_significance
from nnclust.core import seeding
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.experiments import modularity
from nnclust.storage import paths

TINY = {
    "widths": [4, 6, 6, 2],
    "num_modules": 2,
    "p_in": 0.8,
    "strengths": [0.0, 1.0],
    "networks": 2,
    "num_shuffles": 3,
    "shuffle_methods": ["all", "nonzero"],
    "k_values": [2, 3],
    "alpha": 0.5,
    "n_init": 1,
    "stability_searches": 2,
    "n_jobs": 1,
    "progress": False,
    "plot": False,
}


def _run(folder, seed=3, **updates):
    config = {**TINY, **updates, "seed": seed}
    return run_in_process(modularity_benchmark.ex, [FileStorageObserver(str(folder))], config)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modularity_runs")
    run = _run(folder, plot=True)
    return run, folder / str(run._id)


def test_the_run_stores_its_table_rows_and_plot(tiny):
    run, folder = tiny
    stored = json.loads((folder / "run.json").read_text())
    assert stored["status"] == "COMPLETED" and stored["result"] == json.loads(json.dumps(run.result))
    result = stored["result"]
    assert [r["strength"] for r in result["table"]] == [0.0, 1.0]
    assert len(result["rows"]) == 4 and all(r["networks"] == 2 for r in result["table"])
    assert (folder / paths.MODULARITY_PLOT).stat().st_size > 0
    # disconnected modules: 'all' shuffles join them, so every shuffle cuts more than the network
    for row in result["rows"][2:]:
        assert row["all"]["true_ncut"] == pytest.approx(0.0, abs=1e-12)
        assert row["all"]["p_value"] == pytest.approx(1 / 4)  # the floor 1 / (N + 1)
        assert row["k=2"] == {"ari": 1.0, "nmi": 1.0}
    assert result["table"][1]["all"]["power"] == 1.0  # p = 1/4 <= alpha = 0.5


def test_a_row_is_the_study_of_its_own_planted_network(tiny):
    """Recomputed outside the benchmark: network (strength 0, index 1) from the streams of
    the recorded seed; without modules its n-cuts depend on every draw."""
    run, _ = tiny
    row, seed = run.result["rows"][1], run.result["seed"]
    assert (row["strength"], row["network"]) == (0.0, 1)
    net = planted_network(TINY["widths"], 2, 0.0, 0.8, seeding.rng(seed, "planted", 0, 1))
    for method in TINY["shuffle_methods"]:
        study = shuffle_significance(net.layers, 2, 3, method, seed=seeding.int_seed(seed, "study", 0, 1), n_init=1,
                                     spread_searches=0, progress=False)  # fmt: skip
        assert row[method] == {k: study[k] for k in ("true_ncut", "mean", "std", "z_score", "p_value")}
    assert row["all"]["true_ncut"] > 0.1


def test_every_network_is_its_own_draw(tiny):
    run, _ = tiny
    ncuts = [r["all"]["mean"] for r in run.result["rows"]]
    assert len(set(ncuts)) == len(ncuts)


def _row(strength, p_all, z=0.0):
    return {"strength": strength, "all": {"p_value": p_all, "z_score": z},
            "k=2": {"ari": 1.0, "nmi": 0.5}, "search_stability": 1.0, "k_stability": None}  # fmt: skip


def test_power_and_its_clopper_pearson_interval():
    rows = [_row(0.0, p) for p in (0.01, 0.05, 0.2, 0.5, 0.9)] + [_row(1.0, 0.01, -3.0)] * 3
    table = modularity.power_table(rows, ["all"], [2], alpha=0.05)
    first = table[0]["all"]
    assert first["power"] == 2 / 5  # p <= alpha: 0.01 and 0.05
    # Clopper-Pearson from the beta quantiles, independently of binomtest
    assert first["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 2, 4))
    assert first["ci_high"] == pytest.approx(stats.beta.ppf(0.975, 3, 3))
    assert table[1]["all"] == pytest.approx({"power": 1.0, "ci_low": 0.025 ** (1 / 3), "ci_high": 1.0, "mean_z": -3.0})
    assert table[1]["networks"] == 3 and table[0]["k=2"] == {"ari": 1.0, "nmi": 0.5}
    assert table[0]["k_stability"] is None and table[0]["search_stability"] == 1.0


@pytest.mark.parametrize(("alpha", "n", "level"), [(0.05, 19, 0.05), (0.05, 39, 0.05), (0.05, 20, 1 / 21),
                                                   (0.05, 9, 0.0), (0.5, 3, 0.5)])  # fmt: skip
def test_exact_level_of_the_permutation_test(alpha, n, level):
    assert modularity.exact_level(alpha, n) == pytest.approx(level)
    # the same by counting: r uniform on 0..n, p = (r + 1) / (n + 1)
    assert np.mean([(r + 1) / (n + 1) <= alpha + 1e-12 for r in range(n + 1)]) == pytest.approx(level)


# Each key changed from TINY; the result must change with it.
CHANGES = {
    "widths": [4, 8, 6, 2],
    "num_modules": 3,
    "p_in": 0.6,
    "strengths": [0.0, 0.5],
    "networks": 3,
    "num_shuffles": 4,
    "shuffle_methods": ["all"],
    "k_values": [2, 4],
    "alpha": 0.3,
    "n_init": 3,
    "stability_searches": 0,
    "seed": 4,
    "graph.normalize": {"graph": {"normalize": False}},
    "graph.normalize_eps": {"graph": {"normalize_eps": 0.5}},
}


def test_the_changes_cover_every_numeric_key():
    execution = {"n_jobs", "scheduler_address", "progress", "plot"}
    assert set(CHANGES) | execution == set(modularity.CONSTRAINTS) | {"seed"}


@pytest.mark.parametrize("key", sorted(CHANGES))
def test_every_key_changes_the_result(key, tiny, tmp_path):
    base, _ = tiny
    if key == "seed":
        changed = _run(tmp_path, seed=CHANGES["seed"])
    elif key.startswith("graph."):
        changed = _run(tmp_path, **CHANGES[key])
    else:
        changed = _run(tmp_path, **{key: CHANGES[key], **({"widths": [6, 6, 6, 3]} if key == "num_modules" else {})})
    assert json.dumps(changed.result, sort_keys=True) != json.dumps(base.result, sort_keys=True)


def test_execution_keys_reach_the_executor_and_leave_the_numbers(tiny, tmp_path, monkeypatch):
    import nnclust.exec.parallel as parallel

    seen = []
    real = parallel.map_tasks

    def recorded(fn, items, n_jobs=1, desc=None, progress=True, scheduler_address=None, **kw):
        seen.append((n_jobs, progress, scheduler_address))
        return real(fn, items, 1, desc, False, None, **kw)

    monkeypatch.setattr(parallel, "map_tasks", recorded)
    run = _run(tmp_path, n_jobs=2, progress=True, scheduler_address="tcp://nowhere:1")
    assert seen == [(2, True, "tcp://nowhere:1")]
    assert run.result["rows"] == tiny[0].result["rows"]


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"strengths": [0.0, 1.5]}, "strengths=[0.0, 1.5] is not allowed: expected a non-empty list of distinct"),
        ({"shuffle_methods": ["al"]}, "shuffle_methods=['al'] is not allowed"),
        ({"num_modules": 5}, "every width must hold a unit of each module"),
        ({"k_values": [1]}, "k_values=[1] is not allowed"),
        ({"graph": {"normalise": False}}, "unknown key 'graph.normalise'; valid keys of 'graph' are"),
        ({"graph": {"cnn_nodes": "conv"}}, "unknown key 'graph.cnn_nodes'"),
        ({"stability_searches": 1}, "stability_searches=1 is not allowed: expected 0 (off) or an int >= 2"),
    ],
)
def test_bad_config_is_an_error_before_a_run(updates, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):  # fmt: skip
        _run(tmp_path, **updates)
    assert not any(tmp_path.iterdir())


def test_an_unknown_key_is_an_error(tmp_path):
    from sacred.utils import ConfigAddedError

    with pytest.raises(ConfigAddedError):
        _run(tmp_path, networkz=3)


def test_modules_made_by_pruning_are_studied_level_by_level(tmp_path):
    from tests.conftest import TWO_LEVEL_IMP

    import imp_experiment
    from nnclust.clustering.task_modules import SHARED, unit_tasks
    from nnclust.nets.checkpoint import load_checkpoint
    from nnclust.nets.layers import extract_layers

    imp = run_in_process(imp_experiment.ex, [FileStorageObserver(str(tmp_path / "imp"))], TWO_LEVEL_IMP)
    folder = tmp_path / "imp" / str(imp._id)
    levels = modularity.imp_level_modularity(str(folder), num_shuffles=4, seed=2, n_init=2)
    assert [lv["level"] for lv in levels] == [0, 1, 2]
    assert [lv["split_metric"] for lv in levels] == [lv["split_metric"] for lv in imp.result["levels"]]
    # the dense level: every unit is joined to both tasks, and its shuffles keep it whole
    assert levels[0]["shared_units"] == 4 + 8 + 8 + 2 and levels[0]["ari"] is None
    assert levels[0]["study_error"] is None and levels[0]["p_value"] >= 1 / 5  # the floor with 4 shuffles
    # the last level, recounted from its checkpoint
    layers = extract_layers(load_checkpoint(folder / paths.imp_level_model(2)))
    tasks = unit_tasks([lay.weight for lay in layers], imp.result["task_inputs"], imp.result["task_outputs"])
    assert levels[2]["one_task_units"] == (tasks >= 0).sum() and levels[2]["shared_units"] == (tasks == SHARED).sum()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="not a completed imp_experiment run"):
        modularity.imp_level_modularity(str(tmp_path / "other"))


def test_plot_decides_whether_the_power_curve_is_drawn(tiny, tmp_path):
    _, with_plot = tiny
    run = _run(tmp_path)  # TINY: plot=False
    assert (with_plot / paths.MODULARITY_PLOT).is_file()
    assert not (tmp_path / str(run._id) / paths.MODULARITY_PLOT).exists()
    assert run.result["rows"] == tiny[0].result["rows"]


def test_the_table_is_printed_once_as_the_summary_writes_it(tmp_path, capsys):
    from nnclust.experiments.sacred_setup import run_summary

    run = _run(tmp_path)
    printed = capsys.readouterr().out + run_summary(modularity_benchmark.ex.path, run)  # as the command line does
    table = modularity.format_table(run.result["table"], TINY["shuffle_methods"], TINY["k_values"])
    assert printed.count("| s | nets |") == 1 and table in "\n".join(line.strip() for line in printed.splitlines())
    assert "4 records, one per network (in run.json)" in printed  # not a per-network table as well
