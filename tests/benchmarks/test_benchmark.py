"""The benchmark tool: FLOP counts against hand and peer figures, a tiny run writing valid JSON."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks.bench import conv as conv_profile
from benchmarks.bench import profile as step_profile
from benchmarks.bench import step as benchmark
from byol_tf import config as config_lib
from byol_tf.models import build_towers
from byol_tf.platform import cpu
from tests import REPO


def test_forward_flops_by_hand():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same", name="c1"),
            keras.layers.Conv2D(6, 1, strides=2, name="c2"),
            # Not a Conv2D subclass in Keras 3 (MobileNet-style encoders use it).
            keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, name="d"),
        ]
    )
    expected = (
        2 * (3 * 3 * 3 * 4 * 8 * 8) + 2 * (4 * 6 * 4 * 4) + 2 * (3 * 3 * 6 * 4 * 4) + 2 * 6 * 5
    )
    assert benchmark.forward_flops(model, tf.zeros([2, 8, 8, 3])) == expected
    # The watch is removed again: calling the model no longer counts anything.
    assert "watched" not in model.get_layer("c1").call.__name__


@pytest.mark.parametrize(
    "width, encoder_gflop, step_gflop",
    # byol-pytorch's torch FlopCounterMode figures for the same CIFAR ResNet-18 and 4096/256
    # heads (shared/bench/peer/README.md): convolutions and matmuls, 1 MAC = 2 FLOPs.
    [(64, 1.1108352, 8.962179072), (16, 0.070090752, 0.611057664)],
)
def test_step_flops_match_the_peer_harness(width, encoder_gflop, step_gflop):
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + f":w{width}_b256")
    online, _ = build_towers(c)
    flops = benchmark.byol_step_flops(online, 32)
    assert flops["encoder_fwd_gflop_per_view"] == pytest.approx(encoder_gflop, rel=1e-9)
    assert flops["projector_fwd_gflop_per_view"] == pytest.approx(
        2 * (8 * width * 4096 + 4096 * 256) / 1e9
    )
    assert flops["predictor_fwd_gflop_per_view"] == pytest.approx(2 * (256 * 4096 * 2) / 1e9)
    assert flops["step_gflop_per_image"] == pytest.approx(step_gflop, rel=1e-9)


def test_time_windows_reports_the_median_of_each_window():
    calls = []
    timing = benchmark.Timing(warmup=2, windows=3, calls=4)
    result = benchmark.time_windows(lambda: calls.append(1), timing)
    assert len(calls) == 2 + 3 * 4
    assert len(result["seconds_per_call"]) == 3
    assert min(result["seconds_per_call"]) <= result["median_seconds_per_call"]
    assert result["median_seconds_per_call"] <= max(result["seconds_per_call"])


def test_unknown_part_is_refused():
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    with pytest.raises(ValueError, match="Unknown benchmark parts.*'trainstep'"):
        benchmark.run_benchmark(c, parts=("trainstep",))


def _run_tool(output, variant: str, parts: str, windows: int, env=None) -> dict:
    """benchmarks/benchmark.py on configs/benchmark.py:<variant>; the JSON report it wrote."""
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "benchmarks", "benchmark.py"),
            "--config=" + os.path.join(REPO, "configs", "benchmark.py") + f":{variant}",
            f"--output={output}",
            f"--parts={parts}",
            "--warmup=1",
            f"--windows={windows}",
            "--calls=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(output.read_text())


@pytest.mark.slow
def test_tool_writes_json_for_a_tiny_config(tmp_path):
    output = tmp_path / "bench.json"
    parts = "train_step,augment,augmented_step,end_to_end"
    # As on a fresh machine: nobody chose oneDNN, so byol-tf sets it before TensorFlow loads.
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    report = _run_tool(output, "local,device_aug", parts, windows=2, env=env)
    assert report["settings"]["augment_on_device"] is True
    assert report["settings"]["global_batch_size"] == 8
    for part in ("train_step", "augment", "augmented_step", "end_to_end"):
        assert report[part]["images_per_s"] > 0
    assert report["augment"]["placement"] == "device (in the step)"
    # byol-tf turns oneDNN on unless the environment says otherwise (byol_tf/platform/cpu.py).
    assert report["machine"]["onednn_enabled"] is True
    assert report["machine"]["onednn_chosen_by"] == "byol-tf"
    assert report["machine"]["cpu_vector_isa"] in {name for name, _ in cpu._ISA_LEVELS} | {
        "unknown"
    }
    assert report["end_to_end"]["source"] == "synthetic:train"
    assert len(report["train_step"]["seconds_per_step"]) == 2
    assert report["train_step"]["gflops_per_s"] == pytest.approx(
        report["train_step"]["images_per_s"] * report["train_step"]["step_gflop_per_image"]
    )
    # Peaks only grow; a tiny step may stay under the import's transient peak, hence >=.
    assert report["peak_rss_mb"] >= report["train_step"]["peak_rss_mb"] >= report["start_rss_mb"]
    assert report["start_rss_mb"] > 100  # TF and Keras alone take hundreds of MB
    assert report["train_step"]["peak_rss_above_start_mb"] == pytest.approx(
        report["train_step"]["peak_rss_mb"] - report["start_rss_mb"]
    )
    # The step's tensors come on top of what was held before it, all inside the RSS. (This
    # tiny model's buffers are too small for TF's accounting to see: both may be 0 here.)
    step = report["train_step"]
    assert 0 <= step["tensor_held_before_mb"] <= step["tensor_peak_mb"] < step["peak_rss_mb"]
    # The EMA update is part of the step, so alone it takes less than a whole step.
    assert 0 < report["train_step"]["ema_share_of_step"] < 1
    assert "matmul" not in report


@pytest.mark.slow
def test_tool_reports_missing_allocator_statistics_with_onednn_off(tmp_path):
    """TF's Eigen path (the default on CPUs without AVX-512 VNNI/BF16, AVX-VNNI or AMX): the CPU
    allocator keeps no statistics, so the step's tensor memory is reported missing, with the
    reason, and everything else is still measured."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    report = _run_tool(tmp_path / "bench.json", "local", "train_step", windows=1, env=env)
    step = report["train_step"]
    assert step["images_per_s"] > 0 and step["peak_rss_mb"] > 0
    assert step["tensor_peak_mb"] is None and step["tensor_held_before_mb"] is None
    assert step["missing"] == benchmark.NO_ALLOCATOR_STATS
    machine = report["machine"]
    assert machine["onednn_enabled"] is False
    assert machine["TF_ENABLE_ONEDNN_OPTS"] == "0" and machine["onednn_chosen_by"] == "user"


def test_augment_ops_breakdown_times_every_op_and_shares_sum_to_one():
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    result = benchmark.bench_augment_ops(c, benchmark.Timing(warmup=1, windows=1, calls=1))
    ops = ("crop", "flip", "color_jitter", "grayscale", "blur", "solarize")
    assert tuple(result["seconds_per_batch"]) == ops
    assert all(result["seconds_per_batch"][op] > 0 for op in ops)
    assert sum(result["share"].values()) == pytest.approx(1.0)
    assert result["batch"] == c.data.global_batch_size


def test_profile_splits_the_step_into_its_parts_and_kernels(tmp_path):
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    # Activations of 1 MB: the allocator traces only tensors above about 256 KB.
    c.model.base_width = 8
    c.data.image_size = c.data.synthetic.image_size = 32
    c.data.global_batch_size = 32
    memory = benchmark.in_memory_source(c, 2 * c.data.global_batch_size)
    timing = benchmark.Timing(warmup=1, windows=1, calls=2)
    result = benchmark.bench_profile(c, memory, str(tmp_path), timing)
    parts = {row["name"]: row for row in result["by_part"]}
    # Every part of a BYOL step ran, and the shares are of the op time, so they sum to one.
    for part in ("online forward", "backward", "target forward", "optimizer", "ema"):
        assert parts[part]["ms_per_call"] > 0, part
    assert sum(row["share"] for row in result["by_part"]) == pytest.approx(1.0)
    assert parts["backward"]["share"] > parts["ema"]["share"]
    assert result["op_ms_per_call"] == pytest.approx(
        sum(row["ms_per_call"] for row in result["by_part"])
    )
    kernels = [row["name"] for row in result["by_op_type"]]
    # BatchNorm trains as one fused op each way (byol_tf/models/batchnorm.py).
    assert any("FusedBatchNormGradV3" in k for k in kernels)
    assert any("Conv2D" in k for k in kernels)
    memory = result["memory_at_peak"]
    made = {row["name"]: row["mb"] for row in memory["by_part"]}
    # At the peak the online forward's activations wait for the backward pass; the target's
    # were freed when its forward ended. The backward's own tensors depend on the kernels:
    # TF's Eigen convolution gradients hold an im2col workspace (60 MB here, 4x the
    # activations), oneDNN's do not; so the online forward leads every other part.
    others = [mb for name, mb in made.items() if name not in ("online forward", "backward")]
    assert made["online forward"] > 10 * max(others, default=0.0), memory
    assert made["online forward"] > 5  # the activations of one view, not a stray tensor
    assert memory["padding_mb"] >= 0


def test_memory_at_peak_finds_the_tensors_alive_at_the_peak():
    @tf.function
    def held_then_freed(seed):
        with tf.name_scope("online"):
            kept = tf.random.stateless_uniform([1024, 1024], seed)  # 4 MB, alive to the end
        with tf.name_scope("target"):
            # 1 MB, freed once its sum exists, before the peak.
            summed = tf.reduce_sum(tf.random.stateless_uniform([256, 1024], seed + 1))
        with tf.control_dependencies([summed]):
            doubled = kept * 2.0  # the peak: `kept` and `doubled`, 8 MB
        # `kept` is read again after `doubled` exists, so the multiply cannot reuse its buffer.
        with tf.control_dependencies([doubled]):
            kept_sum = tf.reduce_sum(kept)
        return tf.reduce_sum(doubled) + kept_sum + summed

    seed = tf.constant([1, 2])
    held_then_freed(seed)
    # 2 MB made before the trace and alive through it, as a model's weights are.
    weights = tf.random.stateless_uniform([512, 1024], seed + 2)
    trace = step_profile.profile_calls(lambda: held_then_freed(seed).numpy(), 1)
    memory = step_profile.memory_at_peak(trace)
    made = {row["name"]: row["mb"] for row in memory["by_part"]}
    # At the size the tensors asked for, whatever chunk the allocator handed out.
    assert made["online forward"] == pytest.approx(4.0, abs=0.01)
    assert sum(made.values()) == pytest.approx(8.0, abs=0.01)
    # The 1 MB block was freed before the peak; only its scalar sum (one allocation of at most
    # 256 bytes) may still be alive.
    assert made.get("target forward", 0.0) < 0.01
    ops = {row["op"]: row["mb"] for row in memory["largest"]}
    assert any("online/" in op and mb == pytest.approx(4.0, abs=0.01) for op, mb in ops.items())
    # Which tensors TF itself keeps between calls depends on the kernels; ours are at least there.
    assert memory["held_from_before_mb"] >= 2.0 - 0.01, memory
    assert memory["peak_mb"] >= memory["held_from_before_mb"] + 8.0 + memory["padding_mb"] - 0.01
    del weights


def test_conv_layers_times_every_convolution_shape_once(tmp_path):
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    memory = benchmark.in_memory_source(c, c.data.global_batch_size)
    timing = benchmark.Timing(warmup=1, windows=1, calls=2)
    result = benchmark.bench_conv_layers(c, memory, str(tmp_path), timing)
    rows = result["rows"]
    # ResNet-18: the stem, two convolutions in each of 8 blocks, 3 projection shortcuts.
    assert sum(row["calls"] for row in rows) == 1 + 16 + 3
    shapes = [(tuple(r["input_shape"]), tuple(r["kernel"]), tuple(r["strides"])) for r in rows]
    assert len(set(shapes)) == len(shapes)  # each shape timed once
    stem = rows[0]
    assert stem["input_shape"] == [c.data.image_size, c.data.image_size, 3]
    assert not stem["input_gradient"]  # images need no gradient, as in the step
    assert all(row["input_gradient"] for row in rows[1:])
    assert all(r["ms_forward"] > 0 and r["ms_per_call"] > 0 and r["gflops_per_s"] > 0 for r in rows)
    # FLOPs of one pass: the stem 3x3x3->64 at full size, forward and its kernel gradient.
    side = c.data.image_size
    assert stem["gflop"] == pytest.approx(
        2 * 2 * side * side * 27 * stem["kernel"][3] * result["batch"] / 1e9
    )


@pytest.mark.parametrize("remat, forward_passes", [(False, 4), (True, 6)])
def test_conv_layers_backward_time_rates_and_step_estimate(
    tmp_path, monkeypatch, remat, forward_passes
):
    # Fixed times instead of measured ones: 2 ms forward, 5 ms forward and backward, except the
    # stem, whose total comes out below its forward (noise on a cheap layer).
    def fixed(fns, x, windows, warmup):
        return [0.002, 0.0015] if x.shape[-1] == 3 else [0.002, 0.005]

    monkeypatch.setattr(conv_profile, "_median_seconds", fixed)
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    c.model.remat = remat
    memory = benchmark.in_memory_source(c, c.data.global_batch_size)
    result = benchmark.bench_conv_layers(c, memory, str(tmp_path), benchmark.Timing(1, 1, 1))
    stem, block = result["rows"][0], result["rows"][1]
    assert stem["ms_backward"] == 0 and stem["gflops_backward"] is None
    assert block["ms_backward"] == pytest.approx(3.0)
    batch, side = result["batch"], c.data.image_size
    stem_forward_flop = 2 * batch * side * side * stem["kernel"][3] * 27
    assert stem["gflops_forward"] == pytest.approx(stem_forward_flop / 0.002 / 1e9)
    in_c, out_c = block["kernel"][2], block["kernel"][3]
    block_forward_flop = 2 * batch * side * side * out_c * 9 * in_c  # stride 1, "same"
    assert block["gflops_backward"] == pytest.approx(2 * block_forward_flop / 0.003 / 1e9)
    # 20 convolutions per pass: 40 ms forward; 19 with 3 ms of backward and the stem's 0.
    assert result["ms_forward_per_pass"] == pytest.approx(40.0)
    assert result["ms_backward_per_pass"] == pytest.approx(57.0)
    assert result["ms_per_step"] == pytest.approx(forward_passes * 40.0 + 2 * 57.0)


def test_conv_forward_pass_returns_the_outputs_first_element():
    layer = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
    x = tf.random.stateless_normal([2, 6, 6, 3], seed=[0, 1])
    layer(x)
    first = conv_profile.forward_pass(layer)(x)
    np.testing.assert_allclose(first.numpy(), layer(x)[0, 0, 0, 0].numpy(), rtol=1e-5)


@pytest.mark.parametrize("input_grad", [True, False])
def test_conv_training_pass_computes_the_forward_it_times(input_grad):
    # A function returning only the gradients lets Grappler drop the forward convolution, which
    # a gradient does not need, and the profile would time the backward pass alone.
    layer = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
    x = tf.random.stateless_normal([2, 6, 6, 3], seed=[0, 1])
    layer(x)
    upstream = tf.random.stateless_normal([2, 6, 6, 4], seed=[2, 3])
    first, grads = conv_profile.training_pass(layer, upstream, input_grad)(x)
    y = tf.nn.conv2d(x, layer.kernel, 1, "SAME")
    np.testing.assert_allclose(first.numpy(), y[0, 0, 0, 0].numpy(), rtol=1e-5)
    kernel_grad = tf.compat.v1.nn.conv2d_backprop_filter(
        x, layer.kernel.shape, upstream, [1, 1, 1, 1], "SAME"
    )
    np.testing.assert_allclose(grads[-1].numpy(), kernel_grad.numpy(), rtol=1e-4, atol=1e-5)
    assert len(grads) == (2 if input_grad else 1)
    if input_grad:
        input_grad_ref = tf.compat.v1.nn.conv2d_backprop_input(
            x.shape, layer.kernel, upstream, [1, 1, 1, 1], "SAME"
        )
        np.testing.assert_allclose(grads[0].numpy(), input_grad_ref.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, part",
    [
        ("while/body/_1/while/lars/mul_259:Mul", "optimizer"),
        ("while/body/_1/while/ema/AssignVariableOp_3:AssignVariableOp", "ema"),
        ("gradient_tape/while/online_3/encoder_1/conv/Conv2DBackpropFilter:_MklConv", "backward"),
        ("while/target_1/encoder_1/resnet_1/stem_bn_1/FusedBatchNormV3:_MklBN", "target forward"),
        (
            "while/online_1/encoder_1/resnet_1/stem_conv_1/convolution:_MklNativeConv2D",
            "online forward",
        ),
        ("while/body/_1/while/l2_normalize_3/Sum:Sum", "other"),
    ],
)
def test_ops_are_assigned_to_step_parts_by_scope(name, part):
    assert step_profile.part_of(name) == part
    assert step_profile._OP_EVENT.fullmatch(name)


def test_enclosing_spans_are_not_ops():
    for span in ("ExecutorState::Process", "EagerLocalExecute: __inference_train_1", "train"):
        assert not step_profile._OP_EVENT.fullmatch(span)
