"""byol_tf.models.bn_free: removing BatchNorm with Richemond et al.'s data-dependent start.

The transformed ResNet reproduces the BatchNorm network's training-mode output on the batch
its statistics came from (with gamma0 = 1 everywhere), starts every residual block as the
identity on its shortcut (gamma0 = 0), keeps no BatchNorm, saves and loads, and the Trainer
applies it to both towers for model.norm="bn_free_init". Tiny ResNet-18s (width 4, 16 px).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.models import (
    ChannelAffine,
    Encoder,
    ResNet,
    build_encoder,
    init_from_batchnorm,
    remove_batchnorm,
)
from byol_tf.models.bn_free import _convs, _norms, batchnorm_statistics
from byol_tf.training import trainer as train


def _config(norm: str = "batch"):
    c = config_lib.base_config()
    c.data.image_size = 16
    c.data.mean, c.data.std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    c.model.update(encoder="resnet18", base_width=8, stem="cifar", norm=norm)
    return c


def _images(seed: int, n: int = 8) -> tf.Tensor:
    return tf.random.stateless_uniform([n, 16, 16, 3], seed=[seed, 0])


def _sublayers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@pytest.fixture(autouse=True)
def _forget_the_global_seed():
    """These tests seed TF globally (set_random_seed, the Trainer); leave no global seed behind,
    so that test modules after this one do not depend on the order they run in."""
    yield
    tf.random.set_seed(None)


@pytest.fixture(scope="module")
def bn_encoder():
    """A BatchNorm encoder whose gammas and betas are not the identity (so they must be kept)."""
    keras.utils.set_random_seed(0)
    encoder = build_encoder(_config())
    encoder(_images(1), training=False)
    rng = np.random.default_rng(0)
    for v in encoder.trainable_variables:
        if v.path.endswith(("/gamma", "/beta")):
            shift = 1.0 if v.path.endswith("/gamma") else 0.0
            v.assign(shift + 0.3 * rng.normal(size=v.shape).astype(np.float32))
    return encoder


def test_gamma0_one_reproduces_batch_norm_training_output(bn_encoder):
    images = _images(2)
    expected = bn_encoder(images, training=True).numpy()
    weights_before = [v.numpy() for v in bn_encoder.weights]
    bn_free = remove_batchnorm(bn_encoder, images, last_gamma0=1.0)
    # The source network is left as it was, BatchNorm moving statistics included.
    for v, before in zip(bn_encoder.weights, weights_before, strict=True):
        np.testing.assert_array_equal(v.numpy(), before, err_msg=v.path)
    assert isinstance(bn_free, Encoder) and bn_free.backbone.settings["norm"] == "affine"
    np.testing.assert_allclose(bn_free(images).numpy(), expected, rtol=1e-4, atol=1e-5)
    # Only on that batch: another batch's own statistics differ from the recorded ones.
    other = _images(3)
    gap = np.abs(bn_free(other).numpy() - bn_encoder(other, training=True).numpy()).max()
    assert gap > 1e-3


def test_affine_parameters_follow_the_recorded_statistics(bn_encoder):
    images = _images(4)
    stats = batchnorm_statistics(bn_encoder, images)
    bn_free = remove_batchnorm(bn_encoder, images)
    # Statistics recomputed by hand for the stem BatchNorm: its input is the stem conv output.
    x = (images - tf.constant(bn_encoder.mean)) / tf.constant(bn_encoder.std)
    stem_in = bn_encoder.backbone.stem_conv(x).numpy()
    mu, sigma = stats[0]
    np.testing.assert_allclose(mu, stem_in.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sigma, np.sqrt(stem_in.var(axis=(0, 1, 2)) + 1e-5), rtol=1e-4)
    pairs = zip(_norms(bn_encoder.backbone), _norms(bn_free.backbone), stats, strict=True)
    for (bn, last), (affine, _), (mu, sigma) in pairs:
        gamma0 = 0.0 if last else 1.0
        g, b = bn.gamma.numpy(), bn.beta.numpy()
        np.testing.assert_allclose(affine.gamma.numpy(), gamma0 * g / sigma, rtol=1e-6)
        np.testing.assert_allclose(
            affine.beta.numpy(), gamma0 * (b - mu * g / sigma), rtol=1e-5, atol=1e-6
        )
    for a, b in zip(_convs(bn_encoder.backbone), _convs(bn_free.backbone), strict=True):
        np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())


def test_gamma0_zero_blocks_start_as_identity_residuals(bn_encoder):
    bn_free = remove_batchnorm(bn_encoder, _images(5))
    lasts = [norm for norm, last in _norms(bn_free.backbone) if last]
    assert len(lasts) == 8  # one per basic block of ResNet-18
    for norm in lasts:
        assert not norm.gamma.numpy().any() and not norm.beta.numpy().any()
    rng = np.random.default_rng(6)
    for block in bn_free.backbone.blocks:
        x = tf.constant(rng.normal(size=(2, 4, 4, block.convs[0].kernel.shape[2])), tf.float32)
        shortcut = x if block.proj_conv is None else block.proj_norm(block.proj_conv(x))
        np.testing.assert_array_equal(block(x).numpy(), tf.nn.relu(shortcut).numpy())
    # The residual branches are live again once gamma moves off zero (the check can fail).
    block = bn_free.backbone.blocks[1]
    lasts[1].gamma.assign(tf.ones_like(lasts[1].gamma))
    x = tf.constant(rng.normal(size=(2, 4, 4, block.convs[0].kernel.shape[2])), tf.float32)
    assert not np.allclose(block(x).numpy(), tf.nn.relu(x).numpy(), atol=1e-3)


def test_no_batch_norm_remains_and_the_model_round_trips(bn_encoder, tmp_path):
    bn_free = remove_batchnorm(bn_encoder, _images(7))
    layers = _sublayers(bn_free)
    assert not [x for x in layers if isinstance(x, keras.layers.BatchNormalization)]
    affines = [x for x in layers if isinstance(x, ChannelAffine)]
    assert len(affines) == len(_norms(bn_encoder.backbone)) == 20
    assert all(a.gamma.trainable and a.beta.trainable for a in affines)
    assert not bn_free.non_trainable_variables  # no moving statistics either
    path = str(tmp_path / "bn_free.keras")
    bn_free.save(path)
    loaded = keras.models.load_model(path)
    images = _images(8)
    np.testing.assert_allclose(loaded(images).numpy(), bn_free(images).numpy(), rtol=1e-6)


def test_remove_batchnorm_rejects_other_models():
    with pytest.raises(TypeError, match="Sequential"):
        # Named layers: auto-names would shift Keras's per-process counters other tests read.
        dense = keras.Sequential([keras.layers.Dense(2, name="head")], name="plain")
        remove_batchnorm(dense, np.zeros((2, 3)))
    group_ws = ResNet(depth=18, base_width=4, stem="cifar", norm="group_ws", gn_groups=2)
    group_ws(_images(9))
    with pytest.raises(TypeError, match="GroupNormalization"):
        remove_batchnorm(group_ws, _images(9))


def test_init_from_batchnorm_uses_the_twin_with_the_same_kernels():
    keras.utils.set_random_seed(1)
    affine = build_encoder(_config("bn_free_init"))
    images = _images(10)
    affine(images)
    kernels = [c.kernel.numpy() for c in _convs(affine.backbone)]
    init_from_batchnorm(affine, images, last_gamma0=1.0)
    twin = build_encoder(_config("batch"))
    twin(images)
    for src, dst in zip(_convs(affine.backbone), _convs(twin.backbone), strict=True):
        dst.kernel.assign(src.kernel)
    np.testing.assert_allclose(
        affine(images).numpy(), twin(images, training=True).numpy(), rtol=1e-4, atol=1e-5
    )
    for conv, before in zip(_convs(affine.backbone), kernels, strict=True):
        np.testing.assert_array_equal(conv.kernel.numpy(), before)
    with pytest.raises(ValueError, match="norm='affine'"):
        init_from_batchnorm(twin, images)


def test_trainer_starts_both_towers_bn_free(tmp_path):
    c = config_lib.load_config("research/configs/bn_free.py:heads_none,local")
    trainer = train.Trainer(c, str(tmp_path))
    for tower in (trainer.online, trainer.target):
        assert not [x for x in _sublayers(tower) if isinstance(x, keras.layers.BatchNormalization)]
    lasts = [norm for norm, last in _norms(trainer.online.encoder.backbone) if last]
    assert all(not norm.gamma.numpy().any() for norm in lasts)
    stem = trainer.online.encoder.backbone.stem_bn
    assert not np.allclose(stem.gamma.numpy(), 1.0)  # initialised from data, not left at 1
    for o, t in zip(trainer.online.encoder.weights, trainer.target.encoder.weights, strict=True):
        np.testing.assert_array_equal(o.numpy(), t.numpy())
    summary = trainer.fit(stop_at_step=1)
    assert np.isfinite(summary["final_loss"])


def test_the_init_batch_is_the_same_on_every_worker():
    """The data-dependent start must be identical on every worker: its batch ignores what can
    differ between workers (a tf.data service hands each its own steps; non-deterministic
    tf.data reorders examples) and is step 0's global batch of the local pipeline."""
    from byol_tf import data as data_lib

    c = config_lib.load_config("research/configs/bn_free.py:heads_none,local")
    source = data_lib.load_source(c.data.train, c)
    reference = data_lib.bn_free_init_batch(source, c)
    assert reference.shape[0] == c.data.global_batch_size
    other = c.copy_and_resolve_references()
    other.data.deterministic = False
    other.data.service_address = "grpc://127.0.0.1:9"  # never contacted
    np.testing.assert_array_equal(data_lib.bn_free_init_batch(source, other), reference)
    first = next(iter(data_lib.pretrain_dataset(source, c)))["view1"]
    np.testing.assert_array_equal(reference, first)
    # Two workers that build their encoders from the same seed then start from equal weights.
    starts = []
    for config in (c, other):
        keras.utils.set_random_seed(c.seed)
        encoder = build_encoder(config)
        encoder(reference[:1], training=False)
        init_from_batchnorm(encoder, data_lib.bn_free_init_batch(source, config))
        starts.append([v.numpy() for v in encoder.weights])
    for a, b in zip(*starts, strict=True):
        np.testing.assert_array_equal(a, b)
