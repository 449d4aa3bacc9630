"""Exporting the online encoder of a run's checkpoint (`byol-export`), rebuilt from the run's
own config so that the architecture matches."""

from __future__ import annotations

import os

import tensorflow as tf

from byol_tf.models import build_towers
from byol_tf.models.export import export_encoder
from byol_tf.platform import files as io
from byol_tf.training.checkpoints import variable_lists
from byol_tf.training.workdir import read_config


def export_from_workdir(
    workdir: str, output: str, checkpoint: str | None = None
) -> tuple[str, int]:
    """Rebuilds the run's towers from `<workdir>/config.json`, restores a checkpoint, exports.

    Returns the export directory and the step of the checkpoint. Runs with a user-supplied
    encoder cannot be rebuilt from the config; export those from Python with
    `export_encoder(trainer.online.encoder, ...)`.
    """
    config_path = os.path.join(workdir, "config.json")
    if not io.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found: is {workdir!r} a byol-tf workdir?")
    config = read_config(workdir)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(workdir, 'checkpoints')}.")
    online, _ = build_towers(config)
    # Only the online tower is needed; the target and optimizer state are skipped.
    tf.train.Checkpoint(**variable_lists(online=online)).restore(path).expect_partial()
    number = int(path.rsplit("-", 1)[-1]) if path.rsplit("-", 1)[-1].isdigit() else -1
    return export_encoder(online.encoder, output, config.data.image_size), number
