"""The BYOL train step: one replica's forward, loss and update, and the compiled multi-step call.

`replica_step` is what each replica runs inside `strategy.run`: both views through the online
and target towers, the symmetrised loss averaged over the global batch, gradients into the
optimizer; by default one view's online forward and backward at a time
(`train.backprop_per_view`). `contrastive_replica_step` is the NT-Xent baseline
(`objective.name="nt_xent"`): the online encoder and projector only, no predictor, no target.
`make_train_function` wraps either into one `tf.function` that runs several steps per call
(TPUs need this) and, when asked, the EMA target update inside the same compiled call;
`compile_train_function` builds that function before the first batch. Both
steps hand the online representation of view1 to the optional online linear probe
(`byol_tf.training.probe`) after their own update; the probe detaches it, so it never changes the BYOL
gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import ml_collections
import tensorflow as tf

from byol_tf import augment
from byol_tf.core.losses import byol_loss, nt_xent_loss, regression_loss
from byol_tf.data.pipeline import VIEWS, batch_augment_seed
from byol_tf.platform import heap
from byol_tf.platform.graph_order import after
from byol_tf.training import probe as probe_lib

# probe(representation of view1) -> replica metrics: the online probe's update, bound to the
# batch's labels (see `replica_function`).
ProbeUpdate = Callable[[tf.Tensor], dict[str, tf.Tensor]]


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


def device_augment(batch: dict, config: ml_collections.ConfigDict, step: tf.Tensor) -> dict:
    """Applies the post-crop ops in the step when `augment.on_device` (tf.data only cropped).

    The seeds are the ones tf.data would use, so both placements give identical views.
    """
    ctx = tf.distribute.get_replica_context()
    replica = ctx.replica_id_in_sync_group if ctx is not None else 0
    out = dict(batch)
    for i, view in enumerate(VIEWS):
        seed = batch_augment_seed(config.seed, step, replica, i)
        out[view] = augment.augment_batch(batch[view], config.augment[view], seed)
    return out


def replica_function(
    online: keras.Model,
    target: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: ml_collections.ConfigDict,
    probe: probe_lib.OnlineProbe | None = None,
) -> Callable:
    """`per_replica(batch, step) -> metrics`: everything one replica computes in a step.

    This is the function XLA compiles (`train.jit_compile`, and TPUs): device augmentation
    when configured, both towers, the loss, the gradients and the optimizer update, and the
    online probe's update when `probe` is given (its metrics: `byol_tf.training.probe.REPLICA_SUMS`).
    """
    global_batch = config.data.global_batch_size
    concat_views = config.model.concat_views
    backprop_per_view = config.train.backprop_per_view
    on_device = config.augment.on_device
    objective = config.objective

    def per_replica(batch, step):
        if on_device:
            batch = device_augment(batch, config, step)
        probe_update = None
        if probe is not None:

            def probe_update(representation):
                return probe.replica_update(representation, batch["label"], global_batch)

        if objective.name == "nt_xent":
            return contrastive_replica_step(
                online,
                optimizer,
                batch["view1"],
                batch["view2"],
                global_batch,
                objective.temperature,
                concat_views,
                probe_update,
            )
        return replica_step(
            online,
            target,
            optimizer,
            batch["view1"],
            batch["view2"],
            global_batch,
            concat_views,
            probe_update,
            backprop_per_view,
        )

    return per_replica


def make_train_function(
    strategy: tf.distribute.Strategy,
    online: keras.Model,
    target: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: ml_collections.ConfigDict,
    ema_update: Callable[[tf.Tensor], None] | None,
    probe: probe_lib.OnlineProbe | None = None,
    step_counter: tf.Variable | None = None,
) -> Callable:
    """Returns `train(iterator, num_steps) -> (losses [num_steps], last)`.

    `step_counter` is the loop's own int64 step (the Trainer's `DataPosition.step`), read
    before and incremented after every step. The seeds of device augmentation and the EMA's tau
    use it. Without it the optimizer's `iterations` stands in; under float16 loss scaling
    that count skips the steps whose gradients were non-finite, so the Trainer always passes one.

    `last` holds the scalar metrics of the call's last step: `collapse_std`, and with `probe`
    the online probe's `probe_loss` and `probe_top1` over the global batch.
    `ema_update(step)` (the EMA callback's update) runs after every optimizer step inside the
    compiled call when given; it must be callable in cross-replica context.
    """
    per_replica = replica_function(online, target, optimizer, config, probe)
    if config.train.jit_compile:
        # Compiling the replica function (not the whole distributed step) is what XLA accepts
        # under MirroredStrategy: the cross-replica parts stay outside the cluster.
        per_replica = tf.function(per_replica, jit_compile=True)

    @tf.function
    def train(iterator, num_steps):
        losses = tf.TensorArray(tf.float32, size=num_steps)
        last = {"collapse_std": tf.constant(0.0)}
        if probe is not None:
            last.update({name: tf.constant(0.0) for name in probe_lib.METRICS})
        for i in tf.range(num_steps):
            # Read before the update: step k's EMA uses tau(k), k = completed steps so far.
            step = tf.identity(optimizer.iterations if step_counter is None else step_counter)
            batch = next(iterator)
            metrics = strategy.run(per_replica, args=(batch, step))
            loss = strategy.reduce(tf.distribute.ReduceOp.SUM, metrics["loss"], axis=None)
            last = {
                "collapse_std": strategy.reduce(
                    tf.distribute.ReduceOp.MEAN, metrics["collapse_std"], axis=None
                )
            }
            if probe is not None:
                sums = {
                    k: strategy.reduce(tf.distribute.ReduceOp.SUM, metrics[k], axis=None)
                    for k in probe_lib.REPLICA_SUMS
                }
                last.update(probe_lib.probe_metrics(sums))
            if ema_update is not None:
                ema_update(step)
            if step_counter is not None:
                step_counter.assign_add(1)
            losses = losses.write(i, loss)
        return losses.stack(), last

    return train


def compile_train_function(train: Callable, iterator) -> None:
    """Builds `train`'s graph with a call of zero steps, then returns freed heap to the OS;
    does nothing once `train` has been traced.

    Optimising the step's graph (Grappler, kernel creation) frees tens of MB of C heap that
    glibc keeps, and the first step's tensors would be allocated on top of it: at width 16 and
    batch 128 that was 50 MB of a 1020 MB peak (docs/performance.md). A call of zero steps
    optimises the same graph as every later call (`num_steps` is a tensor), reads no batch and
    changes no variable. With `train.jit_compile` the XLA cluster inside the loop is compiled
    when it first runs, in the first real call, so its compilation's heap is not returned here.
    """
    if train.experimental_get_tracing_count():
        return
    train(iterator, tf.constant(0))
    heap.release_free_memory()
