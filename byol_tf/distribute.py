"""Builds the `tf.distribute` strategy named in the config and checks the batch against it."""

from __future__ import annotations

import json
import os

import ml_collections
import tensorflow as tf


def make_strategy(config: ml_collections.ConfigDict) -> tf.distribute.Strategy:
    """Returns the strategy for `config.train.strategy`.

    `default` is the no-op strategy (CPU or one GPU), `mirrored` uses every local GPU (or the
    logical CPUs a test configured), `multi_worker` reads TF_CONFIG, `tpu` resolves the TPU at
    `config.train.tpu_address`.
    """
    name = config.train.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG", ""))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.train.tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"train.strategy={name!r} is not one of default, mirrored, multi_worker, tpu.")


def check_tf_config(raw: str) -> dict:
    """Parses TF_CONFIG and raises ValueError naming what is wrong with it."""
    if not raw:
        raise ValueError(
            "train.strategy='multi_worker' needs the TF_CONFIG environment variable; it is unset."
        )
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {raw!r}") from e
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG task type {kind!r} is not in the cluster {sorted(cluster)}.")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(
            f"TF_CONFIG task index {index!r} is outside the {len(cluster[kind])} '{kind}' "
            "addresses in the cluster."
        )
    return tf_config


def check_global_batch(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Returns the per-replica batch, or raises if the global batch does not split evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"data.global_batch_size={global_batch_size} is not divisible by the "
            f"{replicas} replicas in sync; use a multiple of {replicas}."
        )
    return global_batch_size // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)
