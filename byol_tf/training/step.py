"""The compiled training call around the BYOL update of `byol_tf.core.update`.

`replica_function` binds one replica's step to a `StepSpec`: device augmentation when the
spec asks for it, the BYOL (or NT-Xent) update, and the optional online linear probe
(`byol_tf.training.probe`), which gets the online representation of view1 after the update and
detaches it, so it never changes the BYOL gradients. `make_train_function` wraps it into one
`tf.function` that runs several steps per call (TPUs need this) and, when asked, the EMA target
update inside the same compiled call; `compile_train_function` builds that function before
the first batch.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from byol_tf import augment
from byol_tf.core.update import StepSpec, contrastive_replica_step, replica_step
from byol_tf.data.pipeline import VIEWS, batch_augment_seed
from byol_tf.platform import heap
from byol_tf.training import probe as probe_lib

# probe(representation of view1) -> replica metrics: the online probe's update, bound to the
# batch's labels (see `replica_function`).
ProbeUpdate = Callable[[tf.Tensor], dict[str, tf.Tensor]]


def device_augment(batch: dict, spec: StepSpec, step: tf.Tensor) -> dict:
    """Applies the post-crop ops in the step when `augment.on_device` (tf.data only cropped).

    The seeds are the ones tf.data would use, so both placements give identical views.
    """
    ctx = tf.distribute.get_replica_context()
    replica = ctx.replica_id_in_sync_group if ctx is not None else 0
    out = dict(batch)
    for i, view in enumerate(VIEWS):
        seed = batch_augment_seed(spec.seed, step, replica, i)
        out[view] = augment.augment_batch(batch[view], spec.device_augment[view], seed)
    return out


def replica_function(
    online: keras.Model,
    target: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    spec: StepSpec,
    probe: probe_lib.OnlineProbe | None = None,
) -> Callable:
    """`per_replica(batch, step) -> metrics`: everything one replica computes in a step.

    This is the function XLA compiles (`train.jit_compile`, and TPUs): device augmentation
    when configured, both towers, the loss, the gradients and the optimizer update, and the
    online probe's update when `probe` is given (its metrics: `byol_tf.training.probe.REPLICA_SUMS`).
    """
    global_batch = spec.global_batch_size

    def per_replica(batch, step):
        if spec.device_augment is not None:
            batch = device_augment(batch, spec, step)
        probe_update = None
        if probe is not None:

            def probe_update(representation):
                return probe.replica_update(representation, batch["label"], global_batch)

        if spec.objective == "nt_xent":
            return contrastive_replica_step(
                online,
                optimizer,
                batch["view1"],
                batch["view2"],
                global_batch,
                spec.temperature,
                spec.concat_views,
                probe_update,
            )
        return replica_step(
            online,
            target,
            optimizer,
            batch["view1"],
            batch["view2"],
            global_batch,
            spec.concat_views,
            probe_update,
            spec.backprop_per_view,
        )

    return per_replica


def make_train_function(
    strategy: tf.distribute.Strategy,
    online: keras.Model,
    target: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    spec: StepSpec,
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
    per_replica = replica_function(online, target, optimizer, spec, probe)
    if spec.jit_compile:
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
