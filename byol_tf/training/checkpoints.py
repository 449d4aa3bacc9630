"""Checkpoints of the full training state: online, target, optimizer, step and data position.

The step is the data position: the input pipeline is a deterministic function of (seed, step),
so restoring the step resumes the data exactly where it stopped. Each checkpoint also records
the epoch, the step within it, the steps per epoch and the global batch (`DataPosition`), so a
restore into a run whose data or batch no longer match stops with an error instead of silently
reading other examples.

Atomicity: TensorFlow writes a checkpoint's files first and then rewrites the `checkpoint`
state file (atomically, by rename); a checkpoint counts only once that file lists it. So a
process killed while writing never replaces the last good checkpoint: the next run ignores and
removes the uncommitted files, and skips a listed checkpoint whose files are missing or
corrupt, each with a warning, falling back to the newest one that restores. Any other failure
to read is an error, not damage: a fallback on one worker only would split a multi-worker run
(`byol_tf.distributed.faults.check_restored_steps` checks after each restore that all workers agree).

Optional parts (the online linear probe and its optimizer) are saved when the run has them.
A checkpoint written without them still restores, leaving them at their initial values with
a warning (a run that turned the probe on later); a run without them ignores them.

Only the chief keeps its checkpoints; other workers must take part in the save (collectives)
and write to a temporary directory that is removed at once, as `tf.distribute` recommends.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from byol_tf.platform import files as io

_NUMBERED = re.compile(r"-(\d+)(?:\.index|\.data-\d+-of-\d+|_temp)$")


def variable_lists(**objects) -> dict[str, list[tf.Variable]]:
    """Each model's weights (or optimizer's variables) as an ordered list of TF variables.

    Keras 3 layers kept in Python lists are invisible to `tf.train.Checkpoint`'s object graph
    (their BatchNorm statistics were silently left out), so checkpoints hold explicit lists.
    The order is fixed by the architecture, which the run's config rebuilds identically.
    """
    out = {}
    for name, obj in objects.items():
        variables = obj.variables if hasattr(obj, "apply") else obj.weights
        out[name] = [v.value if hasattr(v, "path") else v for v in variables]
    return out


class DataPosition(tf.Module):
    """Where the input pipeline stands, saved in every checkpoint and checked on restore.

    `step` is the train loop's own step counter: the compiled step increments it, and the data
    position, the schedules (learning rate, tau), the logs and the resume point all read it.
    The optimizer's `iterations` is not used for any of these: under float16 a loss-scaling
    optimizer does not count the steps it skips (non-finite gradients). Create it inside the
    strategy's scope, so the compiled step can update it on every replica.
    """

    def __init__(self, steps_per_epoch: int, global_batch_size: int):
        super().__init__(name="data_position")
        self.steps_per_epoch_now = int(steps_per_epoch)
        self.global_batch_size_now = int(global_batch_size)

        def counter(name):
            return tf.Variable(0, dtype=tf.int64, trainable=False, name=name)

        self.step = counter("step")
        self.epoch = counter("epoch")
        self.step_in_epoch = counter("step_in_epoch")
        self.steps_per_epoch = counter("steps_per_epoch")
        self.global_batch_size = counter("global_batch_size")

    def record(self, step: int) -> None:
        epoch, in_epoch = divmod(int(step), self.steps_per_epoch_now)
        for var, value in (
            (self.step, step),
            (self.epoch, epoch),
            (self.step_in_epoch, in_epoch),
            (self.steps_per_epoch, self.steps_per_epoch_now),
            (self.global_batch_size, self.global_batch_size_now),
        ):
            var.assign(value)

    def check(self, path: str, optimizer_updates: int) -> None:
        """Raises ValueError if the restored position cannot be the same data in this run."""
        saved = {
            "steps_per_epoch": int(self.steps_per_epoch.numpy()),
            "global_batch_size": int(self.global_batch_size.numpy()),
        }
        now = {
            "steps_per_epoch": self.steps_per_epoch_now,
            "global_batch_size": self.global_batch_size_now,
        }
        if saved != now:
            raise ValueError(
                f"Checkpoint {path} was written with {saved}, but this run has {now}: the "
                "data or the batch size changed, so its data position (epoch "
                f"{int(self.epoch.numpy())}, step {int(self.step_in_epoch.numpy())} of the epoch) "
                "would point at other examples. Restore the original data and batch size, or "
                "start a new workdir."
            )
        step = int(self.step.numpy())
        # Equal unless float16 loss scaling skipped some updates; never more updates than steps.
        if optimizer_updates > step:
            raise ValueError(
                f"Checkpoint {path} is inconsistent: data position step {step}, but "
                f"{optimizer_updates} optimizer updates. It was not written by byol-tf; start a "
                "new workdir."
            )


class Checkpointer:
    """Saves and restores the training state in `directory` (see the module docstring)."""

    def __init__(
        self,
        directory: str,
        max_to_keep: int,
        is_chief: bool = True,
        position: DataPosition | None = None,
        optional: tuple[str, ...] = (),
        **objects,
    ):
        """`objects` are saved by name; those named in `optional` may be absent on restore."""
        self.directory = directory
        self.is_chief = is_chief
        self.position = position
        tracked = variable_lists(**objects)
        if position is not None:
            tracked["data_position"] = position
        self._tracked = tracked
        self.optional = tuple(optional)
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)
            if is_chief
            else None
        )
        self._latest: str | None = None

    @property
    def latest(self) -> str | None:
        """The newest checkpoint in `directory` that this run restored or saved."""
        return self._latest

    @property
    def latest_step(self) -> int | None:
        """Step of the newest checkpoint this run saved or found, None if there is none."""
        return None if self.latest is None else _number(self.latest)

    def committed(self) -> list[str] | None:
        """Checkpoints listed in the directory's state file, newest first; None if unreadable."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception as e:  # noqa: BLE001  (a damaged state file must not stop a resume)
            logging.warning("Cannot read the checkpoint list in %s (%s).", self.directory, e)
            return None
        if state is None:
            if io.exists(os.path.join(self.directory, "checkpoint")):
                # TF logs a parse error and returns None for a damaged state file.
                logging.warning("Cannot read the checkpoint list in %s.", self.directory)
                return None
            return []
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        paths = [
            p if os.path.isabs(p) or io.is_remote(p) else os.path.join(self.directory, p)
            for p in paths
        ]
        return sorted(set(paths), key=_number, reverse=True)

    def _drop_uncommitted(self, committed: list[str]) -> None:
        """Warns about (and, on the chief, removes) files of checkpoints that were never listed."""
        keep = {os.path.basename(p) for p in committed}
        stray = {}
        for path in io.list_matching(self.directory, "*"):
            name = os.path.basename(path)
            match = _NUMBERED.search(name)
            if match and name[: match.start()] + f"-{match.group(1)}" not in keep:
                stray.setdefault(int(match.group(1)), []).append(path)
        for number, paths in sorted(stray.items()):
            logging.warning(
                "Ignoring checkpoint %d in %s: it was not committed (the run stopped while "
                "writing it)%s.",
                number,
                self.directory,
                "; removing its files" if self.is_chief else "",
            )
            if self.is_chief:
                for path in paths:
                    io.remove(path)

    def restore(self) -> str | None:
        """Restores the newest intact committed checkpoint; returns its path or None.

        Checkpoints whose files are missing or damaged are skipped with a warning; one that is
        complete but cannot be read now (filesystem, permissions) is a `CheckpointReadError`. A
        checkpoint that does not match the model (another architecture) is an error.
        """
        committed = self.committed()
        if committed is None:
            # Without the list every checkpoint is a candidate, newest first; none is removed.
            indexes = io.list_matching(self.directory, "*.index")
            committed = sorted((p[: -len(".index")] for p in indexes), key=_number, reverse=True)
        elif io.isdir(self.directory):
            self._drop_uncommitted(committed)
        for path in committed:
            damage = _damage(path)
            if damage:
                logging.warning("Skipping checkpoint %s: %s; trying an older one.", path, damage)
                continue
            try:
                self._checkpoint_for(path).restore(path).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as e:
                raise ValueError(
                    f"Checkpoint {path} does not match the model built from this config ({e}). "
                    "Use the config the workdir was trained with, or a new workdir."
                ) from e
            logging.info("Restored %s", path)
            self._latest = path
            return path
        if committed:
            logging.warning(
                "No intact checkpoint in %s (%d damaged); starting from scratch.",
                self.directory,
                len(committed),
            )
        return None

    def _checkpoint_for(self, path: str) -> tf.train.Checkpoint:
        """The checkpoint object to restore `path` with: without the optional parts it lacks."""
        if not self.optional:
            return self.checkpoint
        saved = {
            key.split("/", 1)[0]
            for key in tf.train.load_checkpoint(path).get_variable_to_shape_map()
        }
        absent = [name for name in self.optional if name not in saved]
        if not absent:
            return self.checkpoint
        logging.warning(
            "Checkpoint %s has no %s (written by a run without them); they start from their "
            "initial values.",
            path,
            ", ".join(absent),
        )
        return tf.train.Checkpoint(**{k: v for k, v in self._tracked.items() if k not in absent})

    def save(self, step: int) -> str:
        if self.position is not None:
            self.position.record(step)
        if self.is_chief:
            self._latest = self.manager.save(checkpoint_number=step)
            return self._latest
        # Other workers write the same checkpoint to a fresh temporary directory and drop it.
        scratch = tempfile.mkdtemp(prefix="byol_worker_ckpt_")
        try:
            self.checkpoint.write(os.path.join(scratch, f"ckpt-{step}"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._latest = os.path.join(self.directory, f"ckpt-{step}")
        return self._latest


def _number(path: str) -> int:
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


# Read failures that describe the files themselves. Anything else (an unavailable filesystem,
# permissions, a timeout) says nothing about the checkpoint and may differ between workers.
_DAMAGE_ERRORS = (
    IndexError,  # the reader's short read: a data file cut short
    tf.errors.NotFoundError,
    tf.errors.DataLossError,
    tf.errors.OutOfRangeError,
    tf.errors.InvalidArgumentError,
)
_DAMAGE_WORDS = ("checksum", "sstable", "corrupt", "truncated", "magic", "data loss")


class CheckpointReadError(OSError):
    """A checkpoint that looks complete could not be read by this process."""


def _is_damage(error: Exception) -> bool:
    if isinstance(error, _DAMAGE_ERRORS):
        return True
    # TF reports checksum and format errors of a bundle with the generic UNKNOWN code.
    return type(error) in (tf.errors.OpError, tf.errors.UnknownError) and any(
        word in str(error).lower() for word in _DAMAGE_WORDS
    )


def _damage(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be restored (missing or damaged files), or None.

    Every tensor is read once, which checks each file's length and checksums: a file that was
    cut short or overwritten fails here rather than half-way through a restore. Only such
    damage counts: any other failure to read (e.g. the filesystem is unavailable) raises
    `CheckpointReadError`, since falling back on one worker only would make the workers of a
    run resume from different checkpoints.
    """
    index = path + ".index"
    if not io.exists(index):
        return f"{os.path.basename(index)} is missing (incomplete write?)"
    shards = io.list_matching(os.path.dirname(path), os.path.basename(path) + ".data-*-of-*")
    total = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
    expected = [f"{path}.data-{i:05d}-of-{total:05d}" for i in range(total)]
    missing = [os.path.basename(p) for p in expected if not io.exists(p)]
    if missing:
        return f"{', '.join(missing)} missing (incomplete write?)"
    try:
        # The prefix itself: load_checkpoint would take a prefix that looks like a directory
        # (ram:// treats any name prefix as one) for a directory.
        reader = tf.compat.v1.train.NewCheckpointReader(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001  (sorted below: damage or not)
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        if not _is_damage(e):
            raise CheckpointReadError(
                f"Cannot read checkpoint {path} ({type(e).__name__}: {first}), though its files "
                "are all there. This does not look like a damaged checkpoint, so the run does "
                "not fall back to an older one (other workers may read this one). Check that "
                f"{os.path.dirname(path)} is reachable and readable from this machine, then "
                "relaunch."
            ) from e
        return f"it cannot be read ({first})"
    return None
