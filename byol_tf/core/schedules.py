"""Step schedules: the learning rate (linear warm-up then cosine) and the target EMA rate tau.

Each schedule is a pure function of the step. The step may be a Python int or an integer or
float tensor (a Keras optimizer passes its int64 `iterations`); the result is a float32 tensor.
Step counts (`warmup_steps`, `total_steps`) are Python ints fixed for the run; convert epochs
to steps with `byol_tf.config.derive_steps`.

Conventions follow DeepMind's BYOL (`byol/utils/schedules.py`):
- Warm-up: lr(s) = peak * s / warmup_steps for s < warmup_steps, so step 0 has lr 0 (the
  first update moves nothing, as in the reference). With warmup_steps = 0 there is no warm-up.
- Cosine: from warmup_steps to total_steps, lr = peak * (1 + cos(pi * p)) / 2 with
  p = (s - warmup_steps) / (total_steps - warmup_steps). It reaches 0 at total_steps and stays
  0 after it (no restarts).
- tau(k) = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2, k clipped to [0, K]; or, with the
  "constant" schedule, tau(k) = tau_base (lightly's and byol-pytorch's choice for short runs).
- An undecayed rate (for the predictor): the same warm-up, then the peak held to the end.
"""

from __future__ import annotations

import math

import keras
import ml_collections
import tensorflow as tf

# Batch size at which `base_lr` is quoted (Goyal et al. linear scaling, used by the paper).
_REFERENCE_BATCH = 256


def scaled_learning_rate(base_lr: float, global_batch_size: int) -> float:
    """The paper's linear scaling: base_lr * global_batch_size / 256.

    Pass the global batch (all replicas and workers), not the per-replica one.
    """
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size={global_batch_size} must be >= 1.")
    return float(base_lr) * global_batch_size / _REFERENCE_BATCH


def _step_as_float(step) -> tf.Tensor:
    # Negative steps are not meaningful; clamping them keeps lr and tau in range.
    return tf.maximum(tf.cast(step, tf.float32), 0.0)


def _check_steps(warmup_steps: int, total_steps: int) -> tuple[int, int]:
    warmup_steps, total_steps = int(warmup_steps), int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps={total_steps} must be >= 1.")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps={warmup_steps} must be in [0, total_steps={total_steps}]; "
            "shorten the warm-up or lengthen the run."
        )
    return warmup_steps, total_steps


def _half_cosine(progress: tf.Tensor) -> tf.Tensor:
    """(1 + cos(pi * progress)) / 2: 1 at progress 0, 0 at progress 1."""
    return 0.5 * (1.0 + tf.cos(math.pi * progress))


def warmup_cosine(step, peak_lr: float, warmup_steps: int, total_steps: int) -> tf.Tensor:
    """Learning rate at `step`: linear warm-up from 0 to `peak_lr`, cosine to 0, then 0.

    See the module docstring for the exact convention (DeepMind's: lr(0) = 0 when warming up).
    """
    warmup_steps, total_steps = _check_steps(warmup_steps, total_steps)
    step = _step_as_float(step)
    peak = tf.cast(peak_lr, tf.float32)
    # max(., 1) only matters when warmup_steps == total_steps; then the cosine part is never
    # used, because every step >= total_steps is forced to 0 below.
    decay_steps = float(max(total_steps - warmup_steps, 1))
    progress = tf.clip_by_value((step - warmup_steps) / decay_steps, 0.0, 1.0)
    lr = peak * _half_cosine(progress)
    if warmup_steps > 0:
        lr = tf.where(step < warmup_steps, peak * step / warmup_steps, lr)
    return tf.where(step >= total_steps, tf.zeros_like(lr), lr)


def warmup_constant(step, peak_lr: float, warmup_steps: int, total_steps: int) -> tf.Tensor:
    """`warmup_cosine`'s warm-up, then `peak_lr` held until total_steps (0 from there on)."""
    warmup_steps, total_steps = _check_steps(warmup_steps, total_steps)
    step = _step_as_float(step)
    peak = tf.cast(peak_lr, tf.float32)
    lr = tf.fill(tf.shape(step), peak)
    if warmup_steps > 0:
        lr = tf.where(step < warmup_steps, peak * step / warmup_steps, lr)
    return tf.where(step >= total_steps, tf.zeros_like(lr), lr)


def target_tau(step, tau_base: float, total_steps: int, schedule: str = "cosine") -> tf.Tensor:
    """EMA rate of the target network at `step`.

    "cosine": tau_base at step 0, rising to 1 at total_steps. "constant": tau_base throughout.
    With tau_base = 1 the factor (1 - tau_base) is exactly 0, so tau is exactly 1.0 (a frozen
    target) at every step, whichever the schedule.
    """
    _, total_steps = _check_steps(0, total_steps)
    k = tf.minimum(_step_as_float(step), float(total_steps))
    one_minus_base = 1.0 - tf.cast(tau_base, tf.float32)
    if schedule == "constant":
        return 1.0 - one_minus_base * tf.ones_like(k)
    if schedule != "cosine":
        raise ValueError(f"tau schedule {schedule!r} is not one of cosine, constant.")
    return 1.0 - one_minus_base * _half_cosine(k / total_steps)


@keras.saving.register_keras_serializable(package="byol_tf")
class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`warmup_cosine` (or, with `decay=False`, `warmup_constant`) as a Keras learning-rate
    schedule, evaluated at optimizer.iterations."""

    def __init__(
        self,
        peak_lr: float,
        warmup_steps: int,
        total_steps: int,
        name: str = "lr",
        decay: bool = True,
    ):
        super().__init__()
        # Validate now, so a bad config fails when the optimizer is built, not mid-trace.
        self.warmup_steps, self.total_steps = _check_steps(warmup_steps, total_steps)
        self.peak_lr = float(peak_lr)
        self.name = name
        # False: `warmup_constant`, the peak held after the warm-up.
        self.decay = bool(decay)

    def __call__(self, step):
        fn = warmup_cosine if self.decay else warmup_constant
        return fn(step, self.peak_lr, self.warmup_steps, self.total_steps)

    def get_config(self) -> dict:
        return dict(
            peak_lr=self.peak_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            name=self.name,
            decay=self.decay,
        )


def build_lr_schedule(
    config: ml_collections.ConfigDict, steps: dict[str, int]
) -> WarmupCosineSchedule:
    """The pretraining schedule from `config` and `steps` (the output of `derive_steps`).

    The peak is `optimizer.base_lr` scaled by the global batch, `data.global_batch_size`.
    """
    peak = scaled_learning_rate(config.optimizer.base_lr, config.data.global_batch_size)
    return WarmupCosineSchedule(peak, steps["warmup_steps"], steps["total_steps"])


def build_predictor_lr_schedule(
    config: ml_collections.ConfigDict, steps: dict[str, int]
) -> WarmupCosineSchedule | None:
    """The predictor's own schedule, or None when it simply follows `build_lr_schedule`.

    Its peak is the main peak times `optimizer.predictor_lr_multiplier`; with
    `optimizer.predictor_lr_decay` False it holds that peak after the warm-up.
    """
    opt = config.optimizer
    if opt.predictor_lr_multiplier == 1.0 and opt.predictor_lr_decay:
        return None
    peak = scaled_learning_rate(opt.base_lr, config.data.global_batch_size)
    return WarmupCosineSchedule(
        peak * opt.predictor_lr_multiplier,
        steps["warmup_steps"],
        steps["total_steps"],
        name="predictor_lr",
        decay=bool(opt.predictor_lr_decay),
    )


class AtLoopStep(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` evaluated at the train loop's step counter, not at the optimizer's count.

    Under float16 a loss-scaling optimizer does not count a step whose gradients overflowed
    (it skips the update), so its `iterations` falls behind the loop; the learning rate must
    follow the loop's step like the data, tau and the logs do.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, step):
        super().__init__()
        self.schedule = schedule
        self.step = step  # an int64 tf.Variable, read at every optimizer update

    def __call__(self, iterations):  # noqa: ARG002  (the optimizer's count is ignored)
        return self.schedule(self.step)

    def get_config(self) -> dict:
        return self.schedule.get_config()
