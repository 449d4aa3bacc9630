"""The README's promises: its Python API snippet runs as written, and so does the CLI."""

import json
import os
import re
import subprocess
import sys

import numpy as np

from tests import REPO


def readme_api_snippets() -> list[str]:
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_api_snippet_runs_as_written(tmp_path, monkeypatch):
    snippet, own_model = readme_api_snippets()
    assert len(snippet.strip().splitlines()) <= 15
    os.symlink(os.path.join(REPO, "configs"), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    summary, y, views = namespace["summary"], namespace["y"], namespace["views"]
    assert summary["steps"] == namespace["config"].schedule.total_steps
    assert os.path.isdir(tmp_path / "workdirs" / "api" / "export" / "encoder")
    assert y.shape == (views["view1"].shape[0], 64)
    # The second snippet: the exported .keras encoder inside the user's own classifier.
    exec(compile(own_model, "README.md", "exec"), namespace)  # noqa: S102
    images = views["view1"][:2]
    logits = namespace["classifier"](images)
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(
        namespace["encoder"](images).numpy(), y[:2].numpy(), rtol=1e-4, atol=1e-5
    )


def test_train_cli_with_overrides_writes_summary(tmp_path):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "train.py"),
            "--config=" + os.path.join(REPO, "configs", "default.py") + ":local",
            f"--workdir={workdir}",
            "--config.schedule.total_steps=3",
            "--config.data.synthetic.num_test=64",
            "--config.eval.online_probe=true",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        # As on a fresh machine: nobody chose oneDNN, so byol-tf turns it on (byol_tf/platform/cpu.py).
        env={k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS",)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    machine = summary["machine"]
    assert machine["onednn_enabled"] is True and machine["onednn_chosen_by"] == "byol-tf"
    assert machine["TF_ENABLE_ONEDNN_OPTS"] == "1" and machine["cpu_vector_isa"] != "unknown"
    assert summary["steps"] == 3
    assert 0.0 <= summary["knn_top1_learned"] <= 1.0 and 0.0 <= summary["knn_top1_random"] <= 1.0
    assert "kNN top-1 (k=20)" in result.stdout
    assert 0.0 <= summary["probe_top1"] <= 1.0 and "Online linear probe top-1" in result.stdout
    assert json.loads((workdir / "config.json").read_text())["schedule"]["total_steps"] == 3


def test_train_cli_rejects_a_misspelled_override(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "train.py"),
            f"--workdir={tmp_path}",
            "--config.optimizer.base_lrr=0.3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "base_lrr" in result.stderr
