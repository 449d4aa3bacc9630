"""kNN from a SavedModel (tool and library) and the in-training kNN monitor."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.data import load_source
from byol_tf.evaluation import knn, report
from byol_tf.evaluation.knn_eval import run_knn_eval
from byol_tf.training import trainer as train
from byol_tf.training.monitor import KnnMonitor
from tests.helpers.downstream_data import REPO, data, eval_config, signature_features, specs
from tests.training.test_train import tiny_config


def test_knn_eval_matches_the_signature_and_is_above_chance():
    paths = data()
    c = eval_config("knn_eval")
    r = run_knn_eval(paths["encoder"], *specs(), c).report
    assert r["mode"] == "knn" and r["settings"]["k"] == 20 and r["top1"] > 0.65
    # The same numbers from features computed independently (16 px images need no resizing).
    train_src, test_src = (load_source(s, c) for s in specs())
    expected = knn.knn_accuracy(
        *signature_features(paths["encoder"], train_src),
        *signature_features(paths["encoder"], test_src),
        num_classes=4,
        k=20,
        temperature=0.1,
    )
    assert r["top1"] == pytest.approx(expected["top1"]) and r["top5"] == expected["top5"]


@pytest.mark.slow
def test_knn_eval_cli_writes_the_report(tmp_path):
    paths = data()
    train_spec, test_spec = specs()
    output = tmp_path / "knn.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "knn_eval.py"),
            "--encoder=" + paths["encoder"],
            f"--train={train_spec}",
            f"--test={test_spec}",
            f"--output={output}",
            "--config=" + os.path.join(REPO, "configs", "knn_eval.py") + ":local",
            "--config.eval.knn_k=5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = report.read_report(str(output))
    assert written["tool"] == "knn_eval" and written["init"] == "pretrained"
    assert written["settings"]["k"] == 5 and written["subset"] is None
    assert "knn_eval (knn): top-1" in result.stdout


def test_knn_monitor_logs_knn_accuracy_and_leaves_the_weights_alone(tmp_path):
    c = tiny_config(
        **{
            "data.synthetic.num_train": 32,  # 2 steps per epoch
            "schedule.total_steps": 10,  # stopped before: no end-of-run export (slow, not needed)
            "train.log_every_steps": 2,
            "eval.knn_train": "synthetic:train",
            "eval.knn_test": "synthetic:test",
            "eval.knn_every_epochs": 2,
            "data.synthetic.num_test": 32,
        }
    )
    trainer = train.Trainer(c, str(tmp_path))
    trainer.fit(stop_at_step=6)  # epochs end at steps 2, 4 and 6; only epoch 2 is a multiple of 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    knn_records = [r for r in map(json.loads, lines) if "knn_top1" in r]
    assert [r["step"] for r in knn_records] == [4]
    assert [r["epoch"] for r in knn_records] == [2.0]
    assert all(0.0 <= r["knn_top1"] <= r["knn_top5"] <= 1.0 for r in knn_records)
    assert any("loss" in json.loads(line) for line in lines)
    event_dir = tmp_path / "tensorboard"
    tags = {
        value.tag
        for name in os.listdir(event_dir)
        for event in tf.compat.v1.train.summary_iterator(str(event_dir / name))
        for value in event.summary.value
    }
    assert {"knn_top1", "knn_top5", "loss"} <= tags
    # An evaluation reads the online encoder in inference mode: no weight and no BatchNorm
    # statistic moves, so training goes on exactly as without the monitor.
    before = [v.numpy() for v in trainer.online.weights]
    logged = []
    monitor = KnnMonitor(trainer.online.encoder, c, 2, lambda s, v: logged.append((s, v)) or v)
    monitor.on_epoch_end(2)  # epoch 3: not a multiple of 2, nothing to do
    monitor.on_epoch_end(3)
    assert [s for s, _ in logged] == [8] and set(logged[0][1]) == {"knn_top1", "knn_top5"}
    for a, v in zip(before, trainer.online.weights):
        np.testing.assert_array_equal(a, v.numpy())
    # Off by default (0): trained on through the end of epoch 4 without it, the run logs the
    # loss of steps 7 and 8 and no kNN record.
    assert tiny_config().eval.knn_every_epochs == 0
    trainer.config.eval.knn_every_epochs = 0
    trainer.fit(stop_at_step=8)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "knn_top1" in r] == [4]
    assert [r["step"] for r in records if "loss" in r][-1] == 8


def test_knn_every_epochs_needs_a_labelled_pair():
    c = tiny_config(**{"eval.knn_every_epochs": 2})
    with pytest.raises(ValueError, match="eval.knn_every_epochs=2 needs a labelled pair"):
        config_lib.validate(c)


def test_tools_feed_the_encoder_its_training_image_size_unless_told(tmp_path, caplog):
    """The export records the size it was trained at (16 px here); data.image_size=0, the
    tools' default, takes it, so a 224 px encoder is not evaluated at 32 px."""
    from byol_tf.evaluation import encoders, setup
    from byol_tf.models.export import EXPORT_INFO, export_info

    paths = data()
    assert export_info(paths["encoder"]) == {"image_size": 16}
    assert tf.saved_model.contains_saved_model(paths["encoder"])
    c = config_lib.load_config(os.path.join(REPO, "configs", "knn_eval.py"))
    assert c.data.image_size == 0
    assert setup.open_encoder(paths["encoder"], c)[1] == 16
    assert setup.open_encoder(paths["encoder"], c, random_init=True)[1] == 16
    c.data.image_size = 24  # an explicit size wins
    assert setup.open_encoder(paths["encoder"], c)[1] == 24
    # A SavedModel that records nothing: the fallback, with a warning naming the field.
    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(paths["encoder"], bare)
    os.remove(bare / EXPORT_INFO)
    assert encoders.resolve_image_size(str(bare), 0) == encoders.FALLBACK_IMAGE_SIZE
    assert "--config.data.image_size" in caplog.text
