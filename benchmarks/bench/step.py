"""Throughput, FLOP and memory measurements of byol-tf on the current machine.

`run_benchmark` measures, in one process and one after the other (never concurrently):

- `train_step`: the full BYOL step (both views through the online and target towers, the loss,
  gradients, LARS, the EMA target update) on one in-memory batch of views, so no input
  pipeline and no augmentation is timed;
- `augment`: the augmentation of both views alone (tf.data crops per example, then the batched
  colour/blur/solarize ops, wherever the config places them), and the CPU cores it kept busy;
- `augmented_step`: in-memory uint8 images through the configured augmentation path and the
  step, the figure to set beside a peer that augments inside its training loop;
- `end_to_end`: an image folder (or any source) through decode, augmentation and the step;
- `matmul`: TensorFlow's own float32 matmul rate, the reference for the achieved GFLOP/s;
- `profile`: the `train_step` step under `tf.profiler`, its op time by op type and by part of
  the step, and the tensors alive at the allocator's peak (`benchmarks/bench/profile.py`);
- `conv_layers`: each convolution shape of the encoder alone, forward and backward, with
  their FLOP rates, and what a step's convolutions would take at those rates
  (`benchmarks/bench/conv.py`).

Every rate is the median over several timed windows after warm-up calls (which include
tracing). FLOPs are counted analytically from the layers the model runs (convolutions and
dense layers; 1 multiply-add = 2 FLOPs; normalisation and activations are not counted), and a
step is costed as 3x the forward pass for the online tower (forward + backward) and 1x for the
target, over two views: the same rule as the PyTorch peer harness in `shared/bench/peer`.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from benchmarks.bench import conv as conv_profile
from benchmarks.bench import profile as step_profile
from benchmarks.bench.memory import peak_rss_mb
from byol_tf import augment
from byol_tf import data as data_lib
from byol_tf.core.update import StepSpec
from byol_tf.data.pipeline import VIEWS, batch_augment_seed
from byol_tf.platform import cpu
from byol_tf.training.step import compile_train_function, make_train_function

PARTS = (
    "matmul",
    "train_step",
    "profile",
    "conv_layers",
    "augment",
    "augment_ops",
    "augmented_step",
    "end_to_end",
)


@dataclasses.dataclass(frozen=True)
class Timing:
    """How each part is timed: `warmup` untimed calls, then `windows` timed windows of `calls`."""

    warmup: int = 2
    windows: int = 5
    calls: int = 3


# Why `tensor_peak_mb` can be missing: TF's default CPU allocator keeps statistics only with
# oneDNN on (byol_tf/platform/cpu.py); TF_CPU_ALLOCATOR_USE_BFC=true gives them without oneDNN.
NO_ALLOCATOR_STATS = (
    "TensorFlow's CPU allocator keeps no statistics in this process (oneDNN off: "
    "TF_ENABLE_ONEDNN_OPTS=1 or TF_CPU_ALLOCATOR_USE_BFC=true turns them on)"
)


def _tensor_memory_mb() -> dict | None:
    """{"current", "peak"}: MiB of tensors TF's CPU allocator holds now and at most so far;
    None where the allocator keeps no statistics."""
    try:
        info = tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:  # "Allocator stats not available for device 'CPU:0'"
        return None
    return {k: v / 2**20 for k, v in info.items()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_windows(fn: Callable[[], object], timing: Timing) -> dict:
    """Calls `fn` `timing.warmup` times, then times `timing.windows` windows of `timing.calls`.

    `fn` must block until its work is done (e.g. return a NumPy value). Returns the seconds per
    call of each window, their median, and the CPU cores kept busy (process CPU time over
    wall time) during the timed windows.
    """
    for _ in range(timing.warmup):
        fn()
    per_call, cpu, wall = [], 0.0, 0.0
    for _ in range(timing.windows):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        for _ in range(timing.calls):
            fn()
        elapsed = time.perf_counter() - t0
        cpu += _cpu_seconds() - c0
        wall += elapsed
        per_call.append(elapsed / timing.calls)
    return {
        "seconds_per_call": per_call,
        "median_seconds_per_call": statistics.median(per_call),
        "cpu_cores_busy": cpu / wall if wall else float("nan"),
    }


# ----------------------------------------------------------------------------------------------
# FLOPs


def _layer_flops(layer: keras.layers.Layer, inputs: tf.Tensor, outputs: tf.Tensor) -> int:
    """Multiply-add FLOPs (x2) of one call of a convolution or dense layer, per example."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        out_h, out_w, out_c = outputs.shape[1:]
        return 2 * kh * kw * out_c * out_h * out_w
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        in_c = inputs.shape[-1] // layer.groups
        out_h, out_w, out_c = outputs.shape[1:]
        return 2 * kh * kw * in_c * out_c * out_h * out_w
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(outputs.shape[1:-1])) if len(outputs.shape) > 2 else 1
        return 2 * inputs.shape[-1] * layer.units * positions
    return 0


def forward_flops(model: keras.Model, inputs: tf.Tensor) -> int:
    """Convolution and dense FLOPs of one forward pass of `model` on one example of `inputs`.

    Counts the layers that actually run (each call of each Conv2D, DepthwiseConv2D and Dense
    layer, so a shared layer counts once per use), by watching them during one eager call.
    """
    types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    calls = conv_profile.layer_calls(model, inputs[:1], types)
    return int(sum(_layer_flops(layer, x, y) for layer, x, y in calls))


def byol_step_flops(online: keras.Model, image_size: int) -> dict:
    """Analytic FLOPs of the BYOL step per input image (two views), and its parts per view."""
    images = tf.zeros([1, image_size, image_size, 3])
    encoder = forward_flops(online.encoder, images)
    y = online.encoder(images, training=False)
    projector = forward_flops(online.projector, y)
    predictor = forward_flops(online.predictor, online.projector(y, training=False))
    online_forward = encoder + projector + predictor
    target_forward = encoder + projector
    # Two views; the online tower forward + backward (~3x forward), the target forward only.
    step = 2 * (3 * online_forward + target_forward)
    return {
        "encoder_fwd_gflop_per_view": encoder / 1e9,
        "projector_fwd_gflop_per_view": projector / 1e9,
        "predictor_fwd_gflop_per_view": predictor / 1e9,
        "step_gflop_per_image": step / 1e9,
    }


def matmul_gflops(n: int = 2048, timing: Timing = Timing(3, 10, 1)) -> dict:
    """float32 [n, n] x [n, n] matmul rate of TensorFlow here: 2n^3 FLOPs per product."""
    a = tf.random.stateless_uniform([n, n], seed=[1, 2])
    b = tf.random.stateless_uniform([n, n], seed=[3, 4])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    t = time_windows(lambda: product().numpy(), timing)
    best = min(t["seconds_per_call"])
    return {
        "n": n,
        "dtype": "float32",
        "median_gflops": 2 * n**3 / t["median_seconds_per_call"] / 1e9,
        "best_gflops": 2 * n**3 / best / 1e9,
    }


# ----------------------------------------------------------------------------------------------
# The parts


def in_memory_source(config: ml_collections.ConfigDict, num_examples: int, seed: int = 0):
    """A random-access source of random uint8 images at `data.image_size`, held in memory."""
    size = config.data.image_size
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.integers(0, 256, (num_examples, size, size, 3), dtype=np.uint8))
    labels = tf.zeros([num_examples], tf.int64)
    return data_lib.Source(
        "memory",
        num_examples,
        None,
        lookup=lambda i: (tf.gather(images, i), tf.gather(labels, i)),
        image_shape=(size, size, 3),
    )


def _fixed_views(config: ml_collections.ConfigDict, seed: int = 0) -> dict:
    size, batch = config.data.image_size, config.data.global_batch_size
    rng = np.random.default_rng(seed)
    # Values in [0, 1], like the peer harness's random uint8 / 255 batch.
    return {
        view: tf.constant(rng.integers(0, 256, (batch, size, size, 3)) / 255.0, tf.float32)
        for view in VIEWS
    }


class StepRunner:
    """The compiled BYOL step of a `Trainer`, with the EMA update compiled into the same call."""

    def __init__(self, trainer, config: ml_collections.ConfigDict):
        self.trainer = trainer
        self.config = config
        ema = trainer.ema.update if trainer.uses_target else None
        self.fn = make_train_function(
            trainer.strategy,
            trainer.online,
            trainer.target,
            trainer.optimizer,
            StepSpec.from_config(config),
            ema,
            step_counter=trainer.position.step,
        )
        self.steps_per_call = int(config.train.steps_per_call)

    def __call__(self, iterator) -> float:
        compile_train_function(self.fn, iterator)  # as the Trainer does; once
        losses, _ = self.fn(iterator, tf.constant(self.steps_per_call))
        return float(losses.numpy()[-1])


def _trainer(config: ml_collections.ConfigDict, source, workdir: str):
    from byol_tf.training.trainer import Trainer

    return Trainer(config, workdir, source=source)


def _rate(timing: dict, images_per_call: int) -> float:
    return images_per_call / timing["median_seconds_per_call"]


def _fixed_batch_step(config, source, workdir: str):
    """A Trainer and its compiled step fed one fixed in-memory batch of views, augmentation off."""
    c = config.copy_and_resolve_references()
    c.augment.on_device = False  # nothing but the model's work is timed
    trainer = _trainer(c, source, workdir)
    dataset = tf.data.Dataset.from_tensors(_fixed_views(c)).repeat()
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    runner = StepRunner(trainer, c)
    return c, trainer, lambda: runner(iterator), runner.steps_per_call


def bench_train_step(config, source, workdir: str, timing: Timing) -> dict:
    """The full step on one fixed in-memory batch of views (augmentation excluded)."""
    c, trainer, call, steps_per_call = _fixed_batch_step(config, source, workdir)
    held = _tensor_memory_mb()  # weights, optimizer state, the fixed views
    if held is not None:
        tf.config.experimental.reset_memory_stats("CPU:0")
    t = time_windows(call, timing)
    after = _tensor_memory_mb()
    memory = (
        {"tensor_peak_mb": after["peak"], "tensor_held_before_mb": held["current"]}
        if held is not None and after is not None
        else {"tensor_peak_mb": None, "tensor_held_before_mb": None, "missing": NO_ALLOCATOR_STATS}
    )
    flops = byol_step_flops(trainer.online, c.data.image_size)
    images_per_s = _rate(t, c.data.global_batch_size * steps_per_call)
    ema = {}
    if trainer.uses_target:
        # The EMA update alone, compiled as in the step: is it worth fusing further?
        update = tf.function(trainer.ema.update)
        step = tf.constant(0, tf.int64)
        t_ema = time_windows(lambda: update(step), timing)
        seconds = t_ema["median_seconds_per_call"]
        ema = {
            "ema_seconds_per_update": seconds,
            "ema_share_of_step": seconds * steps_per_call / t["median_seconds_per_call"],
        }
    return {
        **ema,
        "images_per_s": images_per_s,
        "gflops_per_s": images_per_s * flops["step_gflop_per_image"],
        "cpu_cores_busy": t["cpu_cores_busy"],
        "seconds_per_step": [s / steps_per_call for s in t["seconds_per_call"]],
        "peak_rss_mb": peak_rss_mb(),
        # TF's allocator: the most bytes its tensors held at once during the step, and before
        # it. The rest of the RSS is the runtime, oneDNN's caches and malloc's free lists.
        **memory,
        **flops,
    }


def bench_profile(config, source, workdir: str, timing: Timing) -> dict:
    """The `train_step` step under `tf.profiler`: its op time by op type and by step part, and
    the tensors alive at the allocator's peak (`memory_at_peak`)."""
    _, _, call, _ = _fixed_batch_step(config, source, workdir)
    for _ in range(max(timing.warmup, 1)):  # tracing stays out of the trace
        call()
    trace = step_profile.profile_calls(call, timing.calls)
    return {
        **step_profile.summarize_trace(trace, timing.calls),
        "memory_at_peak": step_profile.memory_at_peak(trace),
    }


def bench_augment(config, source, timing: Timing) -> dict:
    """Images per second of both views' augmentation alone, wherever the config runs it."""
    c = config
    dataset = data_lib.pretrain_dataset(source, c)
    iterator = iter(dataset)
    if c.augment.on_device:
        # tf.data only crops; the batched ops run as the train step would run them.
        @tf.function
        def rest(batch, step):
            return {
                view: augment.augment_batch(
                    batch[view], c.augment[view], batch_augment_seed(c.seed, step, 0, i)
                )
                for i, view in enumerate(VIEWS)
            }

        counter = iter(range(10**9))

        def call():
            out = rest(next(iterator), tf.constant(next(counter), tf.int64))
            return out["view1"].numpy()

    else:

        def call():
            return next(iterator)["view1"].numpy()

    t = time_windows(call, timing)
    return {
        "images_per_s": _rate(t, c.data.global_batch_size),
        "cpu_cores_busy": t["cpu_cores_busy"],
        "placement": "device (in the step)" if c.augment.on_device else "tf.data",
    }


def bench_conv_layers(config, source, workdir: str, timing: Timing) -> dict:
    """Each convolution shape of the online encoder alone, forward and backward, at the batch
    one replica trains on (`benchmarks/bench/conv.py`)."""
    trainer = _trainer(config, source, workdir)
    batch = config.data.global_batch_size // trainer.strategy.num_replicas_in_sync
    result = conv_profile.conv_layers(
        trainer.online.encoder,
        config.data.image_size,
        batch,
        windows=timing.windows * timing.calls,
        warmup=timing.warmup,
    )
    # A step runs the encoder forward on both views online and (with a target) in the target,
    # and backward on both online views: what its convolutions would take at these rates. With
    # remat each online backward runs its view's blocks forward again.
    forward_passes = (4 if trainer.uses_target else 2) + (2 if config.model.remat else 0)
    result["ms_per_step"] = (
        forward_passes * result["ms_forward_per_pass"] + 2 * result["ms_backward_per_pass"]
    )
    return result


def bench_augment_ops(config, timing: Timing) -> dict:
    """Where the augmentation's time goes: each op of view 1 alone on one batch.

    The crop and then flip, colour jitter, grayscale, blur and solarize, each compiled on its
    own and timed on a [global batch, S, S, 3] float batch, with view 1's probabilities and
    strengths (so blur runs on every image, as in T). Returns seconds per batch per op and
    each op's share of their sum.
    """
    v, size = config.augment.view1, config.data.image_size
    batch = config.data.global_batch_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch, size, size, 3)) / 255.0, tf.float32)
    ops = {
        "crop": lambda x, s: augment.random_resized_crop(
            x, size, s, tuple(v.crop_area), tuple(v.crop_aspect_ratio), p=v.crop_p
        ),
        "flip": lambda x, s: augment.random_flip(x, s, v.flip_p),
        "color_jitter": lambda x, s: augment.color_jitter(
            x, s, v.brightness, v.contrast, v.saturation, v.hue, v.jitter_p
        ),
        "grayscale": lambda x, s: augment.to_grayscale(x, s, v.grayscale_p),
        "blur": lambda x, s: augment.gaussian_blur(
            x, s, v.blur_p, tuple(v.blur_sigma), v.blur_kernel_fraction
        ),
        "solarize": lambda x, s: augment.solarize(x, s, 1.0, v.solarize_threshold),
    }
    seed = tf.constant([0, 1], tf.int64)
    seconds = {}
    for name, op in ops.items():
        compiled = tf.function(op)
        t = time_windows(lambda fn=compiled: fn(images, seed).numpy(), timing)
        seconds[name] = t["median_seconds_per_call"]
    total = sum(seconds.values())
    return {
        "batch": batch,
        "seconds_per_batch": seconds,
        "share": {name: value / total for name, value in seconds.items()},
        "note": "solarize timed at p=1 (view 1 has p=0); the crop here is batched, not per "
        "image as in tf.data",
    }


def bench_pipeline_step(config, source, workdir: str, timing: Timing) -> dict:
    """`source` through the configured input pipeline and augmentation into the step."""
    trainer = _trainer(config, source, workdir)
    iterator = iter(trainer._dataset(0))
    runner = StepRunner(trainer, config)
    t = time_windows(lambda: runner(iterator), timing)
    return {
        "images_per_s": _rate(t, config.data.global_batch_size * runner.steps_per_call),
        "cpu_cores_busy": t["cpu_cores_busy"],
        "source": source.spec,
        "skipped_images": int(source.skipped),
    }


def settings(config: ml_collections.ConfigDict) -> dict:
    """What the numbers depend on, recorded next to them."""
    m = config.model
    return {
        "encoder": m.encoder,
        "stem": m.stem,
        "base_width": m.base_width,
        "width_multiplier": m.width_multiplier,
        "norm": m.norm,
        "projector": [m.projector.hidden_dim, m.projector.output_dim],
        "predictor": [m.predictor.hidden_dim, m.predictor.output_dim],
        "concat_views": m.concat_views,
        "remat": m.remat,
        "backprop_per_view": config.train.backprop_per_view,
        "global_batch_size": config.data.global_batch_size,
        "image_size": config.data.image_size,
        "precision": config.train.precision,
        "jit_compile": config.train.jit_compile,
        "steps_per_call": config.train.steps_per_call,
        "augment_on_device": config.augment.on_device,
        "optimizer": config.optimizer.name,
        "strategy": config.train.strategy,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "os_cpu_count": os.cpu_count(),
    }


def run_benchmark(
    config: ml_collections.ConfigDict,
    parts: tuple[str, ...] = PARTS,
    end_to_end_source: str = "",
    timing: Timing = Timing(),
    num_memory_examples: int = 0,
) -> dict:
    """Runs the requested parts one after the other and returns the JSON-ready report.

    Args:
      config: a pretraining config; its model, batch, precision, XLA and augmentation
        settings are what is measured.
      parts: a subset of `PARTS`.
      end_to_end_source: the source for `end_to_end` (e.g. `folder:/data/cifar10/train`);
        empty means `config.data.train`.
      timing: warm-up and window sizes.
      num_memory_examples: size of the in-memory image set (default: 4 global batches).
    """
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"Unknown benchmark parts {sorted(unknown)}; choose from {PARTS}.")
    report = {"settings": settings(config), "machine": cpu.machine(), "timing": vars(timing)}
    # TF and Keras are loaded, no model exists yet: the runtime's own share of every peak below
    # (docs/performance.md compares the memory above it with the peer's above torch's).
    report["start_rss_mb"] = peak_rss_mb()
    _tensor_memory_mb()  # the first query turns on the allocator's accounting: do it early
    n = num_memory_examples or 4 * config.data.global_batch_size
    memory = in_memory_source(config, n)
    with tempfile.TemporaryDirectory(prefix="byol_bench_") as workdir:
        for part in PARTS:
            if part not in parts:
                continue
            t0 = time.perf_counter()
            sub = os.path.join(workdir, part)
            if part == "matmul":
                result = matmul_gflops()
            elif part == "train_step":
                result = bench_train_step(config, memory, sub, timing)
            elif part == "profile":
                result = bench_profile(config, memory, sub, timing)
            elif part == "augment":
                result = bench_augment(config, memory, timing)
            elif part == "augment_ops":
                result = bench_augment_ops(config, timing)
            elif part == "conv_layers":
                result = bench_conv_layers(config, memory, sub, timing)
            elif part == "augmented_step":
                result = bench_pipeline_step(config, memory, sub, timing)
            else:
                spec = end_to_end_source or config.data.train
                source = data_lib.load_source(spec, config)
                result = bench_pipeline_step(config, source, sub, timing)
            result["wall_seconds"] = time.perf_counter() - t0
            report[part] = result
    report["peak_rss_mb"] = peak_rss_mb()
    if "train_step" in report:
        step = report["train_step"]
        step["peak_rss_above_start_mb"] = step["peak_rss_mb"] - report["start_rss_mb"]
    if "train_step" in report and "matmul" in report:
        report["train_step"]["fraction_of_matmul"] = (
            report["train_step"]["gflops_per_s"] / report["matmul"]["median_gflops"]
        )
    if "end_to_end" in report and "train_step" in report:
        report["end_to_end"]["fraction_of_train_step"] = (
            report["end_to_end"]["images_per_s"] / report["train_step"]["images_per_s"]
        )
    return report
