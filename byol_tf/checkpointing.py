"""Checkpoints of the full training state: online, target, optimizer and step.

The step is also the data position: the input pipeline is a deterministic function of
(seed, step), so restoring the step resumes the data exactly where it stopped. Only the chief
keeps its checkpoints; other workers must take part in the save (collectives) and write to a
temporary directory that is removed at once, as `tf.distribute` recommends.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging


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


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int, is_chief: bool = True, **objects):
        self.directory = directory
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**variable_lists(**objects))
        save_dir = directory if is_chief else tempfile.mkdtemp(prefix="byol_worker_ckpt_")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, save_dir, max_to_keep=max_to_keep
        )

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> str | None:
        """Restores the newest checkpoint of the chief's directory; returns its path or None."""
        path = tf.train.latest_checkpoint(self.directory)
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        logging.info("Restored %s", path)
        return path

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        return path
