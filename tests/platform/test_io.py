"""Workdir files on TensorFlow's filesystems: a `ram://` workdir stands in for `gs://`."""

import os
import uuid

import tensorflow as tf

from byol_tf.models.export import export_info
from byol_tf.platform import files as io
from byol_tf.training import trainer as train
from byol_tf.training.plotting import read_metrics
from tests.training.test_train import tiny_config


def _ram(name: str) -> str:
    return f"ram://byol_test_{uuid.uuid4().hex[:8]}/{name}"


def test_file_calls_behave_alike_on_a_local_disk_and_on_a_tensorflow_filesystem(tmp_path):
    for root in (str(tmp_path / "local"), _ram("files")):
        io.makedirs(os.path.join(root, "sub"))
        path = os.path.join(root, "sub", "a.json")
        assert io.read_json(path) is None and not io.exists(path)
        io.atomic_write_json(path, {"b": 1, "a": [2]})
        assert io.read_json(path) == {"a": [2], "b": 1} and not io.exists(path + ".tmp")
        with io.open_file(os.path.join(root, "sub", "log.jsonl"), "a") as f:
            f.write("x\n")
        io.rename(path, os.path.join(root, "sub", "b.json"))
        names = sorted(
            os.path.basename(p) for p in io.list_matching(os.path.join(root, "sub"), "*.json")
        )
        assert names == ["b.json"]
        assert io.isdir(os.path.join(root, "sub")) and not io.isdir(
            os.path.join(root, "sub", "b.json")
        )
        io.remove(os.path.join(root, "sub"))
        assert not io.exists(os.path.join(root, "sub", "b.json"))
        io.remove(os.path.join(root, "never"))  # a missing path is not an error


def test_a_run_writes_and_resumes_its_workdir_on_a_tensorflow_filesystem():
    workdir = _ram("run")
    c = tiny_config(
        **{"schedule.total_steps": 2, "train.log_every_steps": 1, "export.at_end": True}
    )
    summary = train.train_and_evaluate(c, workdir)
    assert summary["steps"] == 2
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/checkpoint"):
        assert tf.io.gfile.exists(os.path.join(workdir, name)), name
    assert io.read_json(os.path.join(workdir, "summary.json"))["steps"] == 2
    assert [r["step"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))] == [1, 2]
    export = os.path.join(workdir, "export", "encoder")
    assert tf.saved_model.contains_saved_model(export)
    assert export_info(export) == {"image_size": c.data.image_size}
    # Rerunning the same command resumes from the checkpoint there, to a longer schedule.
    c.schedule.total_steps = 3
    resumed = train.Trainer(c, workdir, overwrite=True)
    assert resumed.fit()["steps"] == 3
    assert tf.io.gfile.exists(os.path.join(workdir, "config.json.1"))  # the earlier config kept
