"""Each convolution of an encoder timed alone: which layer shapes run slowly on this machine.

`conv_layers` watches one forward pass of the encoder to find every Conv2D call and its input
shape, groups the calls that are the same layer shape, and times each shape alone at the
training batch: its forward pass alone, and its forward pass with the gradient to its input and
the gradient to its kernel, as a training step runs them; the backward time is the difference.
Both compiled functions return a piece of the forward output: a gradient needs only the input,
the kernel and the upstream gradient, so a function that returned only the gradients would let
Grappler prune the forward convolution and time the backward pass alone. The first layer gets
no input gradient, as in the step (images need none). Rates use the analytic FLOPs: one forward
pass's worth forward, two backward (one for the first layer).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import keras
import tensorflow as tf


def layer_calls(model: keras.Model, inputs: tf.Tensor, types: tuple) -> list[tuple]:
    """(layer, input, output) of every call of a layer of `types` in one eager forward pass.

    Found by watching the layers during the call, so a shared layer appears once per use. Also
    what the benchmark's analytic FLOP count runs on (`benchmark.forward_flops`).
    """
    calls = []
    layers = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, types)
    ]
    originals = {id(layer): layer.call for layer in layers}
    for layer in layers:

        def watched(x, *args, _layer=layer, _call=layer.call, **kwargs):
            y = _call(x, *args, **kwargs)
            calls.append((_layer, x, y))
            return y

        layer.call = watched
    try:
        model(inputs, training=False)
    finally:
        for layer in layers:
            layer.call = originals[id(layer)]
    return calls


def conv_calls(encoder: keras.Model, image_size: int) -> list[tuple[keras.layers.Conv2D, tuple]]:
    """(layer, per-example input shape) of every Conv2D call in one forward pass, in order."""
    images = tf.zeros([1, image_size, image_size, 3])
    return [
        (layer, tuple(x.shape[1:]))
        for layer, x, _ in layer_calls(encoder, images, (keras.layers.Conv2D,))
    ]


def _shape_key(layer: keras.layers.Conv2D, input_shape: tuple) -> tuple:
    return (
        input_shape,
        layer.filters,
        tuple(layer.kernel_size),
        tuple(layer.strides),
        layer.padding,
        tuple(layer.dilation_rate),
        layer.groups,
    )


def _median_seconds(fns: tuple, x: tf.Tensor, windows: int, warmup: int) -> list[float]:
    """Median seconds of each `fn(x)`, timed in alternation so that a drift of the machine
    falls on all of them alike. Each returns scalars: fetching them waits for the whole
    computation, and copying a full gradient out would be timed too."""

    def run(fn):
        return [t.numpy() for t in tf.nest.flatten(fn(x))]

    for _ in range(warmup):
        for fn in fns:
            run(fn)
    times = [[] for _ in fns]
    for _ in range(windows):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            run(fn)
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def training_pass(
    layer: keras.layers.Layer, upstream: tf.Tensor, input_grad: bool
) -> Callable[[tf.Tensor], tuple]:
    """A compiled forward and backward pass of `layer`: returns the output's first element and
    the gradients, with `upstream` as the output's gradient, to the input (if `input_grad`) and
    to the kernel. The first element keeps the forward convolution in the graph without adding
    a pass over the output, as a loss would. The gradients wait for the forward pass: they do
    not need its output, and would otherwise run beside it, which a step never does."""

    @tf.function
    def fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        first = _first(y)
        sources = [x, layer.kernel] if input_grad else [layer.kernel]
        with tf.control_dependencies([first]):
            grads = tape.gradient(y, sources, output_gradients=upstream)
        return first, grads

    return fn


def forward_pass(layer: keras.layers.Layer) -> Callable[[tf.Tensor], tf.Tensor]:
    """A compiled forward pass of `layer` that returns the output's first element."""
    return tf.function(lambda x: _first(layer(x)))


def _first(y: tf.Tensor) -> tf.Tensor:
    return tf.reshape(y, [-1])[0]


def _first_elements(fn: Callable) -> Callable:
    """`fn` returning the first element of each of its results, all of which it still computes
    (nothing narrows a convolution to one element)."""
    return tf.function(lambda x: tf.nest.map_structure(_first, fn(x)))


def conv_layers(
    encoder: keras.Model, image_size: int, batch: int, windows: int = 5, warmup: int = 2
) -> dict:
    """Forward and backward time of each distinct convolution shape of `encoder`, alone.

    Returns `rows` (one per shape, in order of first use: the first layer's name, how many
    calls share the shape, input shape, kernel, strides, ms per call forward, backward and in
    all, the GFLOP/s of each, and the share of the summed convolution time, counting every
    call) and the totals for one encoder pass, forward and backward.
    """
    groups: dict[tuple, dict] = {}
    for index, (layer, input_shape) in enumerate(conv_calls(encoder, image_size)):
        key = _shape_key(layer, input_shape)
        if key not in groups:
            groups[key] = {"layer": layer, "input_shape": input_shape, "calls": 0, "first": index}
        groups[key]["calls"] += 1
    rows = []
    for group in groups.values():
        layer, input_shape = group["layer"], group["input_shape"]
        input_grad = group["first"] > 0
        x = tf.random.stateless_normal([batch, *input_shape], seed=[0, 1])
        y_shape = layer.compute_output_shape((batch, *input_shape))
        upstream = tf.random.stateless_normal(y_shape, seed=[2, 3], dtype=layer.compute_dtype)
        train = training_pass(layer, upstream, input_grad)
        forward_s, total_s = _median_seconds(
            (forward_pass(layer), _first_elements(train)), x, windows, warmup
        )
        # Timed apart, the two can disagree by noise when the backward pass is cheap.
        backward_s = max(total_s - forward_s, 0.0)
        kh, kw = layer.kernel_size
        in_c = input_shape[-1] // layer.groups
        out_h, out_w = y_shape[1], y_shape[2]
        forward_flop = 2 * batch * out_h * out_w * layer.filters * kh * kw * in_c
        backward_flop = (2 if input_grad else 1) * forward_flop
        rows.append(
            {
                "layer": layer.name,
                "calls": group["calls"],
                "input_shape": list(input_shape),
                "kernel": [kh, kw, in_c, layer.filters],
                "strides": list(layer.strides),
                "input_gradient": input_grad,
                "ms_forward": forward_s * 1e3,
                "ms_backward": backward_s * 1e3,
                "ms_per_call": total_s * 1e3,
                "gflops_forward": forward_flop / forward_s / 1e9,
                "gflops_backward": backward_flop / backward_s / 1e9 if backward_s else None,
                "gflops_per_s": (forward_flop + backward_flop) / total_s / 1e9,
                "gflop": (forward_flop + backward_flop) / 1e9,
            }
        )
    total = sum(row["ms_per_call"] * row["calls"] for row in rows)
    for row in rows:
        row["share"] = row["ms_per_call"] * row["calls"] / total
    flop = sum(row["gflop"] * row["calls"] for row in rows)
    return {
        "batch": batch,
        "ms_per_encoder_pass": total,
        "ms_forward_per_pass": sum(row["ms_forward"] * row["calls"] for row in rows),
        "ms_backward_per_pass": sum(row["ms_backward"] * row["calls"] for row in rows),
        "gflops_per_s": flop / (total / 1e3),
        "rows": rows,
    }
