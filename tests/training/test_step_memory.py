"""The update ops hold no early copies of the weights at the step's memory peak.

TF's executor runs an op as soon as its inputs exist. A LARS term that needs no gradient
(weight_decay * param, momentum * velocity) or the EMA's tau * xi would then be computed when
the step starts and held through the whole backward pass, the step's peak. These tests build
a 32 MB transient that the update has to wait for and check, with TF's own allocator
accounting, that adding the update does not raise the peak above the transient's.

Each test measures both passes in fresh processes with one inter-op thread
(tests/helpers/isolated.py) and compares their highest peaks: in a worker that earlier tests
used, the executor's op order, and with it the peak, varied by a few MB.
"""

import types

import keras
import tensorflow as tf

from byol_tf.core import lars as optimizers
from byol_tf.training.callbacks import TargetEMA
from tests.helpers import isolated

MB = 2**20


def _peak_above_start(fn, *args) -> float:
    """MB TF's allocator held at most during `fn(*args)`, above what it held before."""
    return isolated.tensor_peak(lambda: fn(*args)) / MB


def _mean_of_transient(seed: tf.Tensor) -> tf.Tensor:
    """A [1024, 1024] value (4 MB) that takes a live [8, 1024, 1024] (32 MB) tensor to make.

    The seed is an argument, so Grappler cannot fold the transient into a constant."""
    return tf.reduce_mean(tf.random.stateless_uniform([8, 1024, 1024], seed), axis=0)


def lars_peaks() -> tuple[float, float]:
    """MB above the start for the gradients alone, then for the gradients and LARS's update."""
    variables = [tf.Variable(tf.ones([1024, 512])), tf.Variable(tf.ones([1024, 512]))]
    optimizer = optimizers.LARS(0.1, momentum=0.9, weight_decay_rate=1e-4)
    optimizer.build(variables)

    def gradients(seed):
        mean = _mean_of_transient(seed)
        return [mean[:, :512], mean[:, 512:]]

    @tf.function
    def gradients_only(seed):
        return tf.add_n([tf.reduce_sum(g) for g in gradients(seed)])

    @tf.function
    def update(seed):
        optimizer.apply(gradients(seed), variables)

    seed = tf.constant([1, 2])
    return _peak_above_start(gradients_only, seed), _peak_above_start(update, seed)


def _highest_pair(function: str) -> tuple[float, float]:
    pairs = [isolated.run("tests.training.test_step_memory", function) for _ in range(2)]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def test_lars_reads_the_weights_only_once_the_gradient_exists():
    base, with_update = _highest_pair("lars_peaks")
    assert base > 30  # the transient is there: the measurement sees it
    # Early weight-decay and momentum terms would add 8 MB (two of each 4 MB of weights).
    assert with_update < base + 3, (base, with_update)


def ema_peaks() -> tuple[float, float]:
    """MB above the start for the online update alone, then followed by the EMA's."""

    def tower(width: int) -> keras.Model:
        layer = keras.layers.Dense(1024, use_bias=False)
        layer.build((None, width))
        return layer

    online = types.SimpleNamespace(encoder=tower(512), projector=tower(1024))
    target = types.SimpleNamespace(encoder=tower(512), projector=tower(1024))
    ema = TargetEMA(online, target, tf.distribute.get_strategy(), tau_base=0.99, total_steps=10)

    def online_update(seed):
        # The online weights' new values need the transient, as after a backward pass.
        mean = _mean_of_transient(seed)
        online.projector.kernel.assign(mean)
        online.encoder.kernel.assign(mean[:512])

    @tf.function
    def without_ema(seed):
        online_update(seed)

    @tf.function
    def with_ema(seed):
        online_update(seed)
        ema.update(tf.constant(0, tf.int64))

    seed = tf.constant([3, 4])
    return _peak_above_start(without_ema, seed), _peak_above_start(with_ema, seed)


def test_ema_reads_the_target_only_after_the_online_update():
    base, peak = _highest_pair("ema_peaks")
    assert base > 30
    # An early tau * xi would hold 6 MB (the two target kernels) beside the transient.
    assert peak < base + 3, (base, peak)
