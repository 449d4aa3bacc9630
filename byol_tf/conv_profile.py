"""Each convolution of an encoder timed alone: which layer shapes run slowly on this machine.

`conv_layers` watches one forward pass of the encoder to find every Conv2D call and its input
shape, groups the calls that are the same layer shape, and times each shape alone at the
training batch: its forward pass, the gradient to its input and the gradient to its kernel,
as a training step runs them, in one compiled function. The first layer gets no input gradient,
as in the step (images need none). Rates use the analytic FLOPs: three forward passes' worth,
or two for the first layer.
"""

from __future__ import annotations

import statistics
import time

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


def _seconds_per_call(fn, windows: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(windows):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_layers(
    encoder: keras.Model, image_size: int, batch: int, windows: int = 5, warmup: int = 2
) -> dict:
    """Forward + backward time of each distinct convolution shape of `encoder`, alone.

    Returns `rows` (one per shape, in order of first use: the first layer's name, how many
    calls share the shape, input shape, kernel, strides, ms per call, GFLOP/s, and the share
    of the summed convolution time, counting every call) and the totals.
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
        upstream = tf.random.stateless_normal(y_shape, seed=[2, 3])

        @tf.function
        def forward_backward(x, _layer=layer, _upstream=upstream, _input_grad=input_grad):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.cast(_layer(x), tf.float32) * _upstream)
            sources = [x, _layer.kernel] if _input_grad else [_layer.kernel]
            return [tf.reduce_sum(tf.cast(g, tf.float32)) for g in tape.gradient(loss, sources)]

        def run(_fn=forward_backward, _x=x):
            return [g.numpy() for g in _fn(_x)]

        seconds = _seconds_per_call(run, windows, warmup)
        kh, kw = layer.kernel_size
        in_c = input_shape[-1] // layer.groups
        out_h, out_w = y_shape[1], y_shape[2]
        forward_flop = 2 * batch * out_h * out_w * layer.filters * kh * kw * in_c
        passes = 3 if input_grad else 2
        rows.append(
            {
                "layer": layer.name,
                "calls": group["calls"],
                "input_shape": list(input_shape),
                "kernel": [kh, kw, in_c, layer.filters],
                "strides": list(layer.strides),
                "input_gradient": input_grad,
                "ms_per_call": seconds * 1e3,
                "gflops_per_s": passes * forward_flop / seconds / 1e9,
            }
        )
    total = sum(row["ms_per_call"] * row["calls"] for row in rows)
    for row in rows:
        row["share"] = row["ms_per_call"] * row["calls"] / total
    flop = sum(row["gflops_per_s"] * row["ms_per_call"] * row["calls"] / 1e3 for row in rows)
    return {
        "batch": batch,
        "ms_per_encoder_pass": total,
        "gflops_per_s": flop / (total / 1e3),
        "rows": rows,
    }
