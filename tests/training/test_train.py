"""The training loop: EMA exactness, strategies, checkpoint/resume, export, errors, SIGTERM."""

import json
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf import data as data_lib
from byol_tf.core import losses
from byol_tf.core.schedules import target_tau
from byol_tf.models.bn_stats import batchnorm_layers
from byol_tf.models.export import load_encoder
from byol_tf.training import trainer as train
from byol_tf.training.export import export_from_workdir
from tests import REPO
from tests.helpers.cpu_class import needs_bfloat16_kernels


def tiny_config(**overrides):
    c = config_lib.load_config(os.path.join(REPO, "configs", "default.py") + ":local")
    c.data.synthetic.num_train = 64
    c.data.global_batch_size = 16
    c.data.image_size = 16
    c.schedule.total_steps = 4
    c.schedule.warmup_epochs = 0
    c.optimizer.base_lr = 0.5
    c.eval.knn_train = ""
    c.eval.knn_test = ""
    c.checkpoint.every_steps = 1000
    # A SavedModel export takes about 6 s of a tiny run's 20: only the tests of exports ask for it.
    c.export.at_end = False
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def trainable_pairs(trainer):
    online = (
        trainer.online.encoder.trainable_variables + trainer.online.projector.trainable_variables
    )
    target = (
        trainer.target.encoder.trainable_variables + trainer.target.projector.trainable_variables
    )
    return online, target


def numpy_weights(variables):
    return [np.array(v.numpy()) for v in variables]


def fit_both_ways(tmp_path, field, steps, strategy=None, with_target=False, **overrides):
    """[(final loss, weights)] of a tiny run with the bool `field` False, then True.

    The weights are every online weight (BN moving statistics included), and the target's too
    with `with_target`. `overrides` are dotted config fields, as for `tiny_config`.
    """
    results = []
    try:
        for value in (False, True):
            c = tiny_config(**{field: value, "schedule.total_steps": steps, **overrides})
            trainer = train.Trainer(c, str(tmp_path / str(value)), strategy=strategy)
            summary = trainer.fit(stop_at_step=steps)
            variables = trainer.online.weights + (trainer.target.weights if with_target else [])
            results.append((summary["final_loss"], numpy_weights(variables)))
    finally:  # the Trainer sets the global policy; never leak mixed precision into other tests
        keras.mixed_precision.set_global_policy("float32")
    return results


def assert_same_training(results, rtol: float) -> None:
    """The two runs of `fit_both_ways` end with the same loss and weights, to `rtol`."""
    (loss_off, weights_off), (loss_on, weights_on) = results
    assert loss_on == pytest.approx(loss_off, rel=rtol)
    for off, on in zip(weights_off, weights_on, strict=True):
        np.testing.assert_allclose(on, off, rtol=rtol, atol=rtol * max(np.abs(off).max(), 1e-3))


@pytest.mark.parametrize("steps_per_call", [1, 2])
def test_target_is_exact_ema_of_online_after_each_step(tmp_path, steps_per_call):
    c = tiny_config(**{"schedule.total_steps": 2, "train.steps_per_call": steps_per_call})
    trainer = train.Trainer(c, str(tmp_path))
    online, target = trainable_pairs(trainer)
    for o, t in zip(numpy_weights(online), numpy_weights(target)):
        np.testing.assert_array_equal(o, t)
    old_target = numpy_weights(target)
    trainer.fit(stop_at_step=steps_per_call)
    if steps_per_call == 1:
        tau = float(target_tau(0, c.ema.tau_base, 2, c.ema.tau_schedule))
        for o, t, t0 in zip(numpy_weights(online), numpy_weights(target), old_target):
            np.testing.assert_allclose(t, tau * t0 + (1 - tau) * o, rtol=1e-6, atol=1e-7)
    # Whatever the number of steps per call, the online weights moved and the target followed
    # only part of the way.
    moved = [np.abs(o - t0).max() for o, t0 in zip(numpy_weights(online), old_target)]
    assert max(moved) > 0
    lag = [np.abs(t - t0).max() for t, t0 in zip(numpy_weights(target), old_target)]
    assert 0 < max(lag) < max(moved)


def test_ema_in_step_matches_ema_after_step(tmp_path):
    """Two steps in one compiled call give the same weights as two calls of one step."""
    results = []
    for spc in (1, 2):
        c = tiny_config(
            **{
                "schedule.total_steps": 2,
                "train.steps_per_call": spc,
                "train.deterministic_ops": True,
            }
        )
        trainer = train.Trainer(c, str(tmp_path / f"spc{spc}"))
        trainer.fit()
        results.append(numpy_weights(trainer.target.trainable_variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fixed_target_when_tau_base_is_one(tmp_path):
    """tau = 1 at every step (the fixed-random-target experiment): over many steps the
    target's weights stay bit-identical to its initial random ones while the online network
    trains. Four steps per call keep it cheap (the EMA then runs inside the compiled step)."""
    c = tiny_config(**{"ema.tau_base": 1.0, "schedule.total_steps": 16, "train.steps_per_call": 4})
    trainer = train.Trainer(c, str(tmp_path))
    before = numpy_weights(trainer.target.trainable_variables)
    online_before = numpy_weights(trainer.online.trainable_variables)
    trainer.fit(stop_at_step=15)  # the last step would only add the (slow) export
    assert trainer.step == 15
    for a, b in zip(before, numpy_weights(trainer.target.trainable_variables)):
        np.testing.assert_array_equal(a, b)
    moved = [
        np.abs(a - b).max()
        for a, b in zip(online_before, numpy_weights(trainer.online.trainable_variables))
    ]
    assert max(moved) > 1e-3


def test_nt_xent_objective_trains_encoder_and_projector_against_in_batch_negatives(tmp_path):
    c = tiny_config(
        **{"objective.name": "nt_xent", "objective.temperature": 0.2, "train.log_every_steps": 1}
    )
    source = data_lib.load_source("synthetic:train", c)
    trainer = train.Trainer(c, str(tmp_path), source=source)
    online, target = trainer.online, trainer.target
    # The loss of the first step, computed by hand from the same first batch.
    views = next(iter(data_lib.pretrain_dataset(source, c)))
    z1, z2 = (
        online.projector(online.encoder(views[v], training=True), training=True)
        for v in ("view1", "view2")
    )
    expected = float(tf.reduce_mean(losses.nt_xent_loss(z1, z2, 0.2)))
    parts = {
        name: numpy_weights(getattr(tower, part).weights)
        for name, tower, part in (
            ("encoder", online, "encoder"),
            ("projector", online, "projector"),
            ("predictor", online, "predictor"),
            ("target", target, "encoder"),
            ("target_projector", target, "projector"),
        )
    }
    summary = trainer.fit(stop_at_step=2)
    assert summary["steps"] == 2
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and "tau" not in first  # no target, no tau
    np.testing.assert_allclose(first["loss"], expected, rtol=1e-4)

    def changed(name, tower, part):
        after = numpy_weights(getattr(tower, part).weights)
        return max(np.abs(a - b).max() for a, b in zip(parts[name], after))

    assert (
        changed("encoder", online, "encoder") > 0 and changed("projector", online, "projector") > 0
    )
    # No predictor and no target in this objective: their weights never move, BN statistics
    # included (the target tower is never even run).
    assert changed("predictor", online, "predictor") == 0
    assert changed("target", target, "encoder") == 0
    assert changed("target_projector", target, "projector") == 0


def test_nt_xent_mirrored_matches_single_device(tmp_path, mirrored_strategy):
    """Negatives come from the global batch: 2 replicas give the same step as 1 device, so
    the gradient flows back through the all-gathered projections of the other replica."""
    results = []
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("two", mirrored_strategy),
    ):
        # sync_batch: the heads' BatchNorm sees the global batch on both setups. A small
        # BatchNorm-free encoder keeps the test fast; the objective is what is under test.
        c = tiny_config(**{"objective.name": "nt_xent", "model.norm": "sync_batch"})
        for view in ("view1", "view2"):  # crop-only views: identical inputs on both setups
            for p in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
                c.augment[view][p] = 0.0
        keras.utils.set_random_seed(5)
        with strategy.scope():  # a user model's variables must belong to the strategy
            encoder = keras.Sequential(
                [
                    keras.Input((16, 16, 3)),
                    keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                    keras.layers.Conv2D(8, 3, strides=2),
                ]
            )
        trainer = train.Trainer(c, str(tmp_path / name), strategy=strategy, encoder=encoder)
        summary = trainer.fit(stop_at_step=2)
        results.append((summary["final_loss"], numpy_weights(trainer.online.trainable_variables)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_end_to_end_writes_checkpoint_export_and_summary(tmp_path):
    c = tiny_config(**{"export.every_epochs": 1, "export.at_end": True})
    c.eval.knn_train = "synthetic:train"
    c.eval.knn_test = "synthetic:test"
    c.data.synthetic.num_test = 32
    summary = train.train_and_evaluate(c, str(tmp_path))
    assert summary["steps"] == 4
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("-4")
    with open(tmp_path / "summary.json") as f:
        written = json.load(f)
    for key in (
        "steps",
        "epochs",
        "final_loss",
        "images_per_s",
        "skipped_images",
        "export_dir",
        "knn_top1_learned",
        "knn_top1_random",
    ):
        assert key in written, key
    assert 0.0 <= written["knn_top1_learned"] <= 1.0
    assert written["epochs"] == pytest.approx(4 / (64 // 16))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["step"] == 4 and {"loss", "lr", "tau", "collapse_std"} <= set(record)

    export_dir = written["export_dir"]
    assert export_dir == str(tmp_path / "export" / "encoder")
    reloaded = load_encoder(export_dir)
    images = tf.random.stateless_uniform([3, 16, 16, 3], seed=[1, 2])
    served = reloaded.signatures["serving_default"](images=images)["representation"]
    # Rebuild the in-memory encoder from the final checkpoint to compare.
    trainer = train.Trainer(c, str(tmp_path))
    trainer.checkpointer.restore()
    expected = trainer.online.encoder(images, training=False)
    np.testing.assert_allclose(served.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    keras_model = keras.models.load_model(export_dir + ".keras")
    np.testing.assert_allclose(
        keras_model(images, training=False).numpy(), expected.numpy(), rtol=1e-4, atol=1e-5
    )
    # export.every_epochs=1 with 4 steps per epoch: one periodic export besides the final one.
    assert sorted(os.listdir(tmp_path / "export")) == [
        "encoder",
        "encoder.keras",
        "encoder_epoch0001",
        "encoder_epoch0001.keras",
    ]
    # tools/export_encoder.py's path: rebuild the towers from config.json, restore, export.
    out, step = export_from_workdir(str(tmp_path), str(tmp_path / "again"))
    assert step == 4
    again = load_encoder(out).signatures["serving_default"](images=images)["representation"]
    np.testing.assert_allclose(again.numpy(), served.numpy(), rtol=1e-5, atol=1e-6)


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    c = tiny_config(**{"schedule.total_steps": 6, "train.deterministic_ops": True})
    full = train.Trainer(c, str(tmp_path / "full"))
    full.fit()
    first = train.Trainer(c, str(tmp_path / "resumed"))
    assert first.fit(stop_at_step=3)["steps"] == 3  # crosses an epoch boundary (4 steps/epoch)
    second = train.Trainer(c, str(tmp_path / "resumed"))
    assert second.fit()["steps"] == 6
    for name in ("online", "target"):
        a = getattr(full, name).weights
        b = getattr(second, name).weights
        for va, vb in zip(a, b):
            np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    for va, vb in zip(full.optimizer.variables, second.optimizer.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    c = tiny_config(**{"schedule.total_steps": 20, "checkpoint.every_steps": 1})
    source = data_lib.load_source("synthetic:train", c)
    trainer = train.Trainer(c, str(tmp_path), source=source)
    trainer.fit(stop_at_step=1)
    # Poison the weights: the next forward pass produces NaN.
    w = trainer.online.predictor.trainable_variables[0]
    w.assign(tf.fill(w.shape, float("nan")))
    with pytest.raises(train.NonFiniteLossError, match=r"at step 2\b.*ckpt-1"):
        trainer.fit()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-1")


def test_sigterm_saves_checkpoint_and_stops(tmp_path):
    c = tiny_config(**{"schedule.total_steps": 8, "export.at_end": True})
    trainer = train.Trainer(c, str(tmp_path))

    class SendSigterm(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    summary = trainer.fit(callbacks=[SendSigterm()])
    assert summary["preempted"] and summary["steps"] == 2
    assert summary["export_dir"] is None  # a preempted run does not export
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("-2")
    resumed = train.Trainer(c, str(tmp_path))
    assert resumed.fit()["steps"] == 8


def test_callbacks_get_the_model_and_can_stop_training_as_in_keras_fit(tmp_path):
    """Keras's EarlyStopping protocol: set_model and set_params first, then stop_training."""
    c = tiny_config(**{"schedule.total_steps": 8, "export.at_end": True})
    trainer = train.Trainer(c, str(tmp_path))

    class StopAtThree(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.began_with = (self.model, dict(self.params))

        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                self.model.stop_training = True

    stopper = StopAtThree()
    summary = trainer.fit(callbacks=[stopper])
    model, params = stopper.began_with
    assert model is trainer.online and params == {"epochs": 2, "steps": 4, "verbose": 0}
    assert summary["stopped_early"] and not summary["preempted"] and summary["steps"] == 3
    assert summary["export_dir"] is not None  # ends as a finished run does: exported
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("-3")
    # A later fit starts with stop_training cleared, and runs to the end of the schedule.
    resumed = train.Trainer(c, str(tmp_path))
    summary = resumed.fit()
    assert summary["steps"] == 8 and not summary["stopped_early"]


def test_keras_early_stopping_and_csv_logger_work_as_in_model_fit(tmp_path):
    """Keras's own callbacks: EarlyStopping reads the epoch's logged loss, CSVLogger writes
    one row per epoch and closes its file at the end."""
    # 4 steps per epoch; no epoch improves the loss by 10, so with patience 1 the second
    # epoch's end stops training (EarlyStopping never stops at epoch 0).
    c = tiny_config(**{"schedule.total_steps": 16, "train.log_every_steps": 1000})
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    csv_path = tmp_path / "epochs.csv"
    csv = keras.callbacks.CSVLogger(str(csv_path))
    summary = train.Trainer(c, str(tmp_path / "run")).fit(callbacks=[stopper, csv])
    assert summary["stopped_early"] and summary["steps"] == 8 and stopper.stopped_epoch == 1
    assert summary["export_dir"] is None  # export.at_end=False: stopped or not, no export
    assert not (tmp_path / "run" / "export").exists()
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "collapse_std"] and len(rows) == 3
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert csv.csv_file.closed


def test_keras_terminate_on_nan_stops_without_saving_or_exporting(tmp_path):
    c = tiny_config(
        **{"schedule.total_steps": 20, "checkpoint.every_steps": 1, "export.at_end": True}
    )
    trainer = train.Trainer(c, str(tmp_path))
    trainer.fit(stop_at_step=2)
    w = trainer.online.predictor.trainable_variables[0]
    w.assign(tf.fill(w.shape, float("nan")))
    csv = keras.callbacks.CSVLogger(str(tmp_path / "epochs.csv"))
    summary = trainer.fit(callbacks=[keras.callbacks.TerminateOnNaN(), csv])
    assert summary["stopped_early"] and summary["nonfinite_loss_step"] == 3
    assert not np.isfinite(summary["final_loss"]) and summary["export_dir"] is None
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert csv.csv_file.closed  # the user's callbacks were ended
    # Without a callback that stops, a non-finite loss is an error (tested above).


def test_a_run_starts_by_saying_what_it_will_do(tmp_path, mirrored_strategy, capsys):
    c = tiny_config(**{"schedule.total_steps": 2, "schedule.warmup_steps": 1})
    trainer = train.Trainer(c, str(tmp_path), strategy=mirrored_strategy)
    text = trainer.describe()
    assert "2 replica(s) on CPU:0, CPU:1 (1 worker(s))" in text
    assert "Global batch 16 (8 per replica), 2 steps of which 1 warm-up (4 per epoch" in text
    # base lr 0.5 x 16 / 256, reached at the end of the warm-up
    assert f"peak learning rate {0.5 * 16 / 256:.4g}" in text and "float32" in text
    trainer.fit()
    assert text in capsys.readouterr().out


def test_batchnorm_is_synchronised_over_replicas_unless_turned_off(tmp_path, mirrored_strategy):
    """As in the reference: with 2 replicas, BatchNorm normalises over the global batch, so the
    run trains as one replica on the whole batch does; model.sync_batchnorm=False keeps each
    replica's own statistics."""
    # Crops only: they are seeded per example; flips and colour per replica's batch, which
    # would give the two layouts different views.
    per_batch = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
    crops_only = {f"augment.view{v}.{k}": 0.0 for v in (1, 2) for k in per_batch}
    c = tiny_config(**{"schedule.total_steps": 2, "augment.on_device": False, **crops_only})
    one = train.Trainer(c, str(tmp_path / "one"))
    assert not any(layer.synchronized for layer in batchnorm_layers(one.online))
    initial = numpy_weights(one.online.weights)
    one.fit()

    def moved(trainer):  # what 2 steps changed: weights, BatchNorm moving statistics
        return [w - w0 for w, w0 in zip(numpy_weights(trainer.online.weights), initial)]

    expected, errors = moved(one), {}
    for sync in (True, False):
        c.model.sync_batchnorm = sync
        two = train.Trainer(c, str(tmp_path / f"two_{sync}"), strategy=mirrored_strategy)
        layers = batchnorm_layers(two.online) + batchnorm_layers(two.target)
        assert layers and all(layer.synchronized == sync for layer in layers)
        two.fit()
        # Relative to what moved; the heads' biases before a BatchNorm get ~1e-9 (no gradient).
        errors[sync] = max(
            np.abs(got - want).max() / np.abs(want).max()
            for got, want in zip(moved(two), expected, strict=True)
            if np.abs(want).max() > 1e-6
        )
    # Synchronised: the one-replica update up to summation order. Per-replica statistics of
    # 8 images each: a different update. Measured: 0.0012 against 2.9.
    assert errors[True] < 0.02 < 0.2 < errors[False], errors


def test_global_batch_not_divisible_by_replicas(tmp_path, mirrored_strategy):
    c = tiny_config(**{"data.global_batch_size": 15})
    with pytest.raises(ValueError, match="global_batch_size=15 is not divisible by the 2 replicas"):
        train.Trainer(c, str(tmp_path), strategy=mirrored_strategy)


def test_unknown_encoder_name(tmp_path):
    c = tiny_config(**{"model.encoder": "resnet19"})
    with pytest.raises(ValueError, match="resnet19"):
        train.Trainer(c, str(tmp_path))


def test_mirrored_with_sync_bn_matches_single_device(tmp_path, mirrored_strategy):
    """2 logical CPUs with synchronised BatchNorm == 1 device, same global batch."""
    results = []
    for name, strategy in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
        ("two", mirrored_strategy),
    ):
        c = tiny_config(**{"model.norm": "sync_batch", "schedule.total_steps": 4})
        # Crop-only views: crops are seeded per example, so both runs see identical inputs
        # (the batch-level colour ops are seeded per replica batch).
        for view in ("view1", "view2"):
            for p in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
                c.augment[view][p] = 0.0
        trainer = train.Trainer(c, str(tmp_path / name), strategy=strategy)
        summary = trainer.fit(stop_at_step=2)  # before the end: no export, which is slow here
        results.append(
            (
                summary["final_loss"],
                numpy_weights(trainer.online.weights),
                numpy_weights(trainer.target.weights),
            )
        )
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    for a, b in zip(results[0][1] + results[0][2], results[1][1] + results[1][2]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"train.precision": "bfloat16"}, marks=needs_bfloat16_kernels),
        # A small start, so the two steps are not both skipped as overflows.
        {"train.precision": "float16", "train.fp16_initial_loss_scale": 256.0},
        {"train.jit_compile": True},
    ],
)
def test_mixed_precision_and_xla_steps_train(tmp_path, overrides):
    c = tiny_config(**overrides)
    try:
        trainer = train.Trainer(c, str(tmp_path))
        before = numpy_weights(trainer.online.trainable_variables)
        summary = trainer.fit(stop_at_step=2)
        expected_compute = {"float32": "float32"}.get(c.train.precision, c.train.precision)
        assert trainer.online.encoder.compute_dtype == expected_compute
        # float16 needs dynamic loss scaling; bfloat16 has float32's range and does not.
        scaled = isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        assert scaled == (c.train.precision == "float16")
    finally:  # the Trainer sets the global policy; never leak bfloat16 into other tests
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(summary["final_loss"]) and 0.0 <= summary["final_loss"] <= 8.0
    # Weights stay float32 (mixed precision computes in bf16 but keeps float32 variables).
    assert all(v.dtype == "float32" for v in trainer.online.trainable_variables)
    changed = [
        np.abs(a - b.numpy()).max() for a, b in zip(before, trainer.online.trainable_variables)
    ]
    assert max(changed) > 0


def test_fp16_skipped_step_keeps_the_loop_step_for_data_schedule_and_resume(tmp_path):
    """A loss-scaling optimizer skips a step with non-finite gradients without counting it;
    the loop's own step still counts it, and it alone sets the data position, the learning
    rate, the checkpoint's step and the resume point."""
    c = tiny_config(
        **{
            "train.precision": "float16",
            "train.fp16_initial_loss_scale": 256.0,  # only the forced overflow skips a step
            "schedule.total_steps": 6,
        }
    )

    class OverflowOnce(keras.callbacks.Callback):
        """Step 2's gradients overflow (an infinite loss scale); step 3 is back to normal."""

        def __init__(self, optimizer):
            super().__init__()
            self.opt = optimizer

        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.opt.dynamic_scale.assign(float("inf"))
            elif batch == 2:
                self.opt.dynamic_scale.assign(1024.0)

    try:
        trainer = train.Trainer(c, str(tmp_path))
        summary = trainer.fit(stop_at_step=4, callbacks=[OverflowOnce(trainer.optimizer)])
        assert summary["steps"] == 4 and trainer.step == 4
        # The skipped step is not an optimizer update, but it is a loop step.
        assert int(trainer.optimizer.iterations.numpy()) == 3
        # The learning rate follows the loop step, not the optimizer's update count.
        np.testing.assert_allclose(
            float(trainer.optimizer.learning_rate), float(trainer.lr_schedule(4)), rtol=1e-6
        )
        assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
        resumed = train.Trainer(c, str(tmp_path))
        seen = []

        class Steps(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(batch)

        assert resumed.fit(stop_at_step=5, callbacks=[Steps()])["steps"] == 5
        assert seen == [5] and resumed.step == 5
        assert int(resumed.checkpointer.position.step.numpy()) == 5
        assert int(resumed.checkpointer.position.step_in_epoch.numpy()) == 1  # 4 steps/epoch
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_epoch_callbacks_see_the_epoch_boundary_when_a_call_spans_epochs(tmp_path):
    """With more steps per call than per epoch, the kNN monitor and the periodic export still
    run on the weights of the epoch they are labelled with: calls end at the epoch boundaries
    where one of them is due."""
    c = tiny_config(
        **{
            "schedule.total_steps": 12,  # 3 epochs of 4 steps
            "train.steps_per_call": 8,
            "eval.knn_every_epochs": 1,
            "eval.knn_train": "synthetic:train",
            "eval.knn_test": "synthetic:test",
            "data.synthetic.num_test": 16,
            "export.every_epochs": 2,
        }
    )
    trainer = train.Trainer(c, str(tmp_path))
    ends, at_epoch_2 = [], {}

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(batch)
            if batch == 8:
                images = tf.random.stateless_uniform([2, 16, 16, 3], seed=[3, 4])
                at_epoch_2["images"] = images
                at_epoch_2["representation"] = trainer.online.encoder(images, training=False)

    trainer.fit(stop_at_step=11, callbacks=[Record()])  # before the end: no final export
    assert ends == [4, 8, 11]
    knn = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in knn if "knn_top1" in r]
    assert [(r["step"], r["epoch"]) for r in knn] == [(4, 1.0), (8, 2.0)]
    exported = keras.models.load_model(str(tmp_path / "export" / "encoder_epoch0002.keras"))
    np.testing.assert_allclose(
        exported(at_epoch_2["images"], training=False).numpy(),
        at_epoch_2["representation"].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_steps_in_call_stops_at_due_epoch_boundaries():
    assert train.steps_in_call(0, 100, 8, 4) == 8  # nothing due: the full call
    assert train.steps_in_call(0, 100, 8, 4, (1, 0)) == 4
    assert train.steps_in_call(5, 100, 8, 4, (0, 2)) == 3  # next multiple of 2 epochs: step 8
    assert train.steps_in_call(8, 100, 8, 4, (3, 2)) == 4  # step 12: epoch 3
    assert train.steps_in_call(8, 10, 8, 4, (1,)) == 2  # the end comes first


def test_a_failed_run_closes_its_metrics_log(tmp_path, monkeypatch):
    """A NaN loss stops the run with an error; metrics.jsonl is still closed and whole."""
    from byol_tf.training.callbacks import MetricsLogger

    loggers = []

    class Kept(MetricsLogger):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loggers.append(self)

    monkeypatch.setattr(train, "MetricsLogger", Kept)
    c = tiny_config(**{"schedule.total_steps": 20, "train.log_every_steps": 1})
    trainer = train.Trainer(c, str(tmp_path))
    trainer.fit(stop_at_step=2)
    w = trainer.online.predictor.trainable_variables[0]
    w.assign(tf.fill(w.shape, float("nan")))
    with pytest.raises(train.NonFiniteLossError):
        trainer.fit()
    assert len(loggers) == 2 and all(logger.closed for logger in loggers)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]


def test_trains_from_a_tf_data_dataset_of_images(tmp_path):
    """The Python API takes a user's tf.data.Dataset: its size sets the epoch, its labels the
    online probe's classes."""
    images, labels = data_lib.make_synthetic(48, 16, 3, seed=0)
    c = tiny_config(**{"eval.online_probe": True})
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)
    trainer = train.Trainer(c, str(tmp_path), source=ds)
    assert trainer.source.num_examples == 48 and trainer.steps["steps_per_epoch"] == 3
    assert trainer.probe is not None and trainer.probe.head.units == 3
    before = numpy_weights(trainer.online.encoder.trainable_variables)
    summary = trainer.fit()
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    after = numpy_weights(trainer.online.encoder.trainable_variables)
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    unlabelled = tf.data.Dataset.from_tensor_slices(images)
    with pytest.raises(ValueError, match="online_probe=True.*needs labels.*'dataset'"):
        train.Trainer(c, str(tmp_path / "unlabelled"), source=unlabelled)


def test_empty_input_statistics_are_computed_saved_and_recomputed_on_resume(tmp_path):
    c = tiny_config(**{"data.mean": (), "data.std": (), "schedule.total_steps": 4})
    trainer = train.Trainer(c, str(tmp_path))
    want = data_lib.channel_statistics(trainer.source, c)
    assert (tuple(c.data.mean), tuple(c.data.std)) == want
    assert (
        trainer.online.encoder.mean,
        trainer.online.encoder.std,
    ) == want  # what it normalises with
    trainer.fit(stop_at_step=2)
    saved = json.loads((tmp_path / "config.json").read_text())["data"]
    assert (tuple(saved["mean"]), tuple(saved["std"])) == want
    # The same command again: computes the same values, so the workdir's config matches.
    again = tiny_config(**{"data.mean": (), "data.std": (), "schedule.total_steps": 4})
    assert train.Trainer(again, str(tmp_path)).fit()["steps"] == 4
