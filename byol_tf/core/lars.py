"""LARS (You et al. 2017) as used by BYOL, the variable-exclusion helper, and the factory.

The update follows DeepMind's BYOL (`byol/utils/optimizers.py`): for a variable that is not
excluded, L2 weight decay is added to the gradient, the sum is rescaled by the trust ratio
`trust_coefficient * ||param|| / ||grad + decay * param||` (1 when either norm is 0), and the
result goes through heavy-ball momentum, `v = momentum * v + g`, `param -= lr * v`. Biases and
normalisation parameters (matched by regex on `variable.path`) skip both the decay and the
trust ratio, so they follow plain momentum SGD.

Clipped local rate (`clip_local_lr`, solo-learn's `clip_lr`, NVIDIA apex's LARC "clip" mode):
the gradient is scaled by `min(local / lr, 1)` instead of the trust ratio, where
`local = trust_coefficient * ||param|| / ||grad + decay * param||`. The variable then moves at
the rate `min(local, lr)`: the local rate on its own, no longer multiplied by `lr`, and never
faster than plain momentum SGD at `lr`. With solo-learn's trust coefficient 0.02 each gradient
adds up to 2% of the layer's norm to the velocity (momentum 0.9 lets steady gradients build
that to about ten times as much), against the unclipped paper's 1e-3 * lr. Two differences
from solo-learn: the denominator is DeepMind's `||grad + decay * param||` where solo-learn has
`||grad|| + decay * ||param|| + 1e-8`, and the cap uses the variable's own rate (the
predictor's, where it has one) where solo-learn uses its parameter group's.

Predictor rate: variables matching `predictor_patterns` can have their own learning rate,
`predictor_learning_rate` (a schedule or float), evaluated at the same step as the main one.

Differences from the reference: one exclusion list serves both the decay and the trust ratio
(the reference has two filters, set to the same one in BYOL), and Nesterov momentum is an
option (off by default; the reference has none).

LARS scope (Fetterman & Albrecht's ablation): `include_patterns` narrows the trust ratio to
the variables whose path matches one of them; the others that are not excluded keep the
weight decay and plain momentum, at the learning rate times `unscoped_lr_scale` (the trust
ratio shrinks a LARS step by orders of magnitude, so plain SGD at the LARS learning rate would
take far larger steps). Empty means every non-excluded variable, as in the paper. Excluded
variables (biases, norm parameters) follow the learning rate unscaled whatever the scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from byol_tf.config import OPTIMIZERS
from byol_tf.platform.graph_order import after

# The online tower's predictor q (byol_tf.models.towers names its head "predictor").
DEFAULT_PREDICTOR_PATTERNS = (r"(^|/)predictor/",)

# Keras 3 names: Dense/Conv `bias`, Batch/Layer/GroupNormalization `gamma` and `beta`. Anchored
# to a path component so that, e.g., a layer called `bias_net` with a `kernel` is not caught.
DEFAULT_EXCLUDE_PATTERNS = (r"(^|/)bias$", r"(^|/)beta$", r"(^|/)gamma$")


def is_excluded(path: str, patterns: Iterable[str | re.Pattern]) -> bool:
    """True if any regex in `patterns` matches somewhere in `path` (re.search)."""
    return any(re.search(pattern, path) for pattern in patterns)


def _variable_path(variable) -> str:
    # Keras 3 variables carry the full `path` ("model/dense/bias"); `name` is only "bias".
    # Plain tf.Variables have no path, so fall back to their (scoped) name.
    return getattr(variable, "path", None) or variable.name


def excluded_variables(variables: Iterable, patterns: Iterable[str | re.Pattern]) -> list:
    """The variables whose `path` matches one of `patterns`, in their original order."""
    patterns = tuple(patterns)
    return [v for v in variables if is_excluded(_variable_path(v), patterns)]


def trust_ratio_variables(
    variables: Iterable,
    exclude_patterns: Iterable[str | re.Pattern],
    include_patterns: Iterable[str | re.Pattern] = (),
) -> list:
    """The variables LARS rescales by the trust ratio: not excluded, and matching one of
    `include_patterns` unless it is empty (then all non-excluded ones). Original order."""
    exclude, include = tuple(exclude_patterns), tuple(include_patterns)
    return [v for v in variables if _adapted(_variable_path(v), exclude, include)]


def _adapted(path: str, exclude: tuple, include: tuple) -> bool:
    return not is_excluded(path, exclude) and (not include or is_excluded(path, include))


def lars_update(
    param,
    grad,
    velocity,
    lr,
    weight_decay: float,
    momentum: float,
    trust_coefficient: float,
    excluded: bool,
    nesterov: bool = False,
    trust_ratio: bool = True,
    clip_local_lr: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """One LARS step for one variable; returns (new_param, new_velocity).

    Pure: takes arrays or tensors and assigns nothing, so it can be checked against NumPy and
    is the same code `LARS.update_step` runs. Computation happens in `param`'s dtype.

    Args:
      param, grad, velocity: same shape.
      lr: learning rate for this step (scalar).
      excluded: True for biases and normalisation parameters: the gradient is used as is, with
        no weight decay and no trust ratio.
      nesterov: if True the step is lr * (momentum * new_velocity + g) instead of
        lr * new_velocity.
      trust_ratio: False leaves a non-excluded variable's gradient (with weight decay) unscaled:
        outside the LARS scope.
      clip_local_lr: scale by min(trust / lr, 1) instead of trust, so the variable moves at
        min(trust, lr) (solo-learn's clip_lr; see the module docstring).
    """
    param = tf.convert_to_tensor(param)
    dtype = param.dtype
    grad = tf.cast(grad, dtype)
    velocity = tf.cast(velocity, dtype)
    if not excluded:
        grad = grad + tf.cast(weight_decay, dtype) * param
    if not excluded and trust_ratio:
        param_norm = tf.norm(param)
        grad_norm = tf.norm(grad)
        usable = tf.logical_and(param_norm > 0, grad_norm > 0)
        # Divide by a safe denominator so the unused branch of tf.where holds no inf/NaN.
        safe_grad_norm = tf.where(usable, grad_norm, tf.ones_like(grad_norm))
        trust = tf.where(
            usable,
            tf.cast(trust_coefficient, dtype) * param_norm / safe_grad_norm,
            tf.ones_like(param_norm),
        )
        if clip_local_lr:
            # At lr = 0 the scale is 1: the step is 0 anyway, and the velocity takes the plain
            # gradient, the limit of min(trust / lr, 1) as lr -> 0. A zero norm keeps the
            # unclipped fallback 1, as in solo-learn (it clips only where both norms are > 0).
            lr_t = tf.cast(lr, dtype)
            positive = lr_t > 0
            safe_lr = tf.where(positive, lr_t, tf.ones_like(lr_t))
            clipped = tf.where(positive, tf.minimum(trust / safe_lr, 1.0), tf.ones_like(trust))
            trust = tf.where(usable, clipped, trust)
        grad = grad * trust
    momentum = tf.cast(momentum, dtype)
    new_velocity = momentum * velocity + grad
    step = momentum * new_velocity + grad if nesterov else new_velocity
    return param - tf.cast(lr, dtype) * step, new_velocity


@keras.saving.register_keras_serializable(package="byol_tf")
class LARS(keras.optimizers.Optimizer):
    """Keras 3 LARS with BYOL's exclusions; the math is `lars_update`.

    Weight decay here is L2 added to the gradient before the trust ratio, which is why the
    argument is `weight_decay_rate`: Keras's own `weight_decay` is decoupled (applied to the
    weights after the step) and is refused.

    Whether a variable is excluded is decided from `variable.path` once, in `build`, and
    cached by variable index: inside a distributed update the optimizer only sees per-device
    `tf.Variable`s, which have no Keras path. Build the optimizer (e.g.
    `optimizer.build(model.trainable_variables)`) inside `strategy.scope()` before the first
    step; then call `apply` inside `strategy.run`, where gradients are summed across replicas.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum: float = 0.9,
        weight_decay_rate: float = 0.0,
        trust_coefficient: float = 1e-3,
        nesterov: bool = False,
        exclude_patterns: Sequence[str] = DEFAULT_EXCLUDE_PATTERNS,
        include_patterns: Sequence[str] = (),
        unscoped_lr_scale: float = 1.0,
        clip_local_lr: bool = False,
        predictor_learning_rate=None,
        predictor_patterns: Sequence[str] = DEFAULT_PREDICTOR_PATTERNS,
        name: str = "lars",
        **kwargs,
    ):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                f"LARS got weight_decay={kwargs['weight_decay']}, Keras's decoupled decay; "
                "pass weight_decay_rate instead (L2 added to the gradient before the trust ratio)."
            )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1).")
        if weight_decay_rate < 0.0:
            raise ValueError(f"weight_decay_rate={weight_decay_rate} must be >= 0.")
        if trust_coefficient <= 0.0:
            raise ValueError(f"trust_coefficient={trust_coefficient} must be > 0.")
        if unscoped_lr_scale <= 0.0:
            raise ValueError(f"unscoped_lr_scale={unscoped_lr_scale} must be > 0.")
        for pattern in (*exclude_patterns, *include_patterns, *predictor_patterns):
            re.compile(pattern)  # Fail now on a malformed regex, not at build time.
        self.momentum = float(momentum)
        self.weight_decay_rate = float(weight_decay_rate)
        self.trust_coefficient = float(trust_coefficient)
        self.nesterov = bool(nesterov)
        self.exclude_patterns = tuple(exclude_patterns)
        self.include_patterns = tuple(include_patterns)
        self.unscoped_lr_scale = float(unscoped_lr_scale)
        self.clip_local_lr = bool(clip_local_lr)
        # None: the predictor follows `learning_rate` like every other variable.
        self.predictor_learning_rate = predictor_learning_rate
        self.predictor_patterns = tuple(predictor_patterns)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._velocities = self.add_optimizer_variables(variables, "velocity")
        self._excluded = tuple(
            is_excluded(_variable_path(v), self.exclude_patterns) for v in variables
        )
        self._adapted = tuple(
            _adapted(_variable_path(v), self.exclude_patterns, self.include_patterns)
            for v in variables
        )
        self._lr_scales = tuple(
            1.0 if excluded or adapted else self.unscoped_lr_scale
            for excluded, adapted in zip(self._excluded, self._adapted)
        )
        self._predictor = tuple(
            self.predictor_learning_rate is not None
            and is_excluded(_variable_path(v), self.predictor_patterns)
            for v in variables
        )
        if self.predictor_learning_rate is not None and not any(self._predictor):
            raise ValueError(
                f"A predictor learning rate was given but no variable path matches "
                f"{self.predictor_patterns}: the predictor's variables are not among these."
            )
        if self.include_patterns and not any(self._adapted):
            logging.warning(
                "LARS include_patterns %s match no variable: no trust ratio anywhere "
                "(momentum SGD with weight decay).",
                self.include_patterns,
            )

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        velocity = self._velocities[index]
        # Read the variable and its velocity only once the gradient exists. Otherwise TF's
        # executor computes the terms that need no gradient (weight_decay * param,
        # momentum * velocity) as soon as the step starts and holds them, two copies of every
        # weight, through the whole backward pass: 35 MB of a 300 MB tensor peak at width 16,
        # batch 128 (docs/performance.md, sitting s10).
        ready = tf.nest.flatten(gradient, expand_composites=True)
        param, old_velocity = after(variable, ready), after(velocity, ready)
        if self._predictor[index]:
            learning_rate = self._predictor_rate()
        new_param, new_velocity = lars_update(
            param,
            gradient,
            old_velocity,
            learning_rate * self._lr_scales[index],
            weight_decay=self.weight_decay_rate,
            momentum=self.momentum,
            trust_coefficient=self.trust_coefficient,
            excluded=self._excluded[index],
            nesterov=self.nesterov,
            trust_ratio=self._adapted[index],
            clip_local_lr=self.clip_local_lr,
        )
        self.assign(velocity, new_velocity)
        self.assign(variable, new_param)

    def _predictor_rate(self) -> tf.Tensor:
        rate = self.predictor_learning_rate
        if callable(rate):
            rate = rate(self.iterations)
        return tf.cast(rate, tf.float32)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            weight_decay_rate=self.weight_decay_rate,
            trust_coefficient=self.trust_coefficient,
            nesterov=self.nesterov,
            exclude_patterns=list(self.exclude_patterns),
            include_patterns=list(self.include_patterns),
            unscoped_lr_scale=self.unscoped_lr_scale,
            clip_local_lr=self.clip_local_lr,
            predictor_learning_rate=(
                keras.saving.serialize_keras_object(self.predictor_learning_rate)
                if isinstance(
                    self.predictor_learning_rate, keras.optimizers.schedules.LearningRateSchedule
                )
                else self.predictor_learning_rate
            ),
            predictor_patterns=list(self.predictor_patterns),
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        rate = config.get("predictor_learning_rate")
        if isinstance(rate, dict):
            config["predictor_learning_rate"] = keras.saving.deserialize_keras_object(
                rate, custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


def build_optimizer(
    config: ml_collections.ConfigDict, learning_rate, predictor_learning_rate=None
) -> keras.optimizers.Optimizer:
    """The optimizer named by `config.optimizer.name` with `learning_rate` (float or schedule).

    "lars": `LARS` from `optimizer.{momentum, weight_decay, trust_coefficient, nesterov,
    exclude_patterns, lars_include_patterns, unscoped_lr_scale, clip_local_lr}`, with
    `predictor_learning_rate` (None: the predictor follows `learning_rate`).
    "sgd": `keras.optimizers.SGD` with `optimizer.{momentum, nesterov}` only: no weight decay,
    no trust ratio, no exclusions (the linear-evaluation recipe uses no decay). Keras's SGD
    keeps the learning rate inside its velocity (v = m * v - lr * g), which matches LARS's
    convention only while the learning rate is constant.
    """
    opt = config.optimizer
    if opt.name == "lars":
        return LARS(
            learning_rate=learning_rate,
            momentum=opt.momentum,
            weight_decay_rate=opt.weight_decay,
            trust_coefficient=opt.trust_coefficient,
            nesterov=opt.nesterov,
            exclude_patterns=tuple(opt.exclude_patterns),
            include_patterns=tuple(opt.lars_include_patterns),
            unscoped_lr_scale=opt.unscoped_lr_scale,
            clip_local_lr=opt.clip_local_lr,
            predictor_learning_rate=predictor_learning_rate,
        )
    if predictor_learning_rate is not None:
        raise ValueError(
            f"A predictor learning rate needs optimizer.name='lars', not {opt.name!r}."
        )
    if opt.name == "sgd":
        if opt.weight_decay:
            logging.warning(
                "optimizer.weight_decay=%s is ignored by optimizer.name='sgd'; set it to 0 "
                "or use 'lars'.",
                opt.weight_decay,
            )
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=float(opt.momentum), nesterov=bool(opt.nesterov)
        )
    raise ValueError(f"optimizer.name={opt.name!r} is not one of {', '.join(OPTIMIZERS)}.")
