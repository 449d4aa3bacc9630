"""byol_tf.core.schedules by value at exact steps (hand-computed numbers, not the formula again)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.core import schedules

# peak 0.4, 10 warm-up steps, 110 in total: the cosine part spans 100 steps.
PEAK, WARMUP, TOTAL = 0.4, 10, 110

# step -> expected lr. Step 109 is the last step: 0.2 * (1 + cos(0.99 pi)).
LR_AT = {
    0: 0.0,  # DeepMind convention: peak * step / warmup, so step 0 has lr 0.
    1: 0.04,
    5: 0.2,  # mid warm-up
    9: 0.36,  # last warm-up step
    10: 0.4,  # end of warm-up: the cosine starts at the peak
    60: 0.2,  # middle of the cosine
    85: 0.2 * (1.0 - 0.7071067811865476),
    109: 9.86879268536e-05,
    110: 0.0,  # total_steps
    111: 0.0,
    10_000: 0.0,  # constant 0 after the end, no restart
}


@pytest.mark.parametrize("step", sorted(LR_AT))
def test_warmup_cosine_values(step):
    got = schedules.warmup_cosine(step, PEAK, WARMUP, TOTAL)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), LR_AT[step], rtol=1e-5, atol=1e-7)


def test_warmup_cosine_accepts_tensors_and_vectors():
    steps = sorted(LR_AT)
    for dtype in (tf.int32, tf.int64, tf.float32):
        got = schedules.warmup_cosine(tf.constant(steps, dtype), PEAK, WARMUP, TOTAL)
        np.testing.assert_allclose(got.numpy(), [LR_AT[s] for s in steps], rtol=1e-5, atol=1e-7)


def test_warmup_cosine_in_tf_function():
    fn = tf.function(lambda s: schedules.warmup_cosine(s, PEAK, WARMUP, TOTAL))
    np.testing.assert_allclose(fn(tf.constant(5, tf.int64)).numpy(), 0.2, rtol=1e-6)
    np.testing.assert_allclose(fn(tf.constant(60, tf.int64)).numpy(), 0.2, rtol=1e-5)


def test_no_warmup_starts_at_peak():
    np.testing.assert_allclose(schedules.warmup_cosine(0, 1.0, 0, 4).numpy(), 1.0)
    # 1 + cos(pi / 4) over 2.
    np.testing.assert_allclose(schedules.warmup_cosine(1, 1.0, 0, 4).numpy(), 0.8535534, rtol=1e-6)
    np.testing.assert_allclose(schedules.warmup_cosine(2, 1.0, 0, 4).numpy(), 0.5, rtol=1e-6)
    np.testing.assert_allclose(schedules.warmup_cosine(4, 1.0, 0, 4).numpy(), 0.0)


def test_warmup_equal_to_total_is_warmup_then_zero():
    np.testing.assert_allclose(schedules.warmup_cosine(2, 1.0, 4, 4).numpy(), 0.5)
    np.testing.assert_allclose(schedules.warmup_cosine(4, 1.0, 4, 4).numpy(), 0.0)


def test_lr_is_monotone_after_warmup():
    lr = schedules.warmup_cosine(tf.range(TOTAL + 5), PEAK, WARMUP, TOTAL).numpy()
    assert np.all(np.diff(lr[: WARMUP + 1]) > 0)
    assert np.all(np.diff(lr[WARMUP:]) <= 0)
    assert lr.max() == pytest.approx(PEAK)


@pytest.mark.parametrize(
    "warmup, total", [(-1, 10), (11, 10), (0, 0)], ids=["negative", "too_long", "no_steps"]
)
def test_bad_step_counts_raise(warmup, total):
    with pytest.raises(ValueError, match="steps"):
        schedules.warmup_cosine(0, 1.0, warmup, total)


def test_scaled_learning_rate():
    assert schedules.scaled_learning_rate(0.2, 256) == pytest.approx(0.2)
    assert schedules.scaled_learning_rate(0.2, 4096) == pytest.approx(3.2)
    assert schedules.scaled_learning_rate(0.3, 128) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="global_batch_size=0"):
        schedules.scaled_learning_rate(0.2, 0)


def test_tau_values():
    tau_base, total = 0.996, 100
    tau = lambda k: schedules.target_tau(k, tau_base, total).numpy()
    np.testing.assert_allclose(tau(0), 0.996, atol=1e-7)
    np.testing.assert_allclose(tau(50), 0.998, atol=1e-7)  # mean of tau_base and 1
    np.testing.assert_allclose(tau(25), 1 - 0.004 * (1 + 0.7071067811865476) / 2, atol=1e-7)
    assert tau(100) == 1.0
    assert tau(1000) == 1.0  # k clipped to K
    assert tau(-5) == pytest.approx(0.996)  # and to 0
    assert schedules.target_tau(0, tau_base, total).dtype == tf.float32


def test_tau_is_monotone():
    tau = schedules.target_tau(tf.range(0, 201), 0.99, 200).numpy()
    assert np.all(np.diff(tau) >= 0)
    assert tau[0] == pytest.approx(0.99) and tau[-1] == 1.0


def test_tau_base_one_is_exactly_one():
    tau = schedules.target_tau(tf.range(0, 120), 1.0, 100).numpy()
    assert np.all(tau == 1.0)


def test_tau_in_tf_function_with_int64_step():
    fn = tf.function(lambda s: schedules.target_tau(s, 0.97, 10))
    np.testing.assert_allclose(fn(tf.constant(5, tf.int64)).numpy(), 0.985, atol=1e-7)


def test_schedule_object_and_serialisation():
    schedule = schedules.WarmupCosineSchedule(PEAK, WARMUP, TOTAL)
    np.testing.assert_allclose(schedule(tf.constant(5, tf.int64)).numpy(), 0.2, rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(keras.optimizers.schedules.serialize(schedule)))
    )
    assert isinstance(restored, schedules.WarmupCosineSchedule)
    assert restored.get_config() == schedule.get_config()
    np.testing.assert_allclose(restored(60).numpy(), 0.2, rtol=1e-5)


def test_schedule_drives_a_keras_optimizer():
    # The optimizer evaluates the schedule at its iteration count before incrementing it.
    optimizer = keras.optimizers.SGD(schedules.WarmupCosineSchedule(PEAK, WARMUP, TOTAL))
    var = keras.Variable(1.0)
    seen = []
    for _ in range(3):
        seen.append(float(optimizer.learning_rate.numpy()))
        optimizer.apply([tf.constant(1.0)], [var])
    np.testing.assert_allclose(seen, [0.0, 0.04, 0.08], rtol=1e-6)


def test_build_lr_schedule_from_config():
    config = config_lib.base_config()
    config.data.global_batch_size = 512
    config.optimizer.base_lr = 0.2
    config.schedule.epochs = 11
    config.schedule.warmup_epochs = 1
    steps = config_lib.derive_steps(config, num_examples=5120)  # 10 steps per epoch
    schedule = schedules.build_lr_schedule(config, steps)
    assert (schedule.peak_lr, schedule.warmup_steps, schedule.total_steps) == (0.4, 10, 110)
    for step in (0, 5, 60, 110):
        np.testing.assert_allclose(schedule(step).numpy(), LR_AT[step], rtol=1e-5, atol=1e-7)
