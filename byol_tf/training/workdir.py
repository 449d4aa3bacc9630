"""The run's record in its workdir: `config.json`, and the check that a restart is the same run.

Restarting in a workdir resumes its run, so the config must be the one the run was started
with: `check_config` compares it with `config.json` and raises `ConfigMismatchError` naming
every differing field, unless `overwrite=True`. Fields in `MAY_DIFFER_ON_RESUME` change neither
what is trained nor the order of the data, so they may differ without `overwrite`: how progress
is shown and logged, how often checkpoints are written and kept, input-pipeline parallelism
(which never changes the order, as the pipeline is deterministic), where the TPU or the tf.data
service dispatcher is found, and the multi-worker failure timeouts. A field that the saved
config lacks because it was added to byol-tf after the run started (e.g. `eval.online_probe`)
does not count when its value is the default, which keeps the old behaviour.

With `overwrite=True` the new config replaces `config.json` (the old one is kept as
`config.json.<n>`) and the run resumes from the workdir's checkpoint with it; nothing else is
deleted. To start over, use a new workdir.
"""

from __future__ import annotations

import json
import os

import ml_collections

from byol_tf.config import base_config
from byol_tf.platform import files as io

CONFIG_FILE = "config.json"

MAY_DIFFER_ON_RESUME = (
    "train.progress_bar",
    "train.log_every_steps",
    "checkpoint.every_steps",
    "checkpoint.every_minutes",
    "checkpoint.max_to_keep",
    "data.num_parallel_calls",
    "data.prefetch",
    "data.service_address",
    "data.service_timeout_seconds",
    "train.tpu_address",
    "train.heartbeat_timeout_seconds",
    "train.collective_timeout_seconds",
    "model.remat",  # the same values and gradients, computed with less memory
    "train.backprop_per_view",  # likewise
    "data.batched_crop",  # the same views, cropped a batch at a time
)

_ABSENT = object()  # a field missing from one side of a comparison


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different config."""


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: a nested config dict as dotted field names."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def differences(saved: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
    """{field: (saved value, new value)} for every field that differs (JSON-normalised)."""
    new = flatten(json.loads(config.to_json()))
    old = flatten(saved)
    return {
        k: (old.get(k, _ABSENT), new.get(k, _ABSENT))
        for k in sorted(set(old) | set(new))
        if old.get(k, _ABSENT) != new.get(k, _ABSENT)
    }


def _added_at_default(diff: dict[str, tuple]) -> set[str]:
    """Fields absent from the saved config whose new value is `base_config()`'s default."""
    defaults = flatten(json.loads(base_config().to_json()))
    return {
        k for k, (old, new) in diff.items() if old is _ABSENT and new == defaults.get(k, _ABSENT)
    }


def _fill(saved: dict, defaults: dict) -> dict:
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _fill(out[key], value)
    return out


def with_defaults(saved: dict) -> dict:
    """A saved config (JSON dict) with the fields added to byol-tf since, at their defaults.

    A run recorded before a field existed ran with that field's default behaviour, so this is
    the config it would resolve to today.
    """
    return _fill(saved, json.loads(base_config().to_json()))


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's saved config, with fields added to byol-tf since then at their defaults."""
    return ml_collections.ConfigDict(
        with_defaults(io.read_json(os.path.join(workdir, CONFIG_FILE)))
    )


def _show(value) -> str:
    return (
        "<absent>"
        if not isinstance(value, (str, int, float, bool, list, type(None)))
        else repr(value)
    )


def check_config(workdir: str, config: ml_collections.ConfigDict, overwrite: bool = False) -> dict:
    """Raises ConfigMismatchError if `workdir` holds a run whose config differs from `config`.

    Returns the differences that were accepted (allowed fields, or all with `overwrite`).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    saved = io.read_json(path)
    if saved is None:
        return {}
    diff = differences(saved, config)
    tolerated = set(MAY_DIFFER_ON_RESUME) | _added_at_default(diff)
    blocking = {k: v for k, v in diff.items() if k not in tolerated}
    if blocking and not overwrite:
        lines = "\n".join(
            f"  {k}: {_show(a)} in the workdir, {_show(b)} now" for k, (a, b) in blocking.items()
        )
        raise ConfigMismatchError(
            f"{workdir} holds a run with a different config ({len(blocking)} field(s) differ):\n"
            f"{lines}\nUse a new --workdir for a different run, or pass --overwrite "
            "(overwrite=True) to continue this run's checkpoints with the new config."
        )
    return diff


def save_config(workdir: str, config: ml_collections.ConfigDict, archive_previous: bool) -> str:
    """Writes `config.json` atomically; with `archive_previous` keeps the old one numbered."""
    io.makedirs(workdir)
    path = os.path.join(workdir, CONFIG_FILE)
    if archive_previous and io.exists(path):
        n = 1
        while io.exists(f"{path}.{n}"):
            n += 1
        io.rename(path, f"{path}.{n}")
    # Other workers read this file while the chief writes it: they see the old or the new one.
    return io.atomic_write_json(path, json.loads(config.to_json()))
