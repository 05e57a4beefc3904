import json

import pipeline


def test_main_job_chains_its_runs_and_summarises(tmp_path):
    summary = pipeline.run_pipeline(
        tmp_path, seed=3, num_clusters=4, num_shuffles=4, n_jobs=1, progress=False,
        train_updates={
            "epochs": 4, "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 2, "num_finetune_epochs": 1}
        },
    )  # fmt: skip
    train_dir, cluster_dir = summary["train"][0], summary["cluster"][0]
    assert train_dir.parent == tmp_path / "training_runs" and cluster_dir.parent == tmp_path / "clustering_runs"
    assert json.loads((cluster_dir / "config.json").read_text())["model"] == str(train_dir)
    for method, (folder, result) in summary["shuffles"].items():
        assert folder.parent == tmp_path / "shuffle_clust_runs"
        assert json.loads((folder / "config.json").read_text())["model"] == str(cluster_dir)
        assert result["shuffle_method"] == method
        # the shuffle study clusters the same network with the same seed as the clustering run
        assert result["true_ncut"] == summary["cluster"][1]["ncut"]
    text = pipeline.format_summary(summary)
    assert "accuracy" in text and "'nonzero' shuffles" in text and str(train_dir) in text
