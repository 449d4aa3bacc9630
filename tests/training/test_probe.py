"""The online linear probe: off by default, never changes pretraining, learns, checkpoints."""

import contextlib
import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.data import Source
from byol_tf.training import probe as probe_lib
from byol_tf.training import trainer as train
from byol_tf.training import workdir
from tests.training.test_train import numpy_weights, tiny_config

COLOURS = np.array([[220, 30, 30], [30, 200, 30], [30, 30, 220], [220, 220, 30]], np.float32)


def colour_source(num_examples=96, size=16, labels=True, seed=0):
    """Noisy solid-colour images, one colour per class: an easy labelled task."""
    rng = np.random.default_rng(seed)
    classes = np.arange(num_examples) % len(COLOURS)
    rng.shuffle(classes)
    noise = rng.uniform(-30, 30, (num_examples, size, size, 3))
    images = np.clip(COLOURS[classes][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    stored = classes.astype(np.int64) if labels else np.full(num_examples, -1, np.int64)
    images_t, labels_t = tf.constant(images), tf.constant(stored)
    return Source(
        spec="colours" if labels else "folder:/data/unlabelled",
        num_examples=num_examples,
        num_classes=len(COLOURS) if labels else None,
        lookup=lambda i: (tf.gather(images_t, i), tf.gather(labels_t, i)),
        labels=stored,
    )


def probe_config(**overrides):
    defaults = {"model.base_width": 4, "train.deterministic_ops": True, "schedule.total_steps": 8}
    c = tiny_config(**{**defaults, **overrides})
    # Crop-only views: the colour of an image is its class, so the colour ops must not hide it.
    for view in ("view1", "view2"):
        for p in ("jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            c.augment[view][p] = 0.0
    return c


def run(c, path, stop_at_step, source=None, **kwargs):
    trainer = train.Trainer(c, str(path), source=source or colour_source(), **kwargs)
    summary = trainer.fit(stop_at_step=stop_at_step)
    return trainer, summary


def byol_state(trainer):
    return numpy_weights(trainer.online.weights + trainer.target.weights) + numpy_weights(
        trainer.optimizer.variables
    )


def records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def has_probe_keys(keys) -> bool:
    return any(k.startswith("probe") for k in keys)


def small_encoder(strategy=None):
    """A BatchNorm-free encoder: each representation depends on its own image only, never on
    the rest of the batch, so a probe on it sees a fixed task (and it is fast)."""
    keras.utils.set_random_seed(5)
    with strategy.scope() if strategy else contextlib.nullcontext():
        return keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                keras.layers.Conv2D(8, 3, strides=2),
            ]
        )


@pytest.mark.parametrize(
    "objective, concat_views, resnet",
    [("byol", False, True), ("nt_xent", True, False)],
    ids=["byol", "nt_xent"],
)
def test_probe_never_changes_pretraining(tmp_path, objective, concat_views, resnet):
    """Bit-identical online, target and optimizer state with and without the probe, with two
    steps per compiled call (the EMA then runs inside the call too). Off by default, and then
    nothing of it is logged or saved. The ResNet case covers BatchNorm statistics in the
    encoder; the NT-Xent case uses the small encoder to stay fast."""
    assert config_lib.base_config().eval.online_probe is False
    states = {}
    for probe in (False, True):
        c = probe_config(
            **{
                "objective.name": objective,
                "model.concat_views": concat_views,
                "train.steps_per_call": 2,
                "train.log_every_steps": 1,
            }
        )
        if probe:
            c.eval.online_probe = True
        encoder = None if resnet else small_encoder()
        trainer, summary = run(c, tmp_path / str(probe), 2, encoder=encoder)
        states[probe] = byol_state(trainer)
        saved = tf.train.load_checkpoint(trainer.checkpointer.latest).get_variable_to_shape_map()
        logged = records(tmp_path / str(probe))
        if probe:
            # The probe did train (from zeros), so its gradients existed and went elsewhere.
            assert np.abs(trainer.probe.head.kernel.numpy()).max() > 0
            assert 0.0 <= summary["probe_top1"] <= 1.0 and np.isfinite(summary["probe_loss"])
            assert all(has_probe_keys(r) for r in logged) and has_probe_keys(saved)
        else:
            assert trainer.probe is None and not has_probe_keys(summary)
            assert not any(has_probe_keys(r) for r in logged) and not has_probe_keys(saved)
    assert len(states[False]) == len(states[True])
    for a, b in zip(states[False], states[True]):
        np.testing.assert_array_equal(a, b)


def test_probe_learns_a_separable_task_and_is_logged(tmp_path):
    c = probe_config(
        **{
            "eval.online_probe": True,
            "eval.online_probe_base_lr": 4.0,  # lr 0.25 at batch 16
            "schedule.total_steps": 21,  # stopping before the end skips the export
            "train.log_every_steps": 1,
        }
    )
    source = colour_source(num_examples=320)
    trainer, summary = run(c, tmp_path, 20, source=source, encoder=small_encoder())
    logged = [r for r in records(tmp_path) if "probe_top1" in r]
    assert [r["step"] for r in logged] == list(range(1, 21))
    top1 = [r["probe_top1"] for r in logged]
    # A zero-initialised head predicts class 0 at first, which is chance (1/4); the colours
    # are then learned within a few steps (all of the last 10 batches right, here).
    assert top1[0] <= 0.4, top1
    assert np.mean(top1[-5:]) >= 0.9, top1
    assert logged[-1]["probe_loss"] < logged[0]["probe_loss"]
    assert logged[0]["probe_loss"] == pytest.approx(np.log(4), rel=1e-5)  # uniform logits
    assert summary["probe_top1"] == logged[-1]["probe_top1"]
    path = train.write_summary(str(tmp_path), summary)
    with open(path) as f:
        assert json.load(f)["probe_top1"] == pytest.approx(summary["probe_top1"])
    tags = set()
    for event_file in tf.io.gfile.glob(str(tmp_path / "tensorboard" / "*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags |= {v.tag for v in event.summary.value}
    assert {"probe_top1", "probe_loss"} <= tags


def test_unlabelled_examples_are_left_out(tmp_path):
    """Label -1 carries no weight: a batch half unlabelled counts only its labelled half."""
    probe = probe_lib.OnlineProbe(3, 2, 0.5, 0.0)
    y = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    labels = tf.constant([0, -1, 2, -1], tf.int64)
    sums = probe.replica_update(y, labels, global_batch_size=4)
    metrics = probe_lib.probe_metrics(sums)
    assert float(sums["probe_count"]) == 2
    np.testing.assert_allclose(float(metrics["probe_loss"]), np.log(3), rtol=1e-6)
    assert float(metrics["probe_top1"]) == 0.5  # zero logits: class 0 for both
    # SGD without momentum from zero weights: W = -lr * dL/dW, with the loss averaged over
    # the global batch of 4 (the two unlabelled rows contribute nothing).
    probs = np.full((2, 3), 1 / 3)
    onehot = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    grad_w = x.T @ (probs - onehot) / 4
    np.testing.assert_allclose(probe.head.kernel.numpy(), -0.5 * grad_w, rtol=1e-5, atol=1e-7)
    nothing = probe.replica_update(y, tf.fill([4], tf.constant(-1, tf.int64)), 4)
    assert np.isnan(float(probe_lib.probe_metrics(nothing)["probe_top1"]))


def test_unlabelled_source_is_a_clear_error(tmp_path):
    c = probe_config(**{"eval.online_probe": True})
    with pytest.raises(
        ValueError, match=r"eval\.online_probe.*'folder:/data/unlabelled'.*no labels"
    ):
        train.Trainer(c, str(tmp_path), source=colour_source(labels=False))
    # Without the probe the same source trains as before.
    train.Trainer(probe_config(), str(tmp_path / "off"), source=colour_source(labels=False))


@pytest.mark.parametrize(
    "field, value", [("online_probe_base_lr", 0.0), ("online_probe_momentum", 1.0)]
)
def test_bad_probe_settings(field, value):
    c = config_lib.base_config()
    c.eval[field] = value
    with pytest.raises(ValueError, match=f"eval.{field}={value}"):
        config_lib.validate(c)


def test_checkpoints_with_and_without_probe_load_both_ways(tmp_path, caplog):
    """The probe's weights and optimizer state (momentum, step count) round-trip through a
    checkpoint. A checkpoint written without the probe restores into a run that turns it on
    (the probe starts fresh, with a warning); a probe checkpoint restores into a run without."""
    source = colour_source()
    off = train.Trainer(probe_config(), str(tmp_path), source=source)
    off.online.encoder.weights[0].assign(off.online.encoder.weights[0] + 1.0)
    written = off.checkpointer.save(0)
    on_config = probe_config(**{"eval.online_probe": True})
    on = train.Trainer(on_config, str(tmp_path), source=source, overwrite=True)
    on.probe.head.kernel.assign(tf.ones_like(on.probe.head.kernel))
    with caplog.at_level(logging.WARNING):
        assert on.checkpointer.restore() == written
    assert "has no probe, probe_optimizer" in caplog.text
    np.testing.assert_array_equal(
        on.online.encoder.weights[0].numpy(), off.online.encoder.weights[0].numpy()
    )
    assert on.probe.head.kernel.numpy().min() == 1.0  # left as it was
    probe_variables = on.probe.head.variables + on.probe.optimizer.variables
    assert len(probe_variables) >= 5  # kernel, bias, iterations, 2 momentum slots
    for i, v in enumerate(probe_variables):
        v.assign(tf.fill(v.shape, tf.cast(i + 2, v.dtype)))
    on.checkpointer.save(1)
    off_again = train.Trainer(probe_config(), str(tmp_path), source=source, overwrite=True)
    assert off_again.checkpointer.restore().endswith("ckpt-1")
    np.testing.assert_array_equal(
        off_again.online.encoder.weights[0].numpy(), off.online.encoder.weights[0].numpy()
    )
    on_again = train.Trainer(on_config, str(tmp_path), source=source, overwrite=True)
    assert on_again.checkpointer.restore().endswith("ckpt-1")
    restored = on_again.probe.head.variables + on_again.probe.optimizer.variables
    assert [v.path for v in restored] == [v.path for v in probe_variables]
    for i, v in enumerate(restored):
        np.testing.assert_array_equal(v.numpy(), np.full(v.shape, i + 2), err_msg=v.path)


def test_old_workdir_without_probe_fields_resumes(tmp_path):
    """A config.json written before the probe existed lacks its fields: at their defaults
    they are not a difference, turned on they are."""
    c = probe_config()
    os.makedirs(tmp_path, exist_ok=True)
    saved = json.loads(c.to_json())
    for field in ("online_probe", "online_probe_base_lr", "online_probe_momentum"):
        del saved["eval"][field]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    workdir.check_config(str(tmp_path), c)
    c.eval.online_probe = True
    with pytest.raises(workdir.ConfigMismatchError, match=r"eval\.online_probe: <absent>"):
        workdir.check_config(str(tmp_path), c)


def test_mirrored_probe_matches_single_device(tmp_path, mirrored_strategy):
    """2 replicas train the same probe as 1 device: loss and top-1 are summed over replicas
    and the gradient averaged over the global batch."""
    results = []
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("two", mirrored_strategy),
    ):
        c = probe_config(
            **{
                "eval.online_probe": True,
                "eval.online_probe_base_lr": 16.0,
                "model.norm": "sync_batch",
            }
        )
        c.augment.view1.flip_p = c.augment.view2.flip_p = 0.0
        # A user model's variables must belong to the strategy.
        encoder = small_encoder(strategy)
        trainer, summary = run(c, tmp_path / name, 2, strategy=strategy, encoder=encoder)
        results.append((summary, numpy_weights(trainer.probe.head.weights)))
    (one, head_one), (two, head_two) = results
    for key in ("probe_top1", "probe_loss", "final_loss"):
        assert one[key] == pytest.approx(two[key], rel=1e-4), key
    for a, b in zip(head_one, head_two):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
