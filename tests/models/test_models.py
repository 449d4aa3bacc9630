"""byol_tf.models: ResNet shapes and parameter counts, the three norms, zero-init residuals,
Weight Standardisation, the MLP heads, the online/target towers and their EMA pairing, user
encoders (with `hidden_layer`), `.keras` round trips, and which tower variables the optimizer
exclusion patterns catch.

Everything is small (ResNet base widths 2-8, 8-32 px images, batches of 4-8) so the file runs
in about half a minute on 2 CPU cores; only the ResNet-50 parameter count builds a full-width
network.
"""

import collections

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from byol_tf.config import base_config
from byol_tf.core import lars as optimizers
from byol_tf.models import (
    DEPTHS,
    Encoder,
    MLPHead,
    ResNet,
    WSConv2D,
    build_encoder,
    build_towers,
    copy_online_to_target,
    target_pairs,
)
from byol_tf.models.batchnorm import BatchNormalization
from byol_tf.models.resnet import group_count

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _config(**model) -> ml_collections.ConfigDict:
    """A narrow CIFAR-stem ResNet-18 on 16 px images with small heads; `model` overrides."""
    c = base_config()
    c.data.image_size = 16
    c.data.mean, c.data.std = MEAN, STD
    c.model.encoder = "resnet18"
    c.model.base_width = 8
    c.model.stem = "cifar"
    # Different hidden sizes for the two heads, so a swapped head would show in the shapes.
    c.model.projector.update(hidden_dim=24, output_dim=12)
    c.model.predictor.update(hidden_dim=20, output_dim=12)
    c.model.update(model)
    return c


def _images(n: int, size: int, seed: int) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(size=(n, size, size, 3)), tf.float32)


def _sublayers(model: keras.Layer) -> list:
    # Keras 3 has no public recursive layer walk; `_flatten_layers` is what `Model.layers` uses.
    return list(model._flatten_layers(include_self=False, recursive=True))


def _of_type(model: keras.Layer, cls) -> list:
    return [layer for layer in _sublayers(model) if isinstance(layer, cls)]


def _record_inputs(layer: keras.Layer) -> list:
    """Makes a built `layer` record the shape of every input it is called on (returned list)."""
    seen, call = [], layer.call

    def spy(x, *args, **kwargs):
        seen.append(tuple(x.shape))
        return call(x, *args, **kwargs)

    layer.call = spy
    return seen


def _strip_tower(path: str) -> str:
    """The path inside its tower. Variables of a user's functional model, built before the
    tower, have no tower prefix at all."""
    tower, _, rest = path.partition("/")
    return rest if tower in ("online", "target") else path


# --- ResNet shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_depth_counts_the_weighted_layers(depth):
    # ResNet-d has d weighted layers: the stem conv, the convs of the residual branches, the fc.
    model = ResNet(depth=depth, base_width=2)  # constructed, not built: cheap even at 200
    branch_convs = sum(len(block.convs) for block in model.blocks)
    assert 1 + branch_convs + 1 == depth
    assert {len(block.convs) for block in model.blocks} == ({2} if depth < 50 else {3})


@pytest.mark.parametrize(
    "depth, width_multiplier",
    [(18, 1), (18, 2), (34, 1), (50, 1), (50, 2), (101, 1), (152, 4), (200, 1)],
)
def test_representation_dim(depth, width_multiplier):
    base_width = 2
    expected = (8 if depth < 50 else 32) * base_width * width_multiplier
    model = ResNet(depth=depth, width_multiplier=width_multiplier, base_width=base_width)
    assert model.feature_dim == expected
    assert model.blocks[-1].convs[-1].filters == expected
    if (depth, width_multiplier) == (18, 2):  # ResNet-50 runs in the parameter-count test
        assert tuple(model(_images(2, 16, 0)).shape) == (2, expected)


def test_standard_widths():
    assert ResNet(depth=18).feature_dim == 512
    assert ResNet(depth=50).feature_dim == 2048
    assert ResNet(depth=50, width_multiplier=4).feature_dim == 8192


def test_resnet50_parameter_count_matches_torchvision():
    model = ResNet(depth=50, base_width=64, stem="imagenet", name="resnet")
    assert tuple(model(tf.zeros((1, 32, 32, 3))).shape) == (1, 2048)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    moving = sum(int(np.prod(v.shape)) for v in model.non_trainable_variables)
    # torchvision resnet50: 25,557,032 parameters, minus fc (2048 * 1000 + 1000).
    assert trainable == 25_557_032 - 2_049_000 == 23_508_032
    # BatchNorm moving mean and variance (buffers, not parameters, in torchvision) over
    # 26,560 channels: stem 64 + stages 1408 + 3584 + 10240 + 11264.
    assert moving == 2 * 26_560


def test_width_multiplier_doubles_every_channel():
    images = _images(2, 16, 1)
    narrow, wide = (
        ResNet(depth=18, width_multiplier=m, base_width=4, stem="cifar", name="resnet")
        for m in (1, 2)
    )
    narrow(images), wide(images)
    kernels = [
        (n, w)
        for n, w in zip(narrow.trainable_variables, wide.trainable_variables, strict=True)
        if n.path.endswith("/kernel")
    ]
    assert len(kernels) == 20  # stem + 16 branch convs + 3 projection shortcuts
    for n, w in kernels:
        assert n.path == w.path
        kh, kw, cin, cout = n.shape
        stem = n.path == "resnet/stem_conv/kernel"
        assert tuple(w.shape) == (kh, kw, cin if stem else 2 * cin, 2 * cout), n.path
    assert wide.feature_dim == 2 * narrow.feature_dim == 64


@pytest.mark.parametrize("stem, stem_side, final_side", [("cifar", 32, 4), ("imagenet", 8, 1)])
def test_stem_downsampling(stem, stem_side, final_side):
    model = ResNet(depth=18, base_width=4, stem=stem)
    images = _images(2, 32, 2)
    model(images)  # build first: building traces `call` more than once
    stem_out = _record_inputs(model.blocks[0])  # the first block sees the stem's output
    feature_map = _record_inputs(model.pool)
    y = model(images)
    # CIFAR stem: 3x3 stride-1 conv, no pooling. ImageNet: 7x7 stride-2 conv, then a 2x max pool.
    assert stem_out == [(2, stem_side, stem_side, 4)]
    # Three more stride-2 stages after the stem.
    assert feature_map == [(2, final_side, final_side, 32)]
    assert tuple(y.shape) == (2, 32)


@pytest.mark.parametrize("depth", [18, 50])
def test_downsampling_stride_sits_on_the_3x3_conv(depth):
    # ResNet v1.5 (torchvision, Haiku): a bottleneck's 1x1 convs keep stride 1.
    model = ResNet(depth=depth, base_width=2)
    for block in model.blocks:
        first_of_stage = block.name.endswith("_block0") and not block.name.startswith("stage1")
        stride = (2, 2) if first_of_stage else (1, 1)
        assert [tuple(c.strides) for c in block.convs] == (
            [stride, (1, 1)] if depth < 50 else [(1, 1), stride, (1, 1)]
        ), block.name
        assert [tuple(c.kernel_size) for c in block.convs] == (
            [(3, 3), (3, 3)] if depth < 50 else [(1, 1), (3, 3), (1, 1)]
        ), block.name
        if block.proj_conv is not None:
            assert tuple(block.proj_conv.strides) == stride


@pytest.mark.parametrize(
    "kwargs, bad",
    [(dict(depth=26), "26"), (dict(norm="instance"), "instance"), (dict(stem="tiny"), "tiny")],
)
def test_resnet_rejects_bad_settings(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        ResNet(**kwargs)


# --- Weight Standardisation and the group_ws norm -----------------------------------------------


def _effective_kernel(conv: keras.layers.Conv2D, in_channels: int) -> np.ndarray:
    """The kernel a 3x3 'same' conv applies, read back from its outputs on delta images.

    A 3x3 image that is 1 at its centre in channel i and 0 elsewhere gives
    out[y, x, o] = K[2 - y, 2 - x, i, o] (convolution here is cross-correlation).
    """
    deltas = np.zeros((in_channels, 3, 3, in_channels), np.float32)
    for i in range(in_channels):
        deltas[i, 1, 1, i] = 1.0
    out = conv(deltas).numpy()  # [in_channels, 3, 3, out_channels]
    return np.transpose(out[:, ::-1, ::-1, :], (1, 2, 0, 3))


def test_ws_conv_standardises_each_output_channel():
    conv = WSConv2D(
        5,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(mean=3.0, stddev=0.5, seed=0),
    )
    effective = _effective_kernel(conv, in_channels=4)
    raw = conv.kernel.numpy()
    assert effective.shape == raw.shape == (3, 3, 4, 5)
    assert np.all(raw.mean(axis=(0, 1, 2)) > 2.0)  # the stored kernel is not standardised...
    # ...but the one applied has zero mean and unit (population) variance per output channel.
    np.testing.assert_allclose(effective.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(effective.var(axis=(0, 1, 2)), 1.0, rtol=1e-4)
    mean = raw.mean(axis=(0, 1, 2), keepdims=True)
    std = raw.std(axis=(0, 1, 2), keepdims=True)
    np.testing.assert_allclose(effective, (raw - mean) / std, rtol=1e-4, atol=1e-4)


def test_ws_conv_ignores_per_channel_shift_and_scale_of_the_kernel():
    conv = WSConv2D(3, 3, padding="same", use_bias=False)
    x = _images(2, 6, 3)
    before = conv(x).numpy()
    scale = np.array([0.5, 2.0, 7.0], np.float32)
    shift = np.array([-1.0, 0.3, 4.0], np.float32)
    conv.kernel.assign(conv.kernel * scale + shift)
    np.testing.assert_allclose(conv(x).numpy(), before, rtol=1e-4, atol=1e-4)
    # A plain Conv2D with the same kernel does see the change (the check above can fail).
    plain = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    plain.build(x.shape)
    plain.kernel.assign(conv.kernel)
    assert not np.allclose(plain(x).numpy(), before, atol=1e-2)


@pytest.mark.parametrize(
    "groups, channels, expected", [(32, 64, 32), (32, 8, 8), (32, 48, 24), (3, 8, 2), (4, 7, 1)]
)
def test_group_count_is_the_largest_divisor_not_above_groups(groups, channels, expected):
    assert group_count(groups, channels) == expected
    assert channels % expected == 0


def test_group_ws_resnet_has_no_batch_norm():
    model = ResNet(depth=18, base_width=8, stem="cifar", norm="group_ws", gn_groups=4)
    model(_images(2, 8, 4))
    assert not _of_type(model, keras.layers.BatchNormalization)
    group_norms = _of_type(model, keras.layers.GroupNormalization)
    convs = _of_type(model, keras.layers.Conv2D)
    assert len(group_norms) == len(convs) == 20  # one norm per conv, shortcuts included
    assert all(isinstance(conv, WSConv2D) for conv in convs)
    assert {gn.groups for gn in group_norms} == {4}
    # With BatchNorm, no conv is weight-standardised.
    batch = ResNet(depth=18, base_width=8, stem="cifar", norm="batch")
    assert not any(isinstance(conv, WSConv2D) for conv in _of_type(batch, keras.layers.Conv2D))


@pytest.mark.parametrize("norm, independent", [("group_ws", True), ("batch", False)])
def test_training_output_depends_on_the_batch_only_with_batch_norm(norm, independent):
    model = ResNet(depth=18, base_width=4, stem="cifar", norm=norm, gn_groups=2)
    x = _images(4, 16, 5)
    other = tf.concat([x[:1], 2.0 * _images(3, 16, 6)], axis=0)  # same first example
    first, second = model(x, training=True)[0], model(other, training=True)[0]
    assert np.all(np.isfinite(first.numpy()))
    if independent:
        np.testing.assert_allclose(second.numpy(), first.numpy(), rtol=1e-5, atol=1e-5)
    else:
        assert np.max(np.abs(second.numpy() - first.numpy())) > 1e-3
    # In inference mode neither norm looks at the rest of the batch.
    np.testing.assert_allclose(
        model(other, training=False)[0].numpy(),
        model(x, training=False)[0].numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


# --- zero-init residual -------------------------------------------------------------------------


@pytest.mark.parametrize("depth, last_norm", [(18, "bn2"), (50, "bn3")])
def test_zero_init_residual(depth, last_norm):
    model = ResNet(depth=depth, base_width=2, stem="cifar", zero_init_residual=True, name="resnet")
    model(_images(2, 8, 7))
    # The last norm of each residual branch starts with gamma = 0...
    gammas = {v.path: v.numpy() for v in model.trainable_variables if v.path.endswith("/gamma")}
    expected_zero = {
        f"resnet/stage{s + 1}_block{b}/{last_norm}/gamma"
        for s, count in enumerate(DEPTHS[depth][1])
        for b in range(count)
    }
    assert expected_zero <= set(gammas)
    zero = {path for path, g in gammas.items() if np.all(g == 0)}
    assert zero == expected_zero
    # ...and every other gamma (stem, inner norms, projection shortcuts) at one.
    assert all(np.all(g == 1) for path, g in gammas.items() if path not in zero)

    # So each block computes relu(shortcut): the residual branch adds exactly zero.
    rng = np.random.default_rng(9)
    for training in (False, True):
        for block in model.blocks:
            in_channels = block.convs[0].kernel.shape[2]
            x = tf.constant(rng.normal(size=(2, 4, 4, in_channels)), tf.float32)
            if block.proj_conv is None:
                shortcut = x
            else:
                shortcut = block.proj_norm(block.proj_conv(x), training=training)
            np.testing.assert_allclose(
                block(x, training=training).numpy(), tf.nn.relu(shortcut).numpy(), atol=1e-6
            )


def test_without_zero_init_the_residual_branch_is_active():
    model = ResNet(depth=18, base_width=2, stem="cifar", zero_init_residual=False)
    model(_images(2, 8, 10))
    block = model.blocks[1]  # an identity-shortcut block
    assert block.proj_conv is None
    x = tf.constant(np.random.default_rng(11).normal(size=(2, 4, 4, 2)), tf.float32)
    assert not np.allclose(block(x).numpy(), tf.nn.relu(x).numpy(), atol=1e-3)


# --- MLP heads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_mlp_head_is_linear_norm_relu_linear(norm):
    eps = 1e-5
    head = MLPHead(hidden_dim=6, output_dim=3, norm=norm, bn_epsilon=eps)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    head(x)
    norm_types = {
        "batch": BatchNormalization,  # byol-tf's fused-kernel subclass of Keras's
        "layer": keras.layers.LayerNormalization,
    }
    normalizations = _of_type(
        head,
        (
            keras.layers.BatchNormalization,
            keras.layers.LayerNormalization,
            keras.layers.GroupNormalization,
        ),
    )
    if norm == "none":
        assert head.norm is None and not normalizations
    else:
        assert [type(n) for n in normalizations] == [norm_types[norm]]
    assert head.hidden.use_bias and not head.out.use_bias
    assert tuple(head.hidden.kernel.shape) == (5, 6) and tuple(head.out.kernel.shape) == (6, 3)

    # Non-trivial affine parameters, so a norm applied in the wrong place would show.
    for v in head.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    w1, b1 = head.hidden.kernel.numpy(), head.hidden.bias.numpy()
    h = x @ w1 + b1
    if norm == "batch":  # training mode: batch statistics, biased variance
        h = (h - h.mean(0)) / np.sqrt(h.var(0) + eps)
    elif norm == "layer":
        h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + eps)
    if norm != "none":
        h = h * head.norm.gamma.numpy() + head.norm.beta.numpy()
    expected = np.maximum(h, 0.0) @ head.out.kernel.numpy()
    np.testing.assert_allclose(head(x, training=True).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_mlp_head_rejects_unknown_norm():
    with pytest.raises(ValueError, match="'group'"):
        MLPHead(8, 4, norm="group")


# --- towers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def towers():
    """ResNet-18 (base width 8, BatchNorm) towers from `_config()`; tests must leave them as found."""
    config = _config()
    online, target = build_towers(config)
    return config, online, target


def test_tower_output_dims(towers):
    config, online, target = towers
    x = _images(4, 16, 13)
    out, tout = online(x), target(x)
    assert set(out) == {"representation", "projection", "prediction"}
    assert set(tout) == {"representation", "projection"}
    assert tuple(out["representation"].shape) == tuple(tout["representation"].shape) == (4, 64)
    assert tuple(out["projection"].shape) == tuple(tout["projection"].shape) == (4, 12)
    assert tuple(out["prediction"].shape) == (4, 12)
    # projector: 64 -> 24 -> 12; predictor: 12 -> 20 -> 12.
    assert tuple(online.projector.hidden.kernel.shape) == (64, 24)
    assert tuple(target.projector.hidden.kernel.shape) == (64, 24)
    assert tuple(online.predictor.hidden.kernel.shape) == (12, 20)
    assert tuple(online.predictor.out.kernel.shape) == (20, 12)
    assert online.encoder.mean == MEAN and online.encoder.std == STD


@pytest.mark.parametrize("training", [True, False])
def test_online_and_target_agree_at_init(towers, training):
    _, online, target = towers
    x = _images(4, 16, 14)
    out, tout = online(x, training=training), target(x, training=training)
    for key in ("representation", "projection"):
        np.testing.assert_allclose(tout[key].numpy(), out[key].numpy(), rtol=1e-6, atol=1e-6)
    # Not trivially equal: the examples get different projections.
    assert np.std(out["projection"].numpy(), axis=0).max() > 1e-3


def test_towers_have_separate_variables(towers):
    _, online, target = towers
    online_ids = {id(v) for v in online.weights}
    assert not online_ids & {id(v) for v in target.weights}
    kernel = online.encoder.backbone.stem_conv.kernel
    target_kernel = target.encoder.backbone.stem_conv.kernel
    before = kernel.numpy()
    np.testing.assert_array_equal(target_kernel.numpy(), before)
    try:
        kernel.assign(before + 1.0)
        np.testing.assert_array_equal(target_kernel.numpy(), before)
    finally:
        kernel.assign(before)


def test_target_pairs_match_every_target_weight_once(towers):
    _, online, target = towers
    pairs = target_pairs(online, target)
    for o, t in pairs:
        assert tuple(o.shape) == tuple(t.shape)
        assert o.path.startswith("online/") and t.path.startswith("target/")
        assert _strip_tower(o.path) == _strip_tower(t.path)
        assert o.trainable and t.trainable
    counts = collections.Counter(id(t) for _, t in pairs)
    assert set(counts) == {id(v) for v in target.trainable_variables}
    assert set(counts.values()) == {1}
    # The online side is the encoder and projector; the predictor has no target counterpart.
    online_ids = [id(o) for o, _ in pairs]
    assert len(set(online_ids)) == len(online_ids)
    assert set(online_ids) == {
        id(v) for v in online.encoder.trainable_variables + online.projector.trainable_variables
    }
    assert not set(online_ids) & {id(v) for v in online.predictor.trainable_variables}


def test_copy_online_to_target_includes_batch_norm_statistics(towers):
    _, online, target = towers
    online(_images(4, 16, 15), training=True)  # moves the online moving statistics only
    moving = list(
        zip(online.encoder.non_trainable_variables, target.encoder.non_trainable_variables)
    )
    assert moving and any(not np.allclose(o.numpy(), t.numpy()) for o, t in moving)
    copy_online_to_target(online, target)
    online_weights = online.encoder.weights + online.projector.weights
    target_weights = target.encoder.weights + target.projector.weights
    assert len(online_weights) == len(target_weights)
    for o, t in zip(online_weights, target_weights):
        assert _strip_tower(o.path) == _strip_tower(t.path)
        np.testing.assert_array_equal(t.numpy(), o.numpy())


def test_exclusion_patterns_on_the_online_tower(towers):
    config, online, _ = towers
    patterns = tuple(config.optimizer.exclude_patterns)
    variables = {v.path: v for v in online.trainable_variables}
    excluded = {v.path for v in optimizers.excluded_variables(variables.values(), patterns)}
    for path in (
        "online/encoder/resnet/stem_bn/gamma",
        "online/encoder/resnet/stem_bn/beta",
        "online/encoder/resnet/stage2_block0/proj_bn/gamma",
        "online/encoder/resnet/stage4_block1/bn2/beta",
        "online/projector/hidden/bias",
        "online/projector/bn/gamma",
        "online/predictor/bn/beta",
    ):
        assert path in variables and path in excluded, path
    for path in (
        "online/encoder/resnet/stem_conv/kernel",
        "online/encoder/resnet/stage2_block0/proj_conv/kernel",
        "online/encoder/resnet/stage4_block1/conv2/kernel",
        "online/projector/hidden/kernel",
        "online/projector/output/kernel",
        "online/predictor/hidden/kernel",
        "online/predictor/output/kernel",
    ):
        assert path in variables and path not in excluded, path
    # The rule in general: every vector (bias, gamma, beta) is excluded, every kernel is not.
    assert excluded == {p for p, v in variables.items() if len(v.shape) == 1}
    # 20 convs, each with a BatchNorm (gamma, beta); per head a hidden bias and a BatchNorm.
    assert len(excluded) == 2 * 20 + 2 * 3
    assert len(variables) - len(excluded) == 20 + 2 * 2  # conv kernels + dense kernels


@pytest.mark.parametrize("name", ["resnet99", "vgg16"])
def test_unknown_encoder_name_raises(name):
    with pytest.raises(ValueError, match=f"model.encoder='{name}'"):
        build_towers(_config(encoder=name))


def _batch_norms(towers_) -> dict[str, list]:
    online, target = towers_
    parts = dict(
        online_encoder=online.encoder,
        online_projector=online.projector,
        online_predictor=online.predictor,
        target_encoder=target.encoder,
        target_projector=target.projector,
    )
    return {name: _of_type(part, keras.layers.BatchNormalization) for name, part in parts.items()}


def test_sync_batch_synchronises_encoder_and_heads(towers):
    synced = _batch_norms(build_towers(_config(norm="sync_batch", base_width=2)))
    plain = _batch_norms(towers[1:])
    for name in synced:
        assert synced[name] and plain[name], name
        assert all(bn.synchronized for bn in synced[name]), name
        assert not any(bn.synchronized for bn in plain[name]), name
    assert len(synced["online_encoder"]) == 20


@pytest.mark.parametrize("synchronized", [True, False])
def test_synchronized_head_normalises_over_the_global_batch(mirrored_strategy, synchronized):
    strategy = mirrored_strategy
    replicas = strategy.num_replicas_in_sync
    x = np.random.default_rng(16).normal(size=(8, 5)).astype(np.float32)
    x[4:] = 3.0 * x[4:] + 2.0  # the two replicas' shards have different statistics
    with strategy.scope():
        head = MLPHead(6, 3, "batch", synchronized=synchronized)
        head(tf.zeros((2, 5)))
    single = MLPHead(6, 3, "batch")
    single(tf.zeros((2, 5)))
    single.set_weights(head.get_weights())
    per_replica = len(x) // replicas

    def shard(ctx):
        start = ctx.replica_id_in_sync_group * per_replica
        return x[start : start + per_replica]

    @tf.function
    def step(inputs):
        return strategy.run(lambda xb: head(xb, training=True), args=(inputs,))

    out = step(strategy.experimental_distribute_values_from_function(shard))
    got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
    global_batch = single(x, training=True).numpy()
    if synchronized:
        np.testing.assert_allclose(got, global_batch, rtol=1e-5, atol=1e-5)
    else:
        assert np.max(np.abs(got - global_batch)) > 1e-2


# --- user encoders ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet():
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, include_top=False, include_preprocessing=False
    )


def _pooled(model: keras.Model, images: tf.Tensor) -> np.ndarray:
    """What the Encoder should compute: normalise with MEAN/STD, run, average over space."""
    x = (images - tf.constant(MEAN)) / tf.constant(STD)
    return tf.reduce_mean(model(x, training=False), axis=(1, 2)).numpy()


def test_keras_model_as_encoder(mobilenet):
    config = _config()
    config.data.image_size = 32
    online, target = build_towers(config, encoder=mobilenet)
    channels = mobilenet.output.shape[-1]
    assert channels == 576
    x = _images(2, 32, 17)
    out, tout = online(x), target(x)
    assert tuple(out["representation"].shape) == (2, channels)
    np.testing.assert_allclose(
        out["representation"].numpy(), _pooled(mobilenet, x), rtol=1e-5, atol=1e-5
    )
    # The target is a copy, not the same model: equal outputs, no shared variables.
    assert target.encoder.backbone is not mobilenet
    assert not {id(v) for v in online.weights} & {id(v) for v in target.weights}
    np.testing.assert_allclose(
        tout["projection"].numpy(), out["projection"].numpy(), rtol=1e-5, atol=1e-5
    )
    pairs = target_pairs(online, target)
    assert len(pairs) == len(target.trainable_variables)
    for o, t in pairs:
        assert tuple(o.shape) == tuple(t.shape)
        assert _strip_tower(o.path) == _strip_tower(t.path)


def test_keras_model_hidden_layer_is_the_representation(mobilenet):
    config = _config()
    config.data.image_size = 32
    layer = "expanded_conv_2_add"
    online, target = build_towers(config, encoder=mobilenet, hidden_layer=layer)
    cut = keras.Model(mobilenet.inputs, mobilenet.get_layer(layer).output)
    channels = cut.output.shape[-1]
    assert channels == 24 != mobilenet.output.shape[-1]
    x = _images(2, 32, 18)
    y = online(x)["representation"].numpy()
    assert y.shape == (2, channels)
    np.testing.assert_allclose(y, _pooled(cut, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(target(x)["representation"].numpy(), y, rtol=1e-5, atol=1e-5)
    assert tuple(online.projector.hidden.kernel.shape) == (channels, 24)


def test_bad_hidden_layer_raises(mobilenet):
    config = _config()
    config.data.image_size = 32
    with pytest.raises(ValueError, match="hidden_layer='no_such_layer'"):
        build_towers(config, encoder=mobilenet, hidden_layer="no_such_layer")


def test_remat_with_a_user_encoder_is_refused(mobilenet):
    config = _config()
    config.data.image_size = 32
    config.model.remat = True
    with pytest.raises(ValueError, match="model.remat recomputes the residual blocks"):
        build_towers(config, encoder=mobilenet)


def test_hidden_layer_errors_are_explicit():
    config = _config()
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3, name="a"), keras.layers.Conv2D(5, 3)])
    with pytest.raises(ValueError, match="needs a model with defined inputs"):
        build_towers(config, encoder=unbuilt, hidden_layer="a")
    # An Encoder is already cut; silently ignoring hidden_layer would train the wrong layer.
    wrapped = Encoder.from_keras_model(unbuilt)
    with pytest.raises(ValueError, match="cannot cut an `Encoder`"):
        build_towers(config, encoder=wrapped, hidden_layer="a")


# --- saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "group_ws"])
def test_encoder_keras_round_trip(tmp_path, norm):
    config = _config(base_width=4, norm=norm, gn_groups=2)
    encoder = build_encoder(config)
    x = _images(4, 16, 19)
    encoder(_images(4, 16, 20), training=True)  # moves BatchNorm statistics off their init
    expected = encoder(x, training=False).numpy()
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Encoder) and isinstance(loaded.backbone, ResNet)
    assert loaded.backbone.settings == encoder.backbone.settings
    assert loaded.mean == MEAN and loaded.std == STD
    convs = _of_type(loaded.backbone, keras.layers.Conv2D)
    assert all(isinstance(c, WSConv2D) == (norm == "group_ws") for c in convs)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, rtol=1e-6, atol=1e-6)
