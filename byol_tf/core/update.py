"""The BYOL update, top to bottom: what one replica computes in one training step.

    views -> online tower f, g, q and target tower f, g (training mode) -> loss
    2 - 2 cos(q(z), sg(z')), symmetrised -> gradients -> LARS -> EMA of the target

`replica_step` is what each replica runs inside `strategy.run`; `target_ema` moves the target
after it. `contrastive_replica_step` is the NT-Xent baseline (`objective.name="nt_xent"`):
the online encoder and projector only, no predictor, no target. The compiled step reads a
`StepSpec`, built once from the config, so its fields are all it depends on
(byol_tf/training/step.py compiles it into the multi-step call).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import ml_collections
import tensorflow as tf

from byol_tf.core.losses import byol_loss, nt_xent_loss, regression_loss
from byol_tf.core.schedules import target_tau
from byol_tf.platform.graph_order import after

# probe(representation of view1) -> replica metrics: the online probe's update, bound to the
# batch's labels (byol_tf/training/step.py).
ProbeUpdate = Callable[[tf.Tensor], dict[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything the compiled step reads from the config, and nothing else."""

    global_batch_size: int
    objective: str = "byol"  # or "nt_xent"
    temperature: float = 0.1  # NT-Xent only
    concat_views: bool = False
    backprop_per_view: bool = True
    jit_compile: bool = False
    # augment.on_device: the views' post-crop ops run in the step, seeded from `seed`.
    device_augment: ml_collections.FrozenConfigDict | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> StepSpec:
        return cls(
            global_batch_size=int(config.data.global_batch_size),
            objective=config.objective.name,
            temperature=float(config.objective.temperature),
            concat_views=bool(config.model.concat_views),
            backprop_per_view=bool(config.train.backprop_per_view),
            jit_compile=bool(config.train.jit_compile),
            device_augment=(
                ml_collections.FrozenConfigDict(config.augment)
                if config.augment.on_device
                else None
            ),
            seed=int(config.seed),
        )


def collapse_indicator(projections: tf.Tensor) -> tf.Tensor:
    """Per-dimension std of L2-normalised projections times sqrt(d): ~1 healthy, -> 0 collapsed.

    For vectors spread uniformly on the unit sphere each coordinate has std 1/sqrt(d), so the
    scaled value is about 1; if every example maps to the same point it is 0.
    """
    z = tf.math.l2_normalize(tf.cast(projections, tf.float32), axis=1)
    dim = tf.cast(tf.shape(z)[1], tf.float32)
    return tf.reduce_mean(tf.math.reduce_std(z, axis=0)) * tf.sqrt(dim)


def _forward(model: keras.Model, view1: tf.Tensor, view2: tf.Tensor, concat_views: bool):
    if concat_views:
        # One 2B batch: faster, but BatchNorm then shares statistics across the two views.
        out = model(tf.concat([view1, view2], axis=0), training=True)
        n = tf.shape(view1)[0]
        return [{k: v[:n] for k, v in out.items()}, {k: v[n:] for k, v in out.items()}]
    # Separate calls: BatchNorm statistics are computed per view, as in the reference code.
    return [model(view1, training=True), model(view2, training=True)]


def _scaled(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    # float16's LossScaleOptimizer scales the loss before the gradient; others have no scale.
    # Call it inside the tape, so that the scaling is part of what is differentiated.
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


def _add_gradients(x, y):
    """x + y for two gradients of one variable, either of which may be None or sparse.

    Sparse gradients (`tf.IndexedSlices`, e.g. of an embedding lookup in a user's encoder) are
    concatenated, as the tape itself sums the sparse gradients of one variable.
    """
    if x is None or y is None:
        return y if x is None else x
    if isinstance(x, tf.IndexedSlices) and isinstance(y, tf.IndexedSlices):
        values = tf.concat([x.values, y.values], axis=0)
        return tf.IndexedSlices(values, tf.concat([x.indices, y.indices], axis=0), x.dense_shape)
    return tf.convert_to_tensor(x) + tf.convert_to_tensor(y)


def replica_step(
    online: keras.Model,
    target: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    view1: tf.Tensor,
    view2: tf.Tensor,
    global_batch_size: int,
    concat_views: bool = False,
    probe: ProbeUpdate | None = None,
    backprop_per_view: bool = True,
) -> dict[str, tf.Tensor]:
    """Runs one BYOL update on this replica's views; returns replica-local metrics.

    The returned `loss` is this replica's share of the global-batch mean, so summing it over
    replicas gives the global loss under every strategy. `probe`, when given, gets the online
    representation of view1 after the update and adds its metrics.

    `backprop_per_view` (with separate views, not `concat_views`): each view's online forward
    and backward run before the next view's, and the two gradients are summed. The symmetrised
    loss is a sum of one term per online view, so this is the same gradient, with half the
    activations held at once and no extra computation.
    """
    # The target runs in training mode (batch statistics), outside the tape: its outputs are
    # constants for the gradient and its BN moving statistics track its own forward passes.
    target_out = _forward(target, view1, view2, concat_views)
    variables = online.trainable_variables
    if backprop_per_view and not concat_views:
        online_out, loss, grads = _online_per_view(
            online, optimizer, (view1, view2), target_out, variables, global_batch_size
        )
    else:
        with tf.GradientTape() as tape:
            online_out = _forward(online, view1, view2, concat_views)
            per_example = byol_loss(
                online_out[0]["prediction"],
                online_out[1]["prediction"],
                target_out[0]["projection"],
                target_out[1]["projection"],
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            scaled = _scaled(optimizer, loss)
        grads = tape.gradient(scaled, variables)
    optimizer.apply(grads, variables)
    metrics = {"loss": loss, "collapse_std": collapse_indicator(online_out[0]["projection"])}
    if probe is not None:  # outside the tape: nothing of the probe is recorded for BYOL
        metrics.update(probe(online_out[0]["representation"]))
    return metrics


def _online_per_view(online, optimizer, views, target_out, variables, global_batch_size):
    """(online outputs per view, loss, gradients): one forward and backward per view in turn."""
    # View i's prediction regresses the target projection of the other view.
    others = [target_out[1]["projection"], target_out[0]["projection"]]
    # The target's forward passes finish first, so their buffers are freed before the online
    # activations accumulate.
    wait_for = list(others)
    outputs, loss, grads = [], None, None
    for view, other in zip(views, others, strict=True):
        with tf.GradientTape() as tape:
            # Without the wait TF's executor may start this view's forward while the previous
            # view's backward runs, and then both views' activations are alive together.
            out = online(after(view, wait_for), training=True)
            term = tf.nn.compute_average_loss(
                regression_loss(out["prediction"], other), global_batch_size=global_batch_size
            )
            scaled = _scaled(optimizer, term)
        view_grads = tape.gradient(scaled, variables)
        wait_for = list(view_grads)
        outputs.append(out)
        loss = term if loss is None else loss + term
        grads = view_grads if grads is None else list(map(_add_gradients, grads, view_grads))
    return outputs, loss, grads


def gather_replicas(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(x of every replica concatenated in replica order, index of this replica's first row).

    Uses the replica context's all_gather, whose gradient sends each replica the part of the
    summed upstream gradient that belongs to its own rows, so a loss over gathered keys
    backpropagates into every replica's projections, as on a single device. All replicas must
    hold the same number of rows (the global batch is split evenly).
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x, tf.constant(0, tf.int32)
    replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    return ctx.all_gather(x, axis=0), replica * tf.shape(x)[0]


def _projections(online: keras.Model, view1, view2, concat_views: bool) -> tuple[list, list]:
    """([y1, y2], [z1, z2]): representations and projections of both views, training mode."""

    def encode(images):
        y = online.encoder(images, training=True)
        return y, online.projector(y, training=True)

    if concat_views:
        y, z = encode(tf.concat([view1, view2], axis=0))
        n = tf.shape(view1)[0]
        return [y[:n], y[n:]], [z[:n], z[n:]]
    (y1, z1), (y2, z2) = encode(view1), encode(view2)
    return [y1, y2], [z1, z2]


def contrastive_replica_step(
    online: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    view1: tf.Tensor,
    view2: tf.Tensor,
    global_batch_size: int,
    temperature: float,
    concat_views: bool = False,
    probe: ProbeUpdate | None = None,
) -> dict[str, tf.Tensor]:
    """One NT-Xent (SimCLR) update of the online encoder and projector on this replica's views.

    Negatives come from the global batch: the projections of both views are all-gathered
    across replicas, so every anchor is contrasted with the 2N - 1 others of the global batch
    of N images, whatever the number of replicas. The predictor is not used and not updated.
    `probe` as in `replica_step`.
    """
    variables = online.encoder.trainable_variables + online.projector.trainable_variables
    with tf.GradientTape() as tape:
        (y1, _), projections = _projections(online, view1, view2, concat_views)
        z1, z2 = (tf.cast(z, tf.float32) for z in projections)
        z1_keys, offset = gather_replicas(z1)
        z2_keys, _ = gather_replicas(z2)
        per_example = nt_xent_loss(z1, z2, temperature, z1_keys, z2_keys, offset)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
        scaled = _scaled(optimizer, loss)
    grads = tape.gradient(scaled, variables)
    optimizer.apply(grads, variables)
    metrics = {"loss": loss, "collapse_std": collapse_indicator(z1)}
    if probe is not None:
        metrics.update(probe(y1))
    return metrics


def target_ema(
    pairs: Sequence[tuple[tf.Variable, tf.Variable]],
    step: tf.Tensor,
    tau_base: float,
    total_steps: int,
    tau_schedule: str,
    strategy: tf.distribute.Strategy,
) -> None:
    """xi <- tau(step) * xi + (1 - tau(step)) * theta for each (online theta, target xi) pair.

    Callable in cross-replica context. Only trainable weights are averaged: the target's
    BatchNorm moving statistics come from its own training-mode forward passes, as in
    DeepMind's reference code.
    """

    def ema(target_var, online_value):
        # Each device blends its own copies: no cross-device traffic, and the result is the
        # same on every replica because the online weights are already in sync. Read the target
        # only once the updated online value exists: otherwise the executor computes tau * xi
        # when the step starts and holds it through the backward pass, a copy of every target
        # weight at the step's memory peak.
        online_value = tf.convert_to_tensor(online_value)  # a read, after the update
        current = after(target_var, [online_value])
        return target_var.assign(tau * current + (1.0 - tau) * online_value)

    with tf.name_scope("ema"):  # names its ops in profiles (benchmarks/bench/profile.py)
        tau = target_tau(step, tau_base, total_steps, tau_schedule)
        for online_var, target_var in pairs:
            strategy.extended.update(target_var.value, ema, args=(online_var.value,), group=False)
