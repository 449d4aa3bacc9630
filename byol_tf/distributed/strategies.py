"""Builds the `tf.distribute` strategy named in the config and checks the batch against it."""

from __future__ import annotations

import json
import os

import ml_collections
import tensorflow as tf
from absl import logging


def make_strategy(config: ml_collections.ConfigDict) -> tf.distribute.Strategy:
    """Returns the strategy for `config.train.strategy`.

    `default` is the no-op strategy (CPU or one GPU), `mirrored` uses every local GPU (or the
    logical CPUs configured in this process: `mirrored_devices`), `multi_worker` reads TF_CONFIG, `tpu` resolves the TPU at
    `config.train.tpu_address`.
    """
    name = config.train.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=mirrored_devices())
    if name == "multi_worker":
        tf_config = check_tf_config(os.environ.get("TF_CONFIG", ""))
        _configure_coordination_service(tf_config, config.train.heartbeat_timeout_seconds)
        timeout = config.train.collective_timeout_seconds
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=timeout if timeout > 0 else None
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.train.tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"train.strategy={name!r} is not one of default, mirrored, multi_worker, tpu.")


def mirrored_devices() -> list[str]:
    """The devices `mirrored` spans: every local GPU; without one, the logical CPUs, if the
    process configured several (tests, `benchmarks/scaling_bench.py`). One CPU alone is an error:
    mirroring it would train as `default` does while the user expects their GPUs to be used.
    """
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if gpus:
        return gpus
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) < 2:
        raise ValueError(
            "train.strategy=mirrored found no GPU: TensorFlow sees only the CPU. Check that "
            "TensorFlow's GPU libraries are installed (python -c \"import tensorflow as tf; "
            "print(tf.config.list_physical_devices('GPU'))\"), or use train.strategy=default "
            "on a CPU."
        )
    logging.warning("train.strategy=mirrored: no GPU, mirroring over %d logical CPUs.", len(cpus))
    return cpus


def _configure_coordination_service(tf_config: dict, heartbeat_timeout_seconds: float) -> None:
    """Sets the heartbeat timeout of TF's coordination service before the strategy starts it.

    MultiWorkerMirroredStrategy configures the service itself with TF's defaults unless it is
    already configured; this is the same call with our timeout. A worker that stops sending
    heartbeats (killed, hung machine) is then reported to the others, whose collectives abort
    with an error naming it, instead of waiting forever.
    """
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    cluster = tf_config["cluster"]
    jobs = [job for job in ("chief", "worker") if job in cluster]
    leader = f"/job:{jobs[0]}/replica:0/task:0"
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=leader,
        heartbeat_timeout_in_ms=int(heartbeat_timeout_seconds * 1000),
        coordinated_jobs=[_coordinated_job(job, len(cluster[job])) for job in jobs],
    )


def _coordinated_job(name: str, num_tasks: int):
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    return coordination_config_pb2.CoordinatedJob(name=name, num_tasks=num_tasks)


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
    if not isinstance(tf_config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task': {raw!r}")
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            f'TF_CONFIG has no \'cluster\' (e.g. {{"worker": ["host1:port", ...]}}): {raw!r}'
        )
    if not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG 'task' must be an object with 'type' and 'index': {raw!r}")
    for job, addresses in cluster.items():
        bad = (
            [a for a in addresses if not (isinstance(a, str) and a.rpartition(":")[2].isdigit())]
            if isinstance(addresses, list)
            else [addresses]
        )
        if bad or not addresses:
            raise ValueError(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port' strings; "
                f"got {addresses!r}."
            )
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


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """How many processes take part in each step (1 unless MultiWorkerMirroredStrategy)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return strategy.extended._num_workers  # noqa: SLF001  (no public accessor)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes checkpoints, summaries and exports.

    As TF's `multi_worker_util.is_chief`: the "chief" task when the cluster has a chief job,
    otherwise worker 0. (Worker 0 of a cluster with a chief is an ordinary worker: were it
    chief too, two processes would write the same checkpoints and logs.)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief_job = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief_job
