"""Linear evaluation from an exported SavedModel: frozen encoder, above chance on an easy task,
both modes, learning-rate selection on a validation split, the JSON report, clear errors."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf.data import load_source
from byol_tf.evaluation import encoders, report
from byol_tf.evaluation.linear import resolve_mode, run_linear_eval
from tests.helpers.downstream_data import (
    REPO,
    data,
    eval_config,
    folders,
    signature_features,
    specs,
)

CHANCE = 0.25  # four classes


def saved_variables(path):
    """name-sorted values of every variable of the SavedModel at `path`, as stored on disk."""
    loaded = tf.saved_model.load(path)
    return [v.numpy() for v in loaded.variables]


def layer_variables(encoder):
    return [v.numpy() for v in encoder._reloaded_obj.variables]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_cached_mode_is_above_chance_and_leaves_the_encoder_alone(tmp_path):
    paths = data()
    c = eval_config("linear_eval")
    c.train.mode = "cached"
    result = run_linear_eval(paths["encoder"], *specs(), c)
    r = result.report
    assert r["mode"] == "cached" and r["tool"] == "linear_eval" and r["init"] == "pretrained"
    assert r["top1"] > CHANCE + 0.4, r["top1"]
    # The reported top-1 is the trained head's accuracy on the test images, recomputed here from
    # the SavedModel's own signature (top-5 cannot fail with four classes).
    features, labels = signature_features(paths["encoder"], load_source(specs()[1], c))
    predicted = np.argmax(result.head(tf.constant(features)).numpy(), axis=1)
    assert r["top1"] == pytest.approx(np.mean(predicted == labels)) and len(labels) == 32
    assert r["data"]["num_train"] == 64 and r["data"]["num_test"] == 32
    assert r["settings"]["selection"] is None and r["settings"]["chosen_lr"] == 0.5 * 16 / 256
    # Every variable, BatchNorm moving statistics included, is what the SavedModel holds.
    assert_same(layer_variables(result.encoder), saved_variables(paths["encoder"]))
    assert np.abs(result.head.kernel.numpy()).max() > 0  # the classifier did train
    # The report written to disk reads back and follows the schema.
    path = report.write_report(r, str(tmp_path / "linear.json"))
    assert report.read_report(path) == json.loads(json.dumps(r))


def test_augmented_mode_selects_lr_on_validation_split():
    paths = data()
    c = eval_config("linear_eval")
    c.train.mode = "augmented"
    c.optimizer.base_learning_rates = (0.005, 0.5)
    result = run_linear_eval(paths["encoder"], *specs(), c)
    r = result.report
    assert r["mode"] == "augmented" and r["settings"]["mode_requested"] == "augmented"
    selection = r["settings"]["selection"]
    # 10% of each class of 16, rounded up: 2 per class held out.
    assert selection["val_examples"] == 8 and selection["fit_examples"] == 56
    val_top1 = selection["val_top1"]
    best = max(val_top1, key=val_top1.get)
    assert r["settings"]["chosen_lr"] == pytest.approx(float(best))
    assert r["settings"]["retrained_on_full"] is True
    assert r["top1"] > CHANCE + 0.4, r["top1"]
    assert_same(layer_variables(result.encoder), saved_variables(paths["encoder"]))


def test_report_schema_rejects_what_it_does_not_describe(tmp_path):
    good = report.make_report(
        "knn_eval",
        "enc",
        "pretrained",
        {
            "train": "a",
            "test": "b",
            "num_train": 4,
            "num_test": 2,
            "num_classes": 2,
            "image_size": 8,
        },
        "knn",
        {"k": 3},
        {"top1": 0.5, "top5": 1.0},
        1.0,
    )
    report.validate_report(good)
    bad = [
        ({"top1": 1.5}, "top1=1.5 is not a fraction"),
        ({"mode": "cached"}, "mode='cached' is not valid for tool 'knn_eval'"),
        ({"tool": "probe"}, "tool='probe' is not one of"),
        ({"wall_time_s": "1"}, "wall_time_s='1' should be of type"),
        ({"subset": {"num_examples": 3}}, "subset lacks method, per_class, seed, sha256"),
        ({"top5": 0.25}, "top5=0.25 is below top1=0.5"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            report.validate_report({**good, **change})
    incomplete = {k: v for k, v in good.items() if k != "encoder"}
    with pytest.raises(ValueError, match="The report lacks encoder"):
        report.write_report(incomplete, str(tmp_path / "r.json"))
    assert not (tmp_path / "r.json").exists()


def test_auto_mode_is_cached_on_cpu():
    assert resolve_mode("auto") == "cached"
    assert resolve_mode("augmented") == "augmented"


def test_random_init_baseline_differs_from_the_pretrained_encoder(tmp_path):
    paths = data()
    out = encoders.random_init_export(paths["encoder"], str(tmp_path / "rand"), 16, seed=0)
    pretrained, fresh = saved_variables(paths["encoder"]), saved_variables(out)
    assert [v.shape for v in pretrained] == [v.shape for v in fresh]
    kernels = [(a, b) for a, b in zip(pretrained, fresh) if a.ndim == 4]
    assert kernels and all(not np.array_equal(a, b) for a, b in kernels)
    # Deterministic for the seed, different for another seed.
    same = encoders.random_init_encoder(paths["encoder"], 16, seed=0).weights
    other = encoders.random_init_encoder(paths["encoder"], 16, seed=1).weights
    rebuilt = [v.numpy() for v in same if len(v.shape) == 4]
    assert_same([a for a in fresh if a.ndim == 4], rebuilt)
    assert not np.array_equal(rebuilt[0], [v.numpy() for v in other if len(v.shape) == 4][0])


def test_random_init_twin_can_have_batchnorm_statistics_estimated_on_the_train_split():
    from byol_tf.evaluation.setup import open_encoder, open_sources
    from byol_tf.models.bn_stats import batchnorm_layers

    paths = data()
    images = tf.random.stateless_uniform([8, 16, 16, 3], seed=[1, 2])
    placeholder = encoders.random_init_encoder(paths["encoder"], 16, seed=0)
    estimated = encoders.random_init_encoder(paths["encoder"], 16, seed=0, bn_batches=[images])
    # Same weights; only the moving statistics move, and they are the batch's own.
    trainable = zip(placeholder.trainable_weights, estimated.trainable_weights)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in trainable)
    before, after = batchnorm_layers(placeholder), batchnorm_layers(estimated)
    assert before and all(np.all(layer.moving_mean.numpy() == 0.0) for layer in before)
    assert all(np.any(layer.moving_mean.numpy() != 0.0) for layer in after)
    assert not np.allclose(placeholder(images).numpy(), estimated(images).numpy())

    # Through the tools' setup: eval.random_bn_batches > 0 changes the twin's outputs.
    c = eval_config("knn_eval")
    train_spec, test_spec = specs()
    train, _ = open_sources(train_spec, test_spec, c)
    c.data.image_size = 16
    outputs = []
    for n in (0, 1):
        c.eval.random_bn_batches = n
        encoder, _ = open_encoder(paths["encoder"], c, random_init=True, bn_source=train)
        outputs.append(encoder(images).numpy())
    assert not np.allclose(outputs[0], outputs[1])
    c.eval.random_bn_batches = -1
    with pytest.raises(ValueError, match="random_bn_batches"):
        open_sources(train_spec, test_spec, c)


def test_missing_or_invalid_savedmodel(tmp_path):
    c = eval_config("linear_eval")
    train, test = specs()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_linear_eval(str(tmp_path / "nowhere"), train, test, c)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a SavedModel directory"):
        run_linear_eval(str(tmp_path / "empty"), train, test, c)
    with pytest.raises(ValueError, match="is not a SavedModel directory"):
        run_linear_eval(os.path.join(folders()["train"], "red", "red_000.png"), train, test, c)
    # A SavedModel, but not an encoder: no serving_default endpoint.
    module = tf.Module()
    module.double = tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec([None])])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"double": module.double})
    with pytest.raises(ValueError, match="has no 'serving_default' endpoint.*it has: double"):
        run_linear_eval(str(tmp_path / "other"), train, test, c)
    with pytest.raises(FileNotFoundError, match=r"\.keras.*is missing"):
        run_linear_eval(str(tmp_path / "other"), train, test, c, random_init=True)


def test_sources_without_labels_or_shared_with_test():
    paths = data()
    c = eval_config("linear_eval")
    train, test = specs()
    flat = "folder:" + paths["unlabelled"]
    with pytest.raises(
        ValueError, match=r"needs labels, but the train source .*flat.* has no labels"
    ):
        run_linear_eval(paths["encoder"], flat, test, c)
    with pytest.raises(
        ValueError, match=r"needs labels, but the test source .*flat.* has no labels"
    ):
        run_linear_eval(paths["encoder"], train, flat, c)
    with pytest.raises(ValueError, match="train and test sources are both"):
        run_linear_eval(paths["encoder"], train, train, c)


def test_user_savedmodel_with_only_serving_default(tmp_path):
    """An encoder exported elsewhere (a signature, no training endpoint) still works."""
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()]
    )
    module = tf.Module()
    module.model = model
    module.f = tf.function(
        lambda images: {"features": model(images)},
        input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="images")],
    )
    tf.saved_model.save(module, str(tmp_path / "user"), signatures={"serving_default": module.f})
    layer, size = encoders.load_encoder_layer(str(tmp_path / "user"), 32, trainable=True)
    assert size == 16  # its signature fixes the size, which wins over the config's
    assert not layer.has_training_endpoint
    images = tf.random.stateless_uniform([2, 16, 16, 3], seed=[0, 1])
    np.testing.assert_allclose(layer(images).numpy(), model(images).numpy(), rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(images, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 2 and all(g is not None for g in grads)


@pytest.mark.slow
def test_cli_writes_the_report(tmp_path):
    paths = data()
    train, test = specs()
    output = tmp_path / "linear.json"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "linear_eval.py"),
            "--encoder=" + paths["encoder"],
            f"--train={train}",
            f"--test={test}",
            f"--output={output}",
            "--config=" + os.path.join(REPO, "configs", "linear_eval.py") + ":local",
            "--config.schedule.epochs=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = report.read_report(str(output))
    assert written["settings"]["config"]["schedule"]["epochs"] == 2
    assert written["encoder"] == os.path.abspath(paths["encoder"])
    assert "linear_eval (cached): top-1" in result.stdout
    assert report.summary_line(written) in result.stdout
