"""Keras-style callbacks of the BYOL loop: the EMA target update, encoder export, and logging.

The loop in `byol_tf.training.trainer` calls the standard `keras.callbacks.Callback` hooks with the
global step as `batch`. `TargetEMA` either updates the target after every step call
(`on_train_batch_end`), or, when several steps run inside one `tf.function` call, hands its
`update` to the compiled step so the EMA still follows every optimizer step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from byol_tf.core.update import target_ema
from byol_tf.models import target_pairs
from byol_tf.models.export import export_encoder
from byol_tf.platform import files as io


class TargetEMA(keras.callbacks.Callback):
    """The loop's hook for `byol_tf.core.update.target_ema` over the trainable encoder and
    projector weights.

    tau follows `tau_schedule` ("cosine": from `tau_base` to 1 over `total_steps`; "constant":
    `tau_base` throughout; byol_tf.core.schedules.target_tau).
    """

    def __init__(
        self,
        online: keras.Model,
        target: keras.Model,
        strategy: tf.distribute.Strategy,
        tau_base: float,
        total_steps: int,
        in_step: bool = False,
        tau_schedule: str = "cosine",
    ):
        super().__init__()
        self.pairs = target_pairs(online, target)
        self.tau_schedule = tau_schedule
        self.strategy = strategy
        self.tau_base = float(tau_base)
        self.total_steps = int(total_steps)
        # True: the train function calls `update` itself after each step it runs.
        self.in_step = in_step
        self._compiled = tf.function(self.update)

    def update(self, step: tf.Tensor) -> None:
        """Moves the target one EMA step with tau(step); callable in cross-replica context."""
        target_ema(
            self.pairs, step, self.tau_base, self.total_steps, self.tau_schedule, self.strategy
        )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # `batch` is the global step after the optimizer update; tau uses the step before it.
        if not self.in_step:
            self._compiled(tf.constant(batch - 1, tf.int64))


class EncoderExport(keras.callbacks.Callback):
    """Exports the online encoder every `every_epochs` epochs and, with `at_end`, when training ends.

    With `discard` (non-chief workers) each export goes to a fresh temporary directory that is
    deleted at once: the worker takes part in the save without keeping a copy.
    """

    def __init__(
        self,
        encoder: keras.Model,
        export_dir: str,
        image_size: int,
        every_epochs: int,
        enabled: bool = True,
        discard: bool = False,
        at_end: bool = True,
    ):
        super().__init__()
        self.encoder = encoder
        self.export_dir = export_dir
        self.image_size = image_size
        self.every_epochs = every_epochs
        self.enabled = enabled
        self.discard = discard
        self.at_end = at_end
        self.last_export: str | None = None

    def _export(self, name: str) -> None:
        if not self.discard:
            path = os.path.join(self.export_dir, name)
            self.last_export = export_encoder(self.encoder, path, self.image_size)
            return
        scratch = tempfile.mkdtemp(prefix="byol_worker_export_")
        try:
            export_encoder(self.encoder, os.path.join(scratch, name), self.image_size)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.enabled and self.every_epochs > 0 and (epoch + 1) % self.every_epochs == 0:
            self._export(f"encoder_epoch{epoch + 1:04d}")

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.enabled and self.at_end:
            self._export("encoder")


# Shown on the progress bar when logged (probe_top1: the online linear probe's, byol_tf.training.probe).
_BAR_METRICS = ("loss", "lr", "tau", "collapse_std", "probe_top1")


class MetricsLogger(keras.callbacks.Callback):
    """Progress bar, TensorBoard scalars and `metrics.jsonl`, one record per log step."""

    def __init__(
        self,
        workdir: str,
        total_steps: int,
        steps_per_epoch: int,
        global_batch: int,
        start_step: int = 0,
        enabled: bool = True,
        progress_bar: bool = True,
    ):
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.global_batch = global_batch
        self.enabled = enabled
        self.records: list[dict] = []
        self._last_time = time.perf_counter()
        self._last_step = start_step
        self.images_per_s = float("nan")
        if enabled:
            io.makedirs(workdir)
            # A GFile (bucket workdirs) has no `closed`, so the logger keeps its own.
            self._jsonl = io.open_file(os.path.join(workdir, "metrics.jsonl"), "a")
            self._closed = False
            self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
            self._bar = (
                keras.utils.Progbar(
                    total_steps,
                    stateful_metrics=["epoch", *_BAR_METRICS, "img/s"],
                )
                if progress_bar
                else None
            )
            if self._bar is not None and start_step:
                self._bar.update(start_step)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not logs:
            return
        # Measured over the interval since the previous log step, so it reflects steady state
        # rather than the duration of a single call.
        now = time.perf_counter()
        if batch > self._last_step:
            elapsed = max(now - self._last_time, 1e-9)
            self.images_per_s = (batch - self._last_step) * self.global_batch / elapsed
        self._last_time, self._last_step = now, batch
        if not self.enabled:
            return
        record = self.write(batch, {"images_per_s": self.images_per_s, **logs})
        if self._bar is not None:
            shown = [("epoch", record["epoch"]), ("img/s", self.images_per_s)]
            shown += [(k, record[k]) for k in _BAR_METRICS if k in record]
            self._bar.update(batch, values=shown)

    def write(self, step: int, values: dict) -> dict:
        """Logs `values` at `step` to metrics.jsonl and TensorBoard; returns the record.

        Other callbacks (e.g. the kNN monitor) log through this too, as records of their own.
        """
        record = {"step": int(step), "epoch": step / self.steps_per_epoch}
        record.update({k: float(v) for k, v in values.items()})
        if not self.enabled:
            return record
        self.records.append(record)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        with self._writer.as_default(step=step):
            for key, value in record.items():
                if key != "step" and math.isfinite(value):
                    tf.summary.scalar(key, value)
        return record

    @property
    def closed(self) -> bool:
        return not self.enabled or self._closed

    def close(self) -> None:
        """Closes metrics.jsonl and the TensorBoard writer; the loop calls it however it ends."""
        if not self.closed:
            self._jsonl.close()
            self._writer.close()
            self._closed = True

    def on_train_end(self, logs: dict | None = None) -> None:
        self.close()
