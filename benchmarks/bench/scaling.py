"""The on-paper cost of data-parallel BYOL: communication per step and expected efficiency.

`architecture_counts(config)` builds the configured towers (no training) and counts what a
step moves: the online network's trainable parameters (their gradients are all-reduced every
step), the synchronised BatchNorm layers and channels (each adds small all-reduces to every
forward and backward pass), and the forward FLOPs per image. `estimate` turns these into a
step-time model for N accelerators under explicit, adjustable hardware assumptions
(`Assumptions`); nothing here is measured. `benchmarks/scaling_model.py` prints the table that
docs/scaling.md shows.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections


@dataclasses.dataclass(frozen=True)
class Counts:
    online_params: int  # trainable: the gradient all-reduced each step
    target_params: int
    online_bn_layers: int
    online_bn_channels: int
    target_bn_layers: int
    target_bn_channels: int
    online_forward_flops: float  # per image, one view
    target_forward_flops: float


@dataclasses.dataclass(frozen=True)
class Assumptions:
    """Hardware assumptions (not measurements); every one can be changed on the command line."""

    device_flops: float = 100e12  # sustained FLOP/s per accelerator at a large per-device batch
    full_speed_batch: int = 64  # below this per-device batch, utilisation falls proportionally
    devices_per_host: int = 8
    intra_host_bandwidth: float = 100e9  # all-reduce bus bandwidth per device, bytes/s
    inter_host_bandwidth: float = 25e9  # the same across hosts, per device
    intra_host_latency: float = 10e-6  # seconds per small all-reduce inside a host
    inter_host_latency: float = 30e-6  # extra seconds per doubling of the number of hosts
    gradient_bytes: int = 4  # float32 gradients (variables stay float32 under bf16)


def architecture_counts(config: ml_collections.ConfigDict) -> Counts:
    """Counts parameters, BatchNorm layers/channels and forward FLOPs of the configured towers."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.bench.step import forward_flops
    from byol_tf.models import build_towers
    from byol_tf.models.bn_stats import batchnorm_layers

    online, target = build_towers(config)

    def params(model):
        return int(sum(np.prod(v.shape) for v in model.trainable_variables))

    def batch_norms(model):
        layers = batchnorm_layers(model)
        return len(layers), int(sum(layer.moving_mean.shape[0] for layer in layers))

    def flops(model):
        # Convolution and dense multiply-adds x 2, as the benchmark and the peer count them.
        size = config.data.image_size
        return float(forward_flops(model, tf.zeros([1, size, size, 3])))

    on_layers, on_channels = batch_norms(online)
    tg_layers, tg_channels = batch_norms(target)
    return Counts(
        online_params=params(online),
        target_params=params(target),
        online_bn_layers=on_layers,
        online_bn_channels=on_channels,
        target_bn_layers=tg_layers,
        target_bn_channels=tg_channels,
        online_forward_flops=flops(online),
        target_forward_flops=flops(target),
    )


def per_step(counts: Counts, global_batch: int, sync_bn: bool) -> dict:
    """What one step computes and communicates, independent of the hardware."""
    views = 2
    # The online tower: forward and backward (about twice the forward) for both views; the
    # target tower: forward only. The EMA and LARS are elementwise and local to each device.
    flops = global_batch * views * (3 * counts.online_forward_flops + counts.target_forward_flops)
    bn_collectives = bn_bytes = 0
    if sync_bn:
        # Keras' synchronised BatchNorm all-reduces the sum, the sum of squares and the count
        # in each forward pass, and the gradients of the two sums in each backward pass.
        forward = 3 * (counts.online_bn_layers + counts.target_bn_layers)
        backward = 2 * counts.online_bn_layers
        bn_collectives = views * (forward + backward)
        floats = (
            2 * counts.online_bn_channels
            + 2 * counts.target_bn_channels
            + counts.online_bn_layers
            + counts.target_bn_layers
            + 2 * counts.online_bn_channels
        )
        bn_bytes = views * 4 * floats
    return {"flops": flops, "bn_collectives": bn_collectives, "bn_bytes": bn_bytes}


def estimate(
    counts: Counts, devices: int, global_batch: int, sync_bn: bool, a: Assumptions
) -> dict:
    """The modelled step time on `devices` accelerators and its parts (seconds)."""
    step = per_step(counts, global_batch, sync_bn)
    per_device_batch = global_batch / devices
    utilisation = min(1.0, per_device_batch / a.full_speed_batch)
    ideal = step["flops"] / (devices * a.device_flops)
    compute = ideal / utilisation
    hosts = max(1, math.ceil(devices / a.devices_per_host))
    bandwidth = a.intra_host_bandwidth if hosts == 1 else a.inter_host_bandwidth
    latency = a.intra_host_latency + (a.inter_host_latency * math.log2(hosts) if hosts > 1 else 0)
    gradient_bytes = counts.online_params * a.gradient_bytes
    # Ring all-reduce: every device sends and receives 2 (N - 1) / N of the buffer.
    ring_bytes = 2 * (devices - 1) / devices * gradient_bytes if devices > 1 else 0.0
    all_reduce = ring_bytes / bandwidth + (latency if devices > 1 else 0.0)
    sync_bn_time = (
        step["bn_collectives"] * latency + step["bn_bytes"] / bandwidth if devices > 1 else 0.0
    )
    total = compute + all_reduce + sync_bn_time
    return {
        "devices": devices,
        "hosts": hosts,
        "per_device_batch": per_device_batch,
        "gradient_mb": gradient_bytes / 1e6,
        "ring_mb_per_device": ring_bytes / 1e6,
        "bn_collectives": step["bn_collectives"],
        "bn_kb": step["bn_bytes"] / 1e3,
        "compute_ms": 1e3 * compute,
        "all_reduce_ms": 1e3 * all_reduce,
        "sync_bn_ms": 1e3 * sync_bn_time,
        "step_ms": 1e3 * total,
        # Communication efficiency: the share of the step spent computing.
        "comm_efficiency": compute / total,
        # Scaling efficiency: against N devices computing at full speed with free communication.
        "efficiency": ideal / total,
    }
