"""byol_tf.core.lars: LARS against a NumPy reference, exclusions by path, the LARS scope
(include patterns, checked on a ResNet-18 tower), the factory, and LARS under MirroredStrategy."""

import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.core import lars as optimizers
from byol_tf.core.schedules import WarmupCosineSchedule
from byol_tf.models import build_towers
from tests import REPO

PATTERNS = optimizers.DEFAULT_EXCLUDE_PATTERNS


def _np_momentum_sgd(param, grad, velocity, lr, momentum, nesterov):
    velocity = momentum * velocity + grad
    step = momentum * velocity + grad if nesterov else velocity
    return param - lr * step, velocity


def _np_lars(
    param, grad, velocity, lr, weight_decay, momentum, trust, excluded, nesterov=False, adapted=True
):
    """Reference in float64, written from the description in DeepMind's byol/utils/optimizers.py.

    `adapted=False`: outside the LARS scope, weight decay but no trust ratio."""
    param, grad, velocity = (np.asarray(a, np.float64) for a in (param, grad, velocity))
    if not excluded:
        grad = grad + weight_decay * param
    if not excluded and adapted:
        p_norm, g_norm = np.linalg.norm(param), np.linalg.norm(grad)
        ratio = trust * p_norm / g_norm if (p_norm > 0 and g_norm > 0) else 1.0
        grad = grad * ratio
    return _np_momentum_sgd(param, grad, velocity, lr, momentum, nesterov)


def _small_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((5,)),
            # Named, so the paths do not depend on which layers other tests created first.
            keras.layers.Dense(6, name="dense"),
            keras.layers.BatchNormalization(name="batch_normalization"),
            keras.layers.Dense(3, name="dense_1"),
        ],
        name="small",
    )


# --- lars_update -------------------------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy_ball", "nesterov"])
@pytest.mark.parametrize("excluded", [False, True], ids=["adapted", "excluded"])
def test_lars_update_matches_numpy_over_steps(excluded, nesterov):
    rng = np.random.default_rng(0)
    hp = dict(weight_decay=0.1, momentum=0.9, trust=0.01)
    param = rng.normal(size=(4, 3)).astype(np.float32)
    velocity = np.zeros_like(param)
    ref_param, ref_velocity = param.astype(np.float64), velocity.astype(np.float64)
    for step in range(5):
        grad = rng.normal(size=param.shape).astype(np.float32)
        lr = 0.5 + 0.1 * step
        param, velocity = optimizers.lars_update(
            param,
            grad,
            velocity,
            lr,
            hp["weight_decay"],
            hp["momentum"],
            hp["trust"],
            excluded=excluded,
            nesterov=nesterov,
        )
        ref_param, ref_velocity = _np_lars(
            ref_param, grad, ref_velocity, lr, **hp, excluded=excluded, nesterov=nesterov
        )
        np.testing.assert_allclose(param.numpy(), ref_param, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(velocity.numpy(), ref_velocity, rtol=1e-5, atol=1e-6)


def test_lars_update_trust_ratio_by_hand():
    # ||p|| = 5, g = grad + 0.5 * p = [3, 4] + [1.5, 2] = [4.5, 6] (norm 7.5): ratio 0.1 * 5 / 7.5.
    param, grad = np.array([3.0, 4.0]), np.array([3.0, 4.0])
    new_param, new_velocity = optimizers.lars_update(
        param,
        grad,
        np.zeros(2),
        lr=1.0,
        weight_decay=0.5,
        momentum=0.9,
        trust_coefficient=0.1,
        excluded=False,
    )
    np.testing.assert_allclose(new_velocity.numpy(), [0.3, 0.4])
    np.testing.assert_allclose(new_param.numpy(), [2.7, 3.6])


@pytest.mark.parametrize(
    "param, grad, weight_decay",
    [
        (np.zeros(3), np.array([1.0, -2.0, 0.5]), 0.1),  # ||param|| = 0
        (np.array([1.0, 2.0, 3.0]), np.zeros(3), 0.0),  # ||grad|| = 0
        (np.zeros(3), np.zeros(3), 0.1),  # both
    ],
    ids=["zero_param", "zero_grad", "both_zero"],
)
def test_lars_update_zero_norms_use_trust_one(param, grad, weight_decay):
    velocity = np.array([0.1, 0.0, -0.1])
    new_param, new_velocity = optimizers.lars_update(
        param.astype(np.float32),
        grad.astype(np.float32),
        velocity.astype(np.float32),
        lr=0.5,
        weight_decay=weight_decay,
        momentum=0.9,
        trust_coefficient=1e-3,
        excluded=False,
    )
    assert np.all(np.isfinite(new_param.numpy())) and np.all(np.isfinite(new_velocity.numpy()))
    # Trust 1 means the plain (decayed) gradient enters the momentum unchanged.
    expected = _np_momentum_sgd(param, grad + weight_decay * param, velocity, 0.5, 0.9, False)
    np.testing.assert_allclose(new_param.numpy(), expected[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(new_velocity.numpy(), expected[1], rtol=1e-6, atol=1e-7)


# --- exclusions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, excluded",
    [
        ("online/encoder/conv1/kernel", False),
        ("online/encoder/bn1/gamma", True),
        ("online/projector/norm/beta", True),
        ("dense/bias", True),
        ("bias", True),
        ("bias_net/kernel", False),  # "bias" in a layer name is not a bias
        ("block/gamma_scale", False),
        ("bn/moving_mean", False),
    ],
)
def test_is_excluded(path, excluded):
    assert optimizers.is_excluded(path, PATTERNS) is excluded


def test_config_patterns_are_the_defaults():
    assert tuple(config_lib.base_config().optimizer.exclude_patterns) == PATTERNS


def test_excluded_variables_small_model():
    model = _small_model()
    excluded = optimizers.excluded_variables(model.trainable_variables, PATTERNS)
    assert [v.path for v in excluded] == [
        "small/dense/bias",
        "small/batch_normalization/gamma",
        "small/batch_normalization/beta",
        "small/dense_1/bias",
    ]
    # Non-trainable BatchNorm statistics are not the optimizer's business.
    assert not optimizers.excluded_variables(model.non_trainable_variables, PATTERNS)


def test_excluded_variables_resnet50():
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    variables = model.trainable_variables
    excluded = optimizers.excluded_variables(variables, PATTERNS)
    excluded_ids = {id(v) for v in excluded}
    kept = [v for v in variables if id(v) not in excluded_ids]
    assert all(len(v.shape) == 1 for v in excluded), [v.path for v in excluded if len(v.shape) != 1]
    assert all(len(v.shape) >= 2 for v in kept), [v.path for v in kept if len(v.shape) < 2]
    print(f"ResNet-50: {len(excluded)} excluded, {len(kept)} adapted of {len(variables)}")
    # 53 convolutions, each with a bias and a BatchNorm (gamma, beta).
    assert (len(excluded), len(kept)) == (159, 53)


# --- LARS scope ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_tower():
    """The online tower of a (narrow) ResNet-18 as the Trainer builds it; variable paths only."""
    config = config_lib.base_config()
    config.data.image_size = 8
    config.model.update(encoder="resnet18", base_width=2, stem="cifar")
    config.model.projector.update(hidden_dim=8, output_dim=4)
    config.model.predictor.update(hidden_dim=8, output_dim=4)
    online, _ = build_towers(config)
    return online


def _lars_scope_config(variant: str):
    return config_lib.load_config(
        os.path.join(REPO, "research", "configs", "lars_scope.py") + f":{variant}"
    )


def _stage_kernels(stage: int) -> set:
    prefix = f"online/encoder/resnet/stage{stage}_block"
    paths = {f"{prefix}{b}/conv{i}/kernel" for b in (0, 1) for i in (1, 2)}
    return paths | ({f"{prefix}0/proj_conv/kernel"} if stage > 1 else set())


HEAD_KERNELS = {
    f"online/{head}/{layer}/kernel"
    for head in ("projector", "predictor")
    for layer in ("hidden", "output")
}


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("stages12", _stage_kernels(1) | _stage_kernels(2)),
        ("mlps", HEAD_KERNELS),
        ("nowhere", set()),
        (
            "all",  # every kernel: the stem, 4 stages and the heads
            {"online/encoder/resnet/stem_conv/kernel"}
            | set().union(*(_stage_kernels(s) for s in (1, 2, 3, 4)))
            | HEAD_KERNELS,
        ),
    ],
)
def test_lars_scope_patterns_select_exactly_the_named_variables(resnet18_tower, variant, expected):
    variables = resnet18_tower.trainable_variables
    paths = {v.path for v in variables}
    assert expected <= paths  # the expected paths are real variables of the tower
    config = _lars_scope_config(variant)
    patterns = tuple(config.optimizer.lars_include_patterns)
    exclude = optimizers.DEFAULT_EXCLUDE_PATTERNS
    selected = {v.path for v in optimizers.trust_ratio_variables(variables, exclude, patterns)}
    assert selected == expected
    assert len(_stage_kernels(1) | _stage_kernels(2)) == 9 and len(expected) in (0, 4, 9, 24)
    # The optimizer built on the tower makes the same choice, variable by variable.
    optimizer = optimizers.build_optimizer(config, 0.1)
    optimizer.build(variables)
    assert {v.path for v, a in zip(variables, optimizer._adapted) if a} == expected
    # Biases and norm parameters stay excluded whatever the scope.
    excluded = {p for p in paths if p.endswith(("/bias", "/gamma", "/beta"))}
    assert {v.path for v, e in zip(variables, optimizer._excluded) if e} == excluded
    # The other kernels take plain SGD at a plain-SGD rate: base lr 1.0 x 0.05, not 1.0.
    assert config.optimizer.base_lr == 1.0
    scaled = {v.path for v, s in zip(variables, optimizer._lr_scales) if s == 0.05}
    assert scaled == paths - excluded - expected
    assert all(s in (0.05, 1.0) for s in optimizer._lr_scales)


def test_lars_outside_scope_is_scaled_momentum_sgd_with_weight_decay():
    keras.utils.set_random_seed(3)
    model = _small_model()
    variables = model.trainable_variables
    hp = dict(weight_decay=0.05, momentum=0.9, trust=0.02)
    # Only the second Dense kernel is in scope; the first keeps decay but loses the trust ratio,
    # and steps at 0.3 x 0.1; biases and BatchNorm parameters are excluded and step at 0.3.
    # (Keras numbers layer names per process, so the pattern is taken from the variable.)
    second_kernel = variables[4]
    assert second_kernel.path.endswith("/kernel") and len(second_kernel.shape) == 2
    optimizer = optimizers.LARS(
        0.3,
        momentum=hp["momentum"],
        weight_decay_rate=hp["weight_decay"],
        trust_coefficient=hp["trust"],
        include_patterns=(re.escape(second_kernel.path) + "$",),
        unscoped_lr_scale=0.1,
    )
    optimizer.build(variables)
    assert [v for v, a in zip(variables, optimizer._adapted) if a] == [second_kernel]
    lrs = [0.3 * 0.1, 0.3, 0.3, 0.3, 0.3, 0.3]  # first kernel, its bias, gamma, beta, ...
    excluded = list(optimizer._excluded)
    adapted = list(optimizer._adapted)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(16, 5)), tf.float32)
    y = tf.constant(rng.normal(size=(16, 3)), tf.float32)
    params = [v.numpy().astype(np.float64) for v in variables]
    velocities = [np.zeros_like(p) for p in params]
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, variables)
        kernel_before, velocity_before = params[0], velocities[0]
        optimizer.apply(grads, variables)
        for i, variable in enumerate(variables):
            params[i], velocities[i] = _np_lars(
                params[i],
                grads[i].numpy(),
                velocities[i],
                lrs[i],
                **hp,
                excluded=excluded[i],
                adapted=adapted[i],
            )
            np.testing.assert_allclose(
                variable.numpy(), params[i], rtol=1e-5, atol=1e-6, err_msg=variable.path
            )
        # The optimizer's out-of-scope kernel is not where a trust-ratio step would have put it.
        trusted, _ = _np_lars(
            kernel_before, grads[0].numpy(), velocity_before, lrs[0], **hp, excluded=False
        )
        assert np.abs(variables[0].numpy() - trusted).max() > 1e-3


# --- the Keras optimizer -----------------------------------------------------------------------


def _np_warmup_cosine(step, peak, warmup, total):
    if step < warmup:
        return peak * step / warmup
    return (
        peak * 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))
    )


@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy_ball", "nesterov"])
def test_lars_optimizer_matches_numpy_per_variable(nesterov):
    keras.utils.set_random_seed(1)
    model = _small_model()
    variables = model.trainable_variables
    hp = dict(weight_decay=0.05, momentum=0.9, trust=0.02)
    peak, warmup, total = 0.5, 2, 8
    optimizer = optimizers.LARS(
        WarmupCosineSchedule(peak, warmup, total),
        momentum=hp["momentum"],
        weight_decay_rate=hp["weight_decay"],
        trust_coefficient=hp["trust"],
        nesterov=nesterov,
    )
    optimizer.build(variables)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(16, 5)), tf.float32)
    y = tf.constant(rng.normal(size=(16, 3)), tf.float32)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return grads

    # Decided independently of the patterns: Dense biases and BatchNorm gamma/beta.
    excluded = [v.path.rsplit("/", 1)[-1] in ("bias", "gamma", "beta") for v in variables]
    assert excluded == [False, True, True, True, False, True]
    params = [v.numpy().astype(np.float64) for v in variables]
    velocities = [np.zeros_like(p) for p in params]
    for step in range(5):
        lr = _np_warmup_cosine(step, peak, warmup, total)
        grads = [g.numpy() for g in train_step()]
        for i, variable in enumerate(variables):
            params[i], velocities[i] = _np_lars(
                params[i],
                grads[i],
                velocities[i],
                lr,
                **hp,
                excluded=excluded[i],
                nesterov=nesterov,
            )
            np.testing.assert_allclose(
                variable.numpy(), params[i], rtol=1e-5, atol=1e-6, err_msg=variable.path
            )
    assert int(optimizer.iterations.numpy()) == 5


def test_lars_config_round_trip_and_refuses_keras_weight_decay():
    optimizer = optimizers.LARS(
        WarmupCosineSchedule(1.0, 2, 10),
        momentum=0.8,
        weight_decay_rate=1e-6,
        trust_coefficient=2e-3,
        nesterov=True,
        exclude_patterns=[r"bias$"],
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimizers.LARS)
    assert isinstance(restored._learning_rate, WarmupCosineSchedule)
    for name in ("momentum", "weight_decay_rate", "trust_coefficient", "nesterov"):
        assert getattr(restored, name) == getattr(optimizer, name)
    assert restored.exclude_patterns == (r"bias$",)
    assert restored.include_patterns == () and restored.unscoped_lr_scale == 1.0
    with pytest.raises(ValueError, match="weight_decay_rate"):
        optimizers.LARS(0.1, weight_decay=1e-4)
    with pytest.raises(ValueError, match="momentum=1.5"):
        optimizers.LARS(0.1, momentum=1.5)


# --- build_optimizer ---------------------------------------------------------------------------


def test_build_optimizer_lars_from_config():
    config = config_lib.base_config()
    optimizer = optimizers.build_optimizer(config, learning_rate=0.3)
    assert isinstance(optimizer, optimizers.LARS)
    assert optimizer.momentum == config.optimizer.momentum
    assert optimizer.weight_decay_rate == config.optimizer.weight_decay
    assert optimizer.trust_coefficient == config.optimizer.trust_coefficient
    assert optimizer.nesterov == config.optimizer.nesterov
    assert optimizer.exclude_patterns == tuple(config.optimizer.exclude_patterns)
    assert optimizer.include_patterns == () == tuple(config.optimizer.lars_include_patterns)
    assert optimizer.weight_decay is None  # no Keras decoupled decay on top
    assert optimizer.unscoped_lr_scale == 1.0  # the LARS learning rate outside the scope too
    config.optimizer.lars_include_patterns = (r"/projector/",)
    config.optimizer.unscoped_lr_scale = 0.05
    scoped = optimizers.build_optimizer(config, learning_rate=0.3)
    assert scoped.include_patterns == (r"/projector/",) and scoped.unscoped_lr_scale == 0.05
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(scoped))
    assert restored.unscoped_lr_scale == 0.05
    np.testing.assert_allclose(optimizer.learning_rate.numpy(), 0.3)


def test_build_optimizer_sgd_and_unknown():
    config = config_lib.base_config()
    config.optimizer.name = "sgd"
    config.optimizer.weight_decay = 0.0
    config.optimizer.nesterov = True
    optimizer = optimizers.build_optimizer(config, learning_rate=0.1)
    assert type(optimizer) is keras.optimizers.SGD
    assert optimizer.momentum == 0.9 and optimizer.nesterov and optimizer.weight_decay is None
    config.optimizer.name = "adam"
    with pytest.raises(ValueError, match="optimizer.name='adam'"):
        optimizers.build_optimizer(config, learning_rate=0.1)


# --- distribution ------------------------------------------------------------------------------


def test_lars_mirrored_matches_single_device(mirrored_strategy):
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    global_batch = 8
    rng = np.random.default_rng(3)
    x = rng.normal(size=(global_batch, 4)).astype(np.float32)
    y = rng.normal(size=(global_batch, 2)).astype(np.float32)
    initial = [
        rng.normal(size=(4, 3)),
        rng.normal(size=(3,)),
        rng.normal(size=(3, 2)),
        rng.normal(size=(2,)),
    ]
    hp = dict(momentum=0.9, weight_decay_rate=0.01, trust_coefficient=0.05)

    def make_model_and_optimizer():
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)]
        )
        model.set_weights([w.astype(np.float32) for w in initial])
        optimizer = optimizers.LARS(0.5, **hp)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    def loss_and_apply(model, optimizer, xb, yb):
        with tf.GradientTape() as tape:
            per_example = tf.reduce_sum(tf.square(model(xb, training=True) - yb), axis=-1)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)

    single_model, single_opt = make_model_and_optimizer()
    with strategy.scope():
        dist_model, dist_opt = make_model_and_optimizer()

    single_step = tf.function(lambda: loss_and_apply(single_model, single_opt, x, y))
    per_replica = global_batch // strategy.num_replicas_in_sync

    def shard(ctx):
        start = ctx.replica_id_in_sync_group * per_replica
        return x[start : start + per_replica], y[start : start + per_replica]

    shards = strategy.experimental_distribute_values_from_function(shard)

    @tf.function
    def dist_step(inputs):
        xb, yb = inputs
        strategy.run(lambda a, b: loss_and_apply(dist_model, dist_opt, a, b), args=(xb, yb))

    for _ in range(4):
        single_step()
        dist_step(shards)
    pairs = zip(
        single_model.trainable_variables, dist_model.trainable_variables, initial, strict=True
    )
    for single, dist, start in pairs:
        assert not np.allclose(single.numpy(), start)  # training moved it
        np.testing.assert_allclose(dist.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
