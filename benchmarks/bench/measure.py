"""Measurements behind docs/scaling.md: input-pipeline memory and step time vs replicas.

Each measurement runs in a fresh process (the tools start them), because the number of
logical CPU devices is fixed when TensorFlow starts and a process's peak memory never goes
down. `benchmarks/pipeline_memory.py` and `benchmarks/scaling_bench.py` are the entry points; results are
JSON records that name the machine they were measured on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import ml_collections

from benchmarks.bench import memory
from byol_tf.platform import cpu


def input_pipeline_memory(config: ml_collections.ConfigDict, batches: int = 0) -> dict:
    """Opens `config.data.train`, iterates `batches` (0: one epoch) and reports memory.

    Everything the pipeline holds is counted: with `data.cache` the decoded images, without
    it only file names, buffers and prefetched batches. Returns MB figures and throughput.
    """
    from byol_tf import data

    baseline = memory.rss_mb()
    peak_sampled = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak_sampled[0] = max(peak_sampled[0], memory.rss_mb())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    source = data.load_source(config.data.train, config)
    t1 = time.perf_counter()
    steps = batches or data.steps_per_epoch(source, config)
    n = 0
    for _ in data.pretrain_dataset(source, config).take(steps):
        n += 1
    t2 = time.perf_counter()
    done.set()
    sampler.join()
    peak = max(memory.peak_rss_mb(), peak_sampled[0])
    return {
        "source": config.data.train,
        "cache": bool(config.data.cache),
        "num_examples": source.num_examples,
        "batches": n,
        "global_batch_size": config.data.global_batch_size,
        "image_size": config.data.image_size,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_above_baseline_mb": round(peak - baseline, 1),
        "open_seconds": round(t1 - t0, 2),
        "iterate_seconds": round(t2 - t1, 2),
        "images_per_s": round(n * config.data.global_batch_size / max(t2 - t1, 1e-9), 1),
        "machine": cpu.machine(),
    }


def configure_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices; must run before TensorFlow starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def step_time(config: ml_collections.ConfigDict, steps: int, warmup: int) -> dict:
    """Median seconds per train step after `warmup` steps, with this process's strategy."""
    import keras
    import numpy as np

    from byol_tf.distributed import strategies as distribute
    from byol_tf.training import trainer as train

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as workdir:
        trainer = train.Trainer(config, workdir)
        trainer.fit(stop_at_step=warmup + steps, callbacks=[Stamp()])
        replicas = trainer.strategy.num_replicas_in_sync
        workers = distribute.num_workers(trainer.strategy)
        chief = trainer.is_chief
    intervals = np.diff(stamps[warmup:])
    median = float(np.median(intervals))
    return {
        "replicas": replicas,
        "workers": workers,
        "chief": chief,
        "global_batch_size": config.data.global_batch_size,
        "per_replica_batch": config.data.global_batch_size // replicas,
        "timed_steps": len(intervals),
        "median_step_seconds": round(median, 4),
        "p90_step_seconds": round(float(np.percentile(intervals, 90)), 4),
        "images_per_s": round(config.data.global_batch_size / median, 1),
    }


def run_scaling_bench(
    tool: str,
    setups: list[tuple[str, int]],
    common_args: list[str],  # must include --config=<file> first
    per_replica_batch: int,
    timeout: float = 1800.0,
) -> list[dict]:
    """Runs `tool --run_one` once per setup, each in fresh processes; returns their records.

    A setup is ("devices", n): one process with n logical CPU devices (MirroredStrategy when
    n > 1); or ("workers", n): n loopback processes of one device each (MultiWorkerMirrored).
    The global batch is `per_replica_batch` times the number of replicas, so each replica's
    work stays the same and only the communication grows.
    """
    from byol_tf.distributed import launch

    records = []
    for kind, n in setups:
        with tempfile.TemporaryDirectory() as scratch:
            out = os.path.join(scratch, "record.json")
            # The config file flag must come before any override of its fields.
            args = [
                sys.executable,
                tool,
                "--run_one",
                f"--record={out}",
                *common_args,
                f"--config.data.global_batch_size={per_replica_batch * n}",
            ]
            if kind == "devices":
                strategy = "mirrored" if n > 1 else "default"
                args += [f"--devices={n}", f"--config.train.strategy={strategy}"]
                subprocess.run(args, check=True, timeout=timeout)
            elif kind == "workers":
                args += ["--devices=1", "--config.train.strategy=multi_worker"]
                status = launch.launch(args, n, timeout=timeout)
                if status:
                    raise RuntimeError(f"{n} loopback workers failed with status {status}.")
            else:
                raise ValueError(f"Unknown setup {kind!r}: use devices:N or workers:N.")
            with open(out) as f:
                record = json.load(f)
        record["setup"] = f"{kind}:{n}"
        records.append(record)
        print(json.dumps(record), flush=True)
    return records
