"""The BYOL training loop: builds everything a run needs and drives the compiled step.

`Trainer` owns one run in one workdir: the strategy, the online and target towers, LARS with
its schedule, the optional online linear probe, the callbacks (EMA, export, logging),
checkpoints, and the end-of-run summary.
`train_and_evaluate(config, workdir)` is what `tools/train.py` calls.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from byol_tf import config as config_lib
from byol_tf import data as data_lib
from byol_tf.core.lars import build_optimizer
from byol_tf.core.schedules import (
    AtLoopStep,
    build_lr_schedule,
    build_predictor_lr_schedule,
    target_tau,
)
from byol_tf.core.update import StepSpec
from byol_tf.data.pipeline import VIEWS
from byol_tf.distributed import faults
from byol_tf.distributed import strategies as distribute
from byol_tf.evaluation import knn
from byol_tf.models import (
    build_towers,
    copy_online_to_target,
    fresh_encoder_like,
    init_from_batchnorm,
)
from byol_tf.models.bn_stats import batchnorm_layers, estimate_batchnorm_statistics
from byol_tf.platform import cpu
from byol_tf.platform.files import atomic_write_json, read_json
from byol_tf.training import probe as probe_lib
from byol_tf.training import workdir as workdir_lib
from byol_tf.training.callbacks import EncoderExport, MetricsLogger, TargetEMA
from byol_tf.training.checkpoints import Checkpointer, DataPosition
from byol_tf.training.monitor import KnnMonitor
from byol_tf.training.step import compile_train_function, make_train_function

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


_ONEDNN_STATE = {True: "on", False: "off", None: "unknown"}


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step and the last good checkpoint."""


def steps_in_call(
    step: int, end: int, steps_per_call: int, steps_per_epoch: int, every_epochs=()
) -> int:
    """How many steps the next compiled call runs, from `step`.

    `train.steps_per_call`, cut at `end` and at the next epoch boundary where an every-N-epochs
    callback is due (N in `every_epochs`; 0 is off), so the kNN monitor and the periodic export
    see the weights of the epoch they are labelled with even when a call spans epochs.
    """
    n = min(steps_per_call, end - step)
    for every in every_epochs:
        if every > 0:
            period = every * steps_per_epoch
            n = min(n, (step // period + 1) * period - step)
    return n


def _set_process_state(config: ml_collections.ConfigDict) -> None:
    """What a run sets for the whole process: op determinism, the seed, the precision."""
    if config.train.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(_POLICIES[config.train.precision])


def _warn_of_faulty_kernels(online: keras.Model) -> None:
    """Names the layers whose gradient this CPU's oneDNN kernels are known to get wrong."""
    faulty = cpu.onednn_faulty_convolutions(online, cpu.onednn_isa(), cpu.onednn_enabled())
    if faulty:
        logging.warning(
            "oneDNN's AVX2 kernels compute the kernel gradient of a 1x1 strided convolution "
            "with fewer than 8 input channels wrongly (docs/performance.md); %s are such "
            "layers. Widen them (model.base_width >= 8) or run TF's Eigen kernels "
            "(TF_ENABLE_ONEDNN_OPTS=0).",
            ", ".join(faulty),
        )


@dataclasses.dataclass
class _Progress:
    """Where one call of `Trainer.fit` has got to, and what it measured on the way."""

    step: int
    probe_last: dict
    last_loss: float = float("nan")
    collapse: float = float("nan")
    timed_steps: int = 0
    timed_seconds: float = 0.0
    preempted: bool = False
    stopped_early: bool = False
    nonfinite_loss_step: int | None = None


class Trainer:
    """One BYOL pretraining run.

    Args:
      config: a ConfigDict from `byol_tf.config.base_config()` or a file in `configs/`.
      workdir: where checkpoints, logs, exports and `summary.json` go; a run restarted with
        the same workdir resumes from its latest checkpoint.
      source: the training data: a `Source`, or a finite `tf.data.Dataset` of images, of
        (image, label) pairs or of dicts with "image" (`byol_tf.data.from_dataset`); by
        default `config.data.train` is loaded.
      encoder: optional `keras.Model` to use instead of the configured ResNet.
      hidden_layer: with `encoder`, the layer whose output is the representation.
      strategy: optional strategy; by default built from `config.train.strategy`.
      overwrite: continue in a workdir whose `config.json` differs from `config` (see
        `byol_tf.training.workdir`); without it that is an error naming the differing fields.
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: str,
        source: data_lib.Source | tf.data.Dataset | None = None,
        encoder: keras.Model | None = None,
        hidden_layer: str | None = None,
        strategy: tf.distribute.Strategy | None = None,
        overwrite: bool = False,
    ):
        config_lib.validate(config)
        if config.model.remat and config.train.jit_compile:
            logging.warning(
                "model.remat under train.jit_compile: XLA schedules the step itself, and on CPU "
                "it compiled the recomputation away (no memory saved; docs/performance.md)."
            )
        _set_process_state(config)
        # Before any other TensorFlow op: multi_worker configures collectives at startup.
        self.strategy = strategy or distribute.make_strategy(config)
        distribute.check_global_batch(config.data.global_batch_size, self.strategy)
        self.is_chief = distribute.is_chief(self.strategy)
        if isinstance(source, tf.data.Dataset):
            source = data_lib.from_dataset(source, config)
        self.source = source or data_lib.load_source(config.data.train, config)
        if not config.data.mean:
            # Computed before the workdir check: a resumed run computes the same values again.
            config.data.mean, config.data.std = data_lib.channel_statistics(self.source, config)
            logging.info(
                "Input statistics of %s: mean %s, std %s.",
                self.source.spec,
                config.data.mean,
                config.data.std,
            )
        # Every worker checks, so that all of them stop on a mismatch (not only the chief).
        accepted = workdir_lib.check_config(workdir, config, overwrite)
        self.config = config
        self.workdir = workdir
        self.steps = config_lib.derive_steps(config, self.source.num_examples)
        self.user_encoder = encoder
        # Checked before anything is built: an unlabelled source cannot train the probe.
        num_classes = (
            data_lib.require_labels(
                self.source,
                "eval.online_probe=True (--config.eval.online_probe=false trains without it)",
                "training",
            )
            if config.eval.online_probe
            else None
        )

        with self.strategy.scope():
            self.online, self.target = build_towers(
                config, encoder=encoder, hidden_layer=hidden_layer
            )
            if config.model.norm == "bn_free_init":
                self._bn_free_init(encoder)
            # Holds the loop's step counter (see DataPosition), which the optimizer's learning
            # rate reads; in the scope, so the compiled step updates it on every replica.
            self.position = DataPosition(
                self.steps["steps_per_epoch"], config.data.global_batch_size
            )
            self.lr_schedule = build_lr_schedule(config, self.steps)
            self.optimizer = self._build_optimizer()
            # Built after everything else, so the towers' initial weights do not depend on it.
            self.probe = (
                probe_lib.build_probe(
                    config, num_classes, self.online.encoder, self.steps["total_steps"]
                )
                if num_classes is not None
                else None
            )
        _warn_of_faulty_kernels(self.online)
        self.checkpointer = self._build_checkpointer()
        # The NT-Xent baseline has no target: the tower exists (checkpoints and tools keep one
        # layout) but is never run, and the EMA is off.
        self.uses_target = config.objective.name == "byol"
        self.ema = TargetEMA(
            self.online,
            self.target,
            self.strategy,
            config.ema.tau_base,
            self.steps["total_steps"],
            in_step=config.train.steps_per_call > 1,
            tau_schedule=config.ema.tau_schedule,
        )
        # Other workers export too (saving may need their collectives), to a temporary
        # directory that is removed after each export, as tf.distribute recommends.
        self.exporter = EncoderExport(
            self.online.encoder,
            os.path.join(workdir, "export"),
            config.data.image_size,
            config.export.every_epochs,
            discard=not self.is_chief,
            at_end=config.export.at_end,
        )
        self._train_fn = None
        if self.is_chief:
            # The record of the run; tools/export_encoder.py rebuilds the towers from it.
            archive = any(k not in workdir_lib.MAY_DIFFER_ON_RESUME for k in accepted)
            workdir_lib.save_config(workdir, config, archive_previous=archive)

    def _build_optimizer(self) -> keras.optimizers.Optimizer:
        """LARS on the loop's step (the predictor on its own schedule when configured), with
        float16 loss scaling; built here, in the strategy's scope, so its slots exist before
        the first step."""
        c = self.config
        predictor_schedule = build_predictor_lr_schedule(c, self.steps)
        optimizer = build_optimizer(
            c,
            AtLoopStep(self.lr_schedule, self.position.step),
            predictor_learning_rate=(
                AtLoopStep(predictor_schedule, self.position.step)
                if predictor_schedule is not None
                else None
            ),
        )
        if c.train.precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(
                optimizer, initial_scale=c.train.fp16_initial_loss_scale
            )
        optimizer.build(self.online.trainable_variables)
        return optimizer

    def _build_checkpointer(self) -> Checkpointer:
        """What a checkpoint holds: the data position, both towers, the optimizer, and the
        online probe when there is one (optional, so runs with and without it restore)."""
        probe_parts = (
            {"probe": self.probe.head, "probe_optimizer": self.probe.optimizer}
            if self.probe is not None
            else {}
        )
        return Checkpointer(
            os.path.join(self.workdir, "checkpoints"),
            self.config.checkpoint.max_to_keep,
            is_chief=self.is_chief,
            position=self.position,
            online=self.online,
            target=self.target,
            optimizer=self.optimizer,
            optional=tuple(probe_parts),
            **probe_parts,
        )

    def _bn_free_init(self, encoder: keras.Model | None) -> None:
        """Richemond et al.'s BN-free start: affine params from one BN pass on augmented data."""
        if encoder is not None:
            raise ValueError(
                "model.norm='bn_free_init' initialises the configured ResNet, not your own "
                "encoder: leave `encoder=` out, or pass an encoder you transformed yourself "
                "(byol_tf.models.remove_batchnorm works on byol_tf ResNets) with model.norm='batch'."
            )
        # The same batch on every worker (see bn_free_init_batch): all start from equal weights.
        init_from_batchnorm(
            self.online.encoder, data_lib.bn_free_init_batch(self.source, self.config)
        )
        copy_online_to_target(self.online, self.target)

    @property
    def step(self) -> int:
        """The loop's step (updates skipped by float16 loss scaling count too)."""
        return int(self.position.step.numpy())

    def _dataset(self, start_step: int):
        def dataset_fn(input_context):
            return data_lib.pretrain_dataset(self.source, self.config, input_context, start_step)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _callbacks(
        self, start: int, extra: list[keras.callbacks.Callback]
    ) -> tuple[MetricsLogger, list[keras.callbacks.Callback]]:
        """The run's logger, and every callback in the order they run: the EMA, the logger,
        the kNN monitor, the export, then the user's (given the model and params, as
        `keras.Model.fit` does)."""
        c, spe = self.config, self.steps["steps_per_epoch"]
        logger = MetricsLogger(
            self.workdir,
            self.steps["total_steps"],
            spe,
            c.data.global_batch_size,
            start,
            enabled=self.is_chief,
            progress_bar=c.train.progress_bar,
        )
        monitors = []
        if c.eval.knn_every_epochs > 0:
            monitors.append(
                KnnMonitor(self.online.encoder, c, spe, logger.write, enabled=self.is_chief)
            )
        self.online.stop_training = False
        params = {"epochs": math.ceil(self.steps["total_steps"] / spe), "steps": spe, "verbose": 0}
        for cb in extra:
            cb.set_model(self.online)
            cb.set_params(params)
        ema = [self.ema] if self.uses_target else []
        return logger, [*ema, logger, *monitors, self.exporter, *extra]

    def _logs(self, step: int, loss: float, collapse: float, probe: dict) -> dict:
        """The values logged after `step` steps: the last loss, the rates it used, collapse."""
        c = self.config
        logs = {"loss": loss, "lr": float(self.lr_schedule(step - 1))}
        if self.uses_target:
            logs["tau"] = float(
                target_tau(step - 1, c.ema.tau_base, self.steps["total_steps"], c.ema.tau_schedule)
            )
        return {**logs, "collapse_std": collapse, **probe}

    def describe(self) -> str:
        """What this run will do, in the words a user checks first: devices, batch, schedule."""
        c, steps = self.config, self.steps
        try:
            names = self.strategy.extended.worker_devices
        except RuntimeError:  # the default strategy: TF's default device
            names = [
                (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices())[0].name
            ]
        devices = sorted({d.split("/")[-1].replace("device:", "") for d in names})
        replicas = self.strategy.num_replicas_in_sync
        per_replica = c.data.global_batch_size // replicas
        peak_lr = c.optimizer.base_lr * c.data.global_batch_size / 256  # the schedule's peak
        isa = cpu.vector_isa()
        return (
            f"byol-tf: {type(self.strategy).__name__.lstrip('_')}, {replicas} replica(s) on "
            f"{', '.join(devices)} ({distribute.num_workers(self.strategy)} worker(s)); CPU "
            f"vector ISA {isa}, oneDNN {_ONEDNN_STATE[cpu.onednn_enabled()]}.\n"
            f"Global batch {c.data.global_batch_size} ({per_replica} per replica), "
            f"{steps['total_steps']} steps of which {steps['warmup_steps']} warm-up "
            f"({steps['steps_per_epoch']} per epoch over {self.source.num_examples} images), "
            f"peak learning rate {peak_lr:.4g} (base {c.optimizer.base_lr:g} x batch / 256), "
            f"{c.train.precision}."
        )

    def fit(
        self, stop_at_step: int | None = None, callbacks: list[keras.callbacks.Callback] = ()
    ) -> dict:
        """Trains to the end of the schedule (or `stop_at_step`) and returns the summary.

        `callbacks` are extra Keras callbacks. As in `keras.Model.fit`, each gets `set_model`
        (the online network) and `set_params` before training, the global step as `batch`,
        the logged values (`loss`, `lr`, `tau`, `collapse_std`) at every logged step and every
        epoch's end, and may stop training by setting `self.model.stop_training = True`: the
        loop then saves a checkpoint at that step, ends training as at the end of the schedule
        (the export included) and returns with `stopped_early=True`. Under `multi_worker`,
        every worker's callbacks must decide alike (from the logged loss, which is global).

        A non-finite loss raises `NonFiniteLossError` naming the step and the last good
        checkpoint, unless one of `callbacks` (Keras's `TerminateOnNaN`) stops training when it
        sees that loss: then nothing is saved or exported, the callbacks' `on_train_end` runs,
        and the summary has `stopped_early=True` and `nonfinite_loss_step`.

        Resumes from the workdir's latest intact checkpoint. SIGTERM (to any worker) saves a
        checkpoint on every worker at the same step and returns with `preempted=True`; rerunning
        the same command resumes from it. If another worker dies, raises
        `faults.WorkerFailureError` naming the checkpoint to resume from (a lost tf.data
        service: `DispatcherUnavailableError`, naming its address); if the workers
        restored different steps, `faults.CheckpointMismatchError` naming them.
        """
        c = self.config
        restored = self._restore()
        start = self.step
        end = self.steps["total_steps"] if stop_at_step is None else stop_at_step
        end = min(end, self.steps["total_steps"])
        user = list(callbacks)
        logger, callbacks = self._callbacks(start, user)
        self._build_train_function()
        if self.is_chief and start < end:
            print(self.describe(), flush=True)
        iterator = iter(self._dataset(start))
        control = faults.RunControl(
            self.strategy,
            c.checkpoint.every_steps,
            c.checkpoint.every_minutes,
            is_chief=self.is_chief,
        )
        run = _Progress(step=start, probe_last=self._no_probe_values())
        try:
            control.start()
            for cb in callbacks:
                cb.on_train_begin()
            if start < end:
                compile_train_function(self._train_fn, iterator)
            self._loop(iterator, run, end, callbacks, user, control)
            self._end_training(run, start, restored, callbacks, user)
        except faults.PEER_FAILURE_ERRORS as e:
            clear = faults.explain_failure(
                e,
                self.checkpointer.latest,
                distribute.num_workers(self.strategy),
                c.data.service_address,
            )
            if clear is None:
                raise
            raise clear from e
        finally:
            control.close()
            logger.close()  # also when training raises: metrics.jsonl stays whole and closed
        return self._summary(run, logger)

    def _restore(self) -> str | None:
        """Restores the workdir's latest checkpoint into a fresh trainer (one that has already
        trained keeps its state), and checks that every worker restored the same step."""
        restored = self.checkpointer.restore() if self.step == 0 else None
        if restored is not None:
            self.position.check(restored, int(self.optimizer.iterations.numpy()))
        if distribute.num_workers(self.strategy) > 1:
            faults.check_restored_steps(
                faults.restored_steps(self.strategy, self.step), self.checkpointer.directory
            )
        return restored

    def _build_train_function(self) -> None:
        if self._train_fn is None:
            self._train_fn = make_train_function(
                self.strategy,
                self.online,
                self.target,
                self.optimizer,
                StepSpec.from_config(self.config),
                self.ema.update if (self.uses_target and self.ema.in_step) else None,
                self.probe,
                step_counter=self.position.step,
            )

    def _no_probe_values(self) -> dict:
        return dict.fromkeys(probe_lib.METRICS, float("nan")) if self.probe else {}

    def _loop(
        self,
        iterator,
        run: _Progress,
        end: int,
        callbacks: list[keras.callbacks.Callback],
        user: list[keras.callbacks.Callback],
        control: faults.RunControl,
    ) -> None:
        """Runs compiled calls from `run.step` to `end`, calling the callbacks after each, until
        the end, a preemption, a callback's stop, or a non-finite loss."""
        c, spe = self.config, self.steps["steps_per_epoch"]
        log_every = max(1, c.train.log_every_steps)
        due = (c.eval.knn_every_epochs, c.export.every_epochs)
        first = run.step
        while run.step < end:
            n = steps_in_call(run.step, end, c.train.steps_per_call, spe, due)
            t0 = time.perf_counter()
            losses, last_t = self._train_fn(iterator, tf.constant(n))
            losses = losses.numpy()
            if run.step > first:  # the first call still pays one-off costs (kernels, XLA)
                run.timed_steps += n
                run.timed_seconds += time.perf_counter() - t0
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                self._nonfinite_loss(run, run.step + int(bad[0]) + 1, losses[bad[0]], user)
                return
            prev, run.step = run.step, run.step + n
            run.last_loss, run.collapse = float(losses[-1]), float(last_t["collapse_std"])
            run.probe_last = {k: float(last_t[k]) for k in run.probe_last}
            logs = None
            # Logged at every N-th step, at epoch ends (Keras's EarlyStopping reads the epoch's
            # logs) and at the end.
            crossed = (log_every, spe)
            if run.step == end or any(run.step // k > prev // k for k in crossed):
                logs = self._logs(run.step, run.last_loss, run.collapse, run.probe_last)
            for cb in callbacks:
                cb.on_train_batch_end(run.step, logs)
            for epoch in range(prev // spe, run.step // spe):
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
            decision = control.decide(prev, run.step)
            if decision.save:
                self.checkpointer.save(run.step)
                control.saved()
            if decision.stop:
                run.preempted = True
                return
            if self.online.stop_training:
                run.stopped_early = True
                return

    def _nonfinite_loss(
        self, run: _Progress, step: int, loss: float, user: list[keras.callbacks.Callback]
    ) -> None:
        """The user's callbacks see the non-finite loss and may stop training gracefully (as
        Keras's TerminateOnNaN does); otherwise the run stops with `NonFiniteLossError`."""
        for cb in user:
            cb.on_train_batch_end(step, {"loss": float(loss)})
        if not self.online.stop_training:
            raise NonFiniteLossError(
                f"Loss is {loss} at step {step}. Training stopped; the last good checkpoint is "
                f"{self.checkpointer.latest or 'none (no checkpoint yet)'}. "
                "Lower optimizer.base_lr or check the input data."
            )
        run.nonfinite_loss_step, run.last_loss, run.stopped_early = step, float(loss), True

    def _end_training(
        self,
        run: _Progress,
        start: int,
        restored: str | None,
        callbacks: list[keras.callbacks.Callback],
        user: list[keras.callbacks.Callback],
    ) -> None:
        """Saves the last step, then ends training as the way it stopped asks: a preemption
        only says how to resume; the end of the schedule or a callback's stop runs every
        callback's `on_train_end` (the export among them); a non-finite loss saves nothing and
        ends only the user's callbacks."""
        if run.nonfinite_loss_step is not None:
            for cb in user:
                cb.on_train_end()
            return
        if (run.step > start or restored is None) and self.checkpointer.latest_step != run.step:
            self.checkpointer.save(run.step)
        if run.preempted:
            print(
                f"Preempted at step {run.step}: checkpoint saved. Rerun the same command to resume."
            )
        elif run.step >= self.steps["total_steps"] or run.stopped_early:
            for cb in callbacks:
                cb.on_train_end()

    def _summary(self, run: _Progress, logger: MetricsLogger) -> dict:
        images_per_s = (
            run.timed_steps * self.config.data.global_batch_size / run.timed_seconds
            if run.timed_seconds
            else logger.images_per_s
        )
        nonfinite = (
            {"nonfinite_loss_step": run.nonfinite_loss_step}
            if run.nonfinite_loss_step is not None
            else {}
        )
        return {
            "steps": run.step,
            "epochs": run.step / self.steps["steps_per_epoch"],
            "final_loss": run.last_loss,
            "collapse_std": run.collapse,
            "images_per_s": images_per_s,
            "skipped_images": int(self.source.skipped),
            "export_dir": self.exporter.last_export,
            "preempted": run.preempted,
            "stopped_early": run.stopped_early,
            **nonfinite,
            **run.probe_last,  # the online probe's last values, when it is on
        }

    def evaluate_knn(self) -> dict:
        """kNN top-1 of the learned encoder and of a random network of the same architecture.

        The random network is built as the trained one started: with `ema.tau_base` = 1 it is
        the target encoder itself, the frozen random network the online one learned to predict
        (the "random network" row of the paper's fixed-target experiment; its BatchNorm moving
        statistics come from its training-mode forward passes). Otherwise it is a fresh
        encoder, given the same data-dependent start as the trained one under
        `model.norm="bn_free_init"`.

        A fresh encoder with BatchNorm is measured twice. `knn_top1_random` gives it what the
        learned encoder has, moving statistics estimated on `eval.random_bn_batches` batches of
        training views (weights untouched; `models.bn_stats`). `knn_top1_random_init_stats`
        keeps Keras's placeholder statistics (mean 0, variance 1), which make each BatchNorm
        the identity in inference mode.
        """
        c = self.config
        if not (c.eval.knn_train and c.eval.knn_test):
            return {}
        train_src = data_lib.load_source(c.eval.knn_train, c)
        test_src = data_lib.load_source(c.eval.knn_test, c)

        def top1(encoder) -> float:
            return knn.evaluate_knn(encoder, train_src, test_src, c)["top1"]

        results = {"knn_top1_learned": top1(self.online.encoder)}
        if c.ema.tau_base == 1.0:
            results["knn_top1_random"] = top1(self.target.encoder)
            return results
        keras.utils.set_random_seed(c.seed + 1)
        random_encoder = fresh_encoder_like(c, self.online.encoder, self.user_encoder)
        views = data_lib.pretrain_dataset(self.source, c).take(c.eval.random_bn_batches)
        random_encoder(next(iter(views))["view1"], training=False)  # builds its variables
        if c.model.norm == "bn_free_init":
            init_from_batchnorm(random_encoder, data_lib.bn_free_init_batch(self.source, c))
        if batchnorm_layers(random_encoder):
            results["knn_top1_random_init_stats"] = top1(random_encoder)
            estimate_batchnorm_statistics(
                random_encoder, (batch[view] for batch in views for view in VIEWS)
            )
        results["knn_top1_random"] = top1(random_encoder)
        return results


# Measured on the last trained step: a call of `fit` that trains no step has none of its own.
_LAST_STEP_FIELDS = ("final_loss", "collapse_std", "images_per_s")


def keep_previous_measurements(workdir: str, summary: dict) -> dict:
    """`summary`, with the last-step fields of the workdir's summary when it trained no step.

    Rerunning a finished run trains nothing, so its loss and collapse indicator are NaN; the
    summary it replaces holds the real ones, measured at the same step.
    """
    previous = read_json(os.path.join(workdir, "summary.json"))
    if not previous or previous.get("steps") != summary["steps"]:
        return summary
    kept = {
        k: previous[k]
        for k in _LAST_STEP_FIELDS
        if previous.get(k) is not None and not math.isfinite(summary.get(k, math.nan))
    }
    return {**summary, **kept}


def write_summary(workdir: str, summary: dict) -> str:
    """Writes `summary.json` atomically (the experiment runner takes it as "finished")."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in summary.items()
    }
    return atomic_write_json(os.path.join(workdir, "summary.json"), clean)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False
) -> dict:
    """Pretrains, exports, runs the kNN check when configured, and writes `summary.json`.

    `overwrite`: continue in a workdir whose saved config differs (see `Trainer`).
    """
    trainer = Trainer(config, workdir, overwrite=overwrite)
    summary = trainer.fit()
    if trainer.is_chief:
        summary = keep_previous_measurements(workdir, summary)
    # Only the chief reports; the kNN check is a pure evaluation, other workers skip it.
    if not summary["preempted"] and trainer.is_chief:
        summary.update(trainer.evaluate_knn())
    if trainer.is_chief:
        summary["machine"] = cpu.machine()  # CPU class and oneDNN decide the speed
        summary["summary_path"] = write_summary(workdir, summary)
    return summary
