"""Decode and augmentation on a tf.data service cluster (`data.service_address`).

The CPU-heavy part of the input pipeline (read, decode, crop, colour, blur, solarize) runs on
the service's workers, on other machines; the trainer only receives finished batches. Start a
dispatcher and workers with `tools/data_service.py` (see docs/distributed.md).

What reaches each replica is the same as without the service, batch for batch: the dataset
registered with the service is a stream of *steps* of this input pipeline, and the dispatcher
hands out steps one at a time (dynamic sharding), so each step is produced exactly once, by one
service worker, from the same seeds. Only the order can change: a step finished early by a
fast worker may arrive before the previous one. A resumed run starts again at the checkpoint's
step, so at most the few steps in flight at the checkpoint can be repeated or skipped.

The service reads the data where its workers run: folder paths must be the same on every
service machine (a shared filesystem or a bucket). Sources without random access (TFDS without
`data.cache`) cannot be cut into steps and are not supported.

`check_dispatcher` fails within `data.service_timeout_seconds` if nothing that speaks gRPC
answers at the address, since TensorFlow itself would retry silently for a long time.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import ml_collections
import tensorflow as tf

from byol_tf.data.source import autotune

# A gRPC server answers a new connection with an HTTP/2 SETTINGS frame (type 4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


class DispatcherUnavailableError(ConnectionError):
    """Nothing that speaks gRPC answered at `data.service_address`."""


def normalize_address(address: str) -> str:
    """'host:port' or 'grpc://host:port' -> 'grpc://host:port'."""
    return address if "://" in address else f"grpc://{address}"


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(normalize_address(address))
    if parts.scheme != "grpc" or not parts.hostname or parts.port is None:
        raise ValueError(
            f"data.service_address={address!r} should look like 'grpc://host:port' (or "
            "'host:port')."
        )
    return parts.hostname, parts.port


def check_dispatcher(address: str, timeout_seconds: float) -> None:
    """Raises DispatcherUnavailableError unless a gRPC server answers at `address` in time."""
    host, port = _host_port(address)
    hint = (
        f"Start one with `python tools/data_service.py --role=dispatcher --port={port}` (and "
        "workers), or clear data.service_address to run the input pipeline locally."
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds) as conn:
            conn.settimeout(timeout_seconds)
            conn.sendall(_HTTP2_PREFACE)
            header = conn.recv(9)
    except TimeoutError as e:
        raise DispatcherUnavailableError(
            f"The tf.data service dispatcher at {address} (data.service_address) did not answer "
            f"within {timeout_seconds:g} s. {hint}"
        ) from e
    except OSError as e:
        raise DispatcherUnavailableError(
            f"Cannot reach the tf.data service dispatcher at {address} (data.service_address): "
            f"{e.strerror or e}. {hint}"
        ) from e
    if len(header) < 4 or header[3] != _SETTINGS_FRAME:
        raise DispatcherUnavailableError(
            f"Something answers at {address} (data.service_address), but it is not a tf.data "
            f"service dispatcher (no gRPC handshake). {hint}"
        )


def start_dispatcher(port: int = 0, work_dir: str | None = None):
    """Starts a dispatcher in this process; `.target` is its address (keep the object alive).

    With `work_dir`, the dispatcher journals its state there and recovers it after a restart.
    """
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir)
    )
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(
    dispatcher: str,
    port: int = 0,
    worker_address: str | None = None,
    heartbeat_seconds: float = 2.0,
):
    """Starts a service worker in this process that registers with `dispatcher`.

    `worker_address` is how the trainers reach this worker ("host:port"); by default
    localhost and the bound port, which only works on one machine. Workers learn about a new
    training job at their next heartbeat, so a short one (TF's default is 30 s) makes a
    (re)started run get its first batches sooner.
    """
    host, dispatcher_port = _host_port(dispatcher)
    kwargs = {"worker_address": worker_address} if worker_address else {}
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=f"{host}:{dispatcher_port}",
        port=port,
        heartbeat_interval_ms=int(heartbeat_seconds * 1000),
        **kwargs,
    )
    return tf.data.experimental.service.WorkerServer(config)


def steps_dataset(
    source,
    config: ml_collections.ConfigDict,
    layout,
    steps_per_epoch: int,
    start_step: int,
    crop_example,
    finish_batch,
) -> tf.data.Dataset:
    """This input pipeline's batches, produced on the tf.data service and received here.

    `layout` says which block of each global batch this pipeline reads and how many replicas
    it serves; `crop_example(epoch, example)` and `finish_batch(batch, step, replica)` (None when
    there is nothing to do per batch) are the local pipeline's own per-example and per-batch
    functions, so both paths give equal batches.
    """
    if not source.random_access:
        raise ValueError(
            f"data.service_address is set, but {source.spec!r} has no random access (TFDS "
            "streams), so it cannot be cut into steps for the service. Use a folder: source, "
            "or data.cache=true for a dataset that fits in memory."
        )
    address = normalize_address(config.data.service_address)
    check_dispatcher(address, config.data.service_timeout_seconds)
    k, b = layout.replicas_per_pipeline, layout.per_replica
    first = layout.pipeline_id * k  # global id of this pipeline's first replica
    per_step = layout.per_pipeline

    @tf.autograph.experimental.do_not_convert
    def step_examples(step):
        epoch, in_epoch = step // steps_per_epoch, step % steps_per_epoch
        idx = source.epoch_indices(
            epoch,
            config.seed,
            layout.pipeline_id,
            layout.num_pipelines,
            per_step,
            steps_per_epoch,
            in_epoch,
        )[:per_step]
        return tf.data.Dataset.from_tensor_slices(
            (tf.fill([per_step], step), tf.fill([per_step], epoch), idx)
        )

    @tf.autograph.experimental.do_not_convert
    def load_and_crop(step, epoch, index):
        out = crop_example(epoch, source.load(index))
        out["step"] = step
        return out

    @tf.autograph.experimental.do_not_convert
    def augment_step(batches):
        # One element per step: [k, b, ...], the k replicas' batches in replica order.
        step = batches.pop("step")[0, 0]
        if finish_batch is None:
            return batches
        done = [
            finish_batch(tf.nest.map_structure(lambda t, r=r: t[r], batches), step, first + r)
            for r in range(k)
        ]
        return tf.nest.map_structure(lambda *replicas: tf.stack(replicas), *done)

    parallel = autotune(config.data.num_parallel_calls)
    ds = tf.data.Dataset.range(start_step, 2**62).flat_map(step_examples)
    ds = ds.map(load_and_crop, num_parallel_calls=parallel)
    ds = ds.batch(b, drop_remainder=True).batch(k, drop_remainder=True)
    ds = ds.map(augment_step, num_parallel_calls=parallel)
    ds = ds.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=address,
        )
    )
    # Back to one element per replica, in the order tf.distribute expects.
    return ds.unbatch()
