"""The short-budget recipe levers: LARS's clipped local rate, the predictor's own learning rate,
the constant tau, warm-up in steps; their validation, and configs written before them."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.config import load_config
from byol_tf.core import lars as optimizers
from byol_tf.core import schedules
from byol_tf.training import workdir
from tests import REPO


def _np_lars_clipped(param, grad, velocity, lr, weight_decay, momentum, trust):
    """float64 reference of one clipped LARS step (solo-learn's clip_lr, DeepMind's norms): the
    gradient is scaled by min(local rate / lr, 1), then momentum, then lr times the velocity."""
    param, grad, velocity = (np.asarray(a, np.float64) for a in (param, grad, velocity))
    grad = grad + weight_decay * param
    ratio = trust * np.linalg.norm(param) / np.linalg.norm(grad)
    ratio = min(ratio / lr, 1.0) if lr > 0 else 1.0
    velocity = momentum * velocity + ratio * grad
    return param - lr * velocity, velocity


# --- the clipped local rate ----------------------------------------------------------------------


def test_clip_by_hand_caps_the_local_rate_at_the_learning_rate():
    # |w| = 5, |g| = 1 (no decay): local rate 0.02 * 5 / 1 = 0.1. Clipped, the variable's rate
    # is min(0.1, lr): at lr 0.5 the step is 0.1 * g (the local rate replaces lr; unclipped
    # LARS would take lr * 0.1 * g = 0.05 * g).
    param, grad, zero = np.array([3.0, 4.0]), np.array([0.6, 0.8]), np.zeros(2)
    kwargs = dict(weight_decay=0.0, momentum=0.9, trust_coefficient=0.02, excluded=False)
    clipped, _ = optimizers.lars_update(param, grad, zero, 0.5, **kwargs, clip_local_lr=True)
    np.testing.assert_allclose(clipped.numpy(), [2.94, 3.92], rtol=1e-6)
    free, _ = optimizers.lars_update(param, grad, zero, 0.5, **kwargs)
    np.testing.assert_allclose(free.numpy(), [2.97, 3.96], rtol=1e-6)
    # At lr 0.05 the local rate 0.1 exceeds lr: capped, the step is lr * g = 0.05 * g and the
    # ratio applied to the gradient is exactly 1.
    clipped, velocity = optimizers.lars_update(
        param, grad, zero, 0.05, **kwargs, clip_local_lr=True
    )
    np.testing.assert_allclose(clipped.numpy(), [2.97, 3.96], rtol=1e-6)
    np.testing.assert_allclose(velocity.numpy(), grad, rtol=1e-6)


def test_clip_at_zero_learning_rate_moves_nothing_and_stays_finite():
    param, grad = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    new, velocity = optimizers.lars_update(
        param, grad, np.zeros(2), 0.0, 1e-4, 0.9, 0.02, excluded=False, clip_local_lr=True
    )
    np.testing.assert_array_equal(new.numpy(), param)
    # The velocity takes the plain decayed gradient (the scale's limit as lr -> 0), no NaN.
    np.testing.assert_allclose(velocity.numpy(), grad + 1e-4 * param, rtol=1e-6)


def test_clip_leaves_excluded_variables_alone():
    param, grad = np.array([1.0, 2.0]), np.array([0.3, -0.1])
    args = (param, grad, np.zeros(2), 0.1, 1e-4, 0.9, 0.02)
    a, _ = optimizers.lars_update(*args, excluded=True, clip_local_lr=True)
    b, _ = optimizers.lars_update(*args, excluded=True, clip_local_lr=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), param - 0.1 * grad, rtol=1e-6)


def test_clip_matches_numpy_over_steps():
    rng = np.random.default_rng(0)
    param = rng.normal(size=(4, 3))
    velocity_tf = velocity_np = np.zeros_like(param)
    param_tf = param_np = param
    # Learning rates on both sides of the cap for this layer (its local rate is ~0.005-0.03).
    for step, lr in enumerate([0.0, 0.01, 0.2, 1.0, 0.03]):
        grad = rng.normal(size=param.shape) * (0.5 + step)
        hp = dict(weight_decay=1e-3, momentum=0.9)
        param_tf, velocity_tf = optimizers.lars_update(
            param_tf,
            grad,
            velocity_tf,
            lr,
            **hp,
            trust_coefficient=0.02,
            excluded=False,
            clip_local_lr=True,
        )
        param_np, velocity_np = _np_lars_clipped(param_np, grad, velocity_np, lr, **hp, trust=0.02)
        np.testing.assert_allclose(param_tf.numpy(), param_np, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(velocity_tf.numpy(), velocity_np, rtol=1e-5, atol=1e-7)


# --- the predictor's learning rate ---------------------------------------------------------------


def _two_heads() -> keras.Model:
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="projector")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="predictor")(hidden), name="tower")


def test_predictor_learning_rate_applies_to_the_predictor_only():
    keras.utils.set_random_seed(0)
    model = _two_heads()
    variables = model.trainable_variables
    predictor = [
        optimizers.is_excluded(v.path, optimizers.DEFAULT_PREDICTOR_PATTERNS) for v in variables
    ]
    assert predictor == [False, False, True, True]
    main = schedules.WarmupCosineSchedule(0.4, 1, 4)
    own = schedules.WarmupCosineSchedule(4.0, 1, 4, decay=False)
    optimizer = optimizers.LARS(
        main,
        momentum=0.0,
        trust_coefficient=1e-3,
        predictor_learning_rate=own,
        exclude_patterns=(),
        clip_local_lr=False,
    )
    optimizer.build(variables)
    rng = np.random.default_rng(1)
    for step in range(4):
        grads = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables]
        before = [v.numpy().astype(np.float64) for v in variables]
        optimizer.apply(grads, variables)
        # Hand values: warm-up, then 0.4 * (1 + cos(pi * k / 3)) / 2 for k = 0, 1, 2.
        lr_main = [0.0, 0.4, 0.3, 0.1][step]
        lr_own = [0.0, 4.0, 4.0, 4.0][step]  # warm-up, then the peak held
        for v, g, p, is_pred in zip(variables, grads, before, predictor):
            g = g.numpy().astype(np.float64)
            # A zero bias has no norm: its trust ratio is 1 (byol_tf.core.lars.lars_update).
            ratio = 1e-3 * np.linalg.norm(p) / np.linalg.norm(g) if p.any() else 1.0
            lr = lr_own if is_pred else lr_main
            np.testing.assert_allclose(v.numpy(), p - lr * ratio * g, rtol=1e-5, atol=1e-7)


def test_predictor_schedule_from_config():
    config = config_lib.base_config()
    config.data.global_batch_size = 512
    config.optimizer.base_lr = 0.5  # peak 1.0
    config.schedule.epochs = 11
    config.schedule.warmup_epochs = 1
    steps = config_lib.derive_steps(config, num_examples=5120)  # 10 steps per epoch, 110 in all
    assert schedules.build_predictor_lr_schedule(config, steps) is None  # the paper: no own rate
    config.optimizer.predictor_lr_multiplier = 10.0
    own = schedules.build_predictor_lr_schedule(config, steps)
    np.testing.assert_allclose([own(s).numpy() for s in (5, 10, 60)], [5.0, 10.0, 5.0], rtol=1e-5)
    config.optimizer.predictor_lr_decay = False
    own = schedules.build_predictor_lr_schedule(config, steps)
    np.testing.assert_allclose(
        [own(s).numpy() for s in (5, 10, 60, 109, 110)], [5.0, 10.0, 10.0, 10.0, 0.0], rtol=1e-5
    )
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(own))
    assert restored.get_config() == own.get_config() and not restored.decay


def test_lars_with_predictor_rate_round_trips_and_refuses_a_missing_predictor():
    own = schedules.WarmupCosineSchedule(2.0, 0, 10, decay=False)
    optimizer = optimizers.LARS(0.1, predictor_learning_rate=own, clip_local_lr=True)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.clip_local_lr
    assert restored.predictor_learning_rate.get_config() == own.get_config()
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    with pytest.raises(ValueError, match="predictor"):
        optimizers.LARS(0.1, predictor_learning_rate=own).build(plain.trainable_variables)


def test_build_optimizer_passes_the_levers():
    config = config_lib.base_config()
    config.optimizer.clip_local_lr = True
    config.optimizer.trust_coefficient = 0.02
    optimizer = optimizers.build_optimizer(config, 0.3, predictor_learning_rate=0.6)
    assert optimizer.clip_local_lr and optimizer.trust_coefficient == 0.02
    assert optimizer.predictor_learning_rate == 0.6
    config.optimizer.name = "sgd"
    config.optimizer.weight_decay = 0.0
    config.optimizer.clip_local_lr = False
    with pytest.raises(ValueError, match="lars"):
        optimizers.build_optimizer(config, 0.3, predictor_learning_rate=0.6)


# --- tau and the warm-up ---------------------------------------------------------------------------


def test_constant_tau():
    tau = schedules.target_tau(tf.range(0, 12), 0.97, 10, "constant").numpy()
    np.testing.assert_allclose(tau, np.full(12, 0.97), rtol=1e-7)
    cosine = schedules.target_tau(5, 0.97, 10, "cosine").numpy()
    np.testing.assert_allclose(cosine, 0.985, atol=1e-7)  # 1 - 0.03 * (cos(pi/2) + 1) / 2
    assert schedules.target_tau(3, 1.0, 10, "constant").numpy() == 1.0
    with pytest.raises(ValueError, match="'step'"):
        schedules.target_tau(0, 0.99, 10, "step")


def test_warmup_constant_by_hand():
    lr = schedules.warmup_constant(tf.constant([0, 1, 2, 4, 9, 10, 11]), 0.8, 4, 10).numpy()
    np.testing.assert_allclose(lr, [0.0, 0.2, 0.4, 0.8, 0.8, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize(
    "warmup_epochs, warmup_steps, expected",
    [(1, -1, 10), (1, 0, 0), (2, 7, 7), (0, 500, 110)],  # the last is capped at the run's length
)
def test_warmup_in_steps_overrides_epochs(warmup_epochs, warmup_steps, expected):
    config = config_lib.base_config()
    config.data.global_batch_size = 512
    config.schedule.epochs = 11
    config.schedule.warmup_epochs = warmup_epochs
    config.schedule.warmup_steps = warmup_steps
    assert config_lib.derive_steps(config, num_examples=5120)["warmup_steps"] == expected


# --- validation and old configs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizer.predictor_lr_multiplier": -1.0}, "optimizer.predictor_lr_multiplier=-1.0"),
        ({"optimizer.predictor_lr_multiplier": 0.0}, "optimizer.predictor_lr_multiplier=0.0"),
        ({"optimizer.trust_coefficient": 0.0}, "optimizer.trust_coefficient=0.0"),
        (
            {"optimizer.name": "sgd", "optimizer.clip_local_lr": True},
            "optimizer.clip_local_lr=True needs optimizer.name='lars'",
        ),
        (
            {"optimizer.name": "sgd", "optimizer.predictor_lr_decay": False},
            "optimizer.predictor_lr_decay=False needs",
        ),
        ({"ema.tau_base": 1.5}, r"ema.tau_base=1.5 must be in \[0, 1\]"),
        ({"ema.tau_base": -0.1}, r"ema.tau_base=-0.1"),
        ({"ema.tau_schedule": "linear"}, "ema.tau_schedule='linear'"),
        ({"schedule.warmup_steps": -2}, "schedule.warmup_steps=-2"),
        (
            {"optimizer.name": "sgd", "optimizer.predictor_lr_multiplier": 10.0},
            "optimizer.predictor_lr_multiplier=10.0 needs optimizer.name='lars'",
        ),
        ({"schedule.warmup_epochs": -1}, "schedule.warmup_epochs=-1"),
    ],
)
def test_bad_lever_values_name_the_field(overrides, message):
    config = config_lib.base_config()
    for key, value in overrides.items():
        group, field = key.split(".")
        config[group][field] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config)


NEW_FIELDS = {
    "optimizer": {
        "clip_local_lr": False,
        "predictor_lr_multiplier": 1.0,
        "predictor_lr_decay": True,
    },
    "schedule": {"warmup_steps": -1},
    "ema": {"tau_schedule": "cosine"},
}


def test_a_config_written_before_the_levers_loads_with_the_old_behaviour(tmp_path):
    saved = json.loads(load_config(os.path.join(REPO, "configs", "cifar10_cpu.py")).to_json())
    for group, fields in NEW_FIELDS.items():
        for field in fields:
            del saved[group][field]
    (tmp_path / workdir.CONFIG_FILE).write_text(json.dumps(saved))
    config = workdir.read_config(str(tmp_path))
    for group, fields in NEW_FIELDS.items():
        for field, old_behaviour in fields.items():
            assert config[group][field] == old_behaviour, f"{group}.{field}"
    config_lib.validate(config)
    steps = config_lib.derive_steps(config, 45_000)
    # warmup_epochs = 1: one epoch of steps, as before the levers.
    assert steps["warmup_steps"] == 45_000 // config.data.global_batch_size
    assert schedules.build_predictor_lr_schedule(config, steps) is None
    # Resuming such a workdir with today's config of the same run is not a mismatch.
    today = load_config(os.path.join(REPO, "configs", "cifar10_cpu.py"))
    for group, fields in NEW_FIELDS.items():
        for field, value in fields.items():
            today[group][field] = value
    assert workdir.check_config(str(tmp_path), today) is not None


# --- budget-aware configs -------------------------------------------------------------------------


def test_imagenet_config_is_the_papers_recipe_and_presets_scale_with_the_budget():
    paper = load_config(os.path.join(REPO, "configs", "imagenet.py"))
    # Grill et al. 2020, Sec. 3.3 and App. C.
    assert paper.data.global_batch_size == 4096 and paper.schedule.epochs == 1000
    assert paper.schedule.warmup_epochs == 10 and paper.schedule.warmup_steps == -1
    assert (paper.optimizer.base_lr, paper.optimizer.weight_decay) == (0.2, 1.5e-6)
    assert (paper.ema.tau_base, paper.ema.tau_schedule) == (0.996, "cosine")
    assert paper.optimizer.name == "lars" and paper.optimizer.trust_coefficient == 1e-3
    assert not paper.optimizer.clip_local_lr
    assert paper.optimizer.predictor_lr_multiplier == 1.0 and paper.optimizer.predictor_lr_decay
    assert (paper.augment.view1.blur_p, paper.augment.view2.blur_p) == (1.0, 0.1)
    assert (paper.augment.view1.solarize_p, paper.augment.view2.solarize_p) == (0.0, 0.2)
    assert (
        load_config(os.path.join(REPO, "configs", "imagenet.py:1000")).to_json() == paper.to_json()
    )
    short = load_config(os.path.join(REPO, "configs", "imagenet.py:40"))
    # DeepMind's 40-epoch preset: a faster target and a higher rate; nothing else changes.
    assert (short.optimizer.base_lr, short.optimizer.weight_decay) == (0.45, 1e-6)
    assert (short.ema.tau_base, short.schedule.epochs) == (0.97, 40)
    differ = {
        k
        for k, v in workdir.flatten(json.loads(short.to_json())).items()
        if workdir.flatten(json.loads(paper.to_json()))[k] != v
    }
    assert differ == {
        "optimizer.base_lr",
        "optimizer.weight_decay",
        "ema.tau_base",
        "schedule.epochs",
    }
    with pytest.raises(ValueError, match="'50'.*40, 100, 300, 1000"):
        load_config(os.path.join(REPO, "configs", "imagenet.py:50"))


def test_cifar10_config_is_solo_learns_long_recipe():
    c = load_config(os.path.join(REPO, "configs", "cifar10.py"))
    # solo-learn, scripts/pretrain/cifar/byol.yaml and augmentations/asymmetric.yaml.
    assert (c.data.global_batch_size, c.optimizer.base_lr, c.optimizer.weight_decay) == (
        256,
        1.0,
        1e-5,
    )
    assert c.optimizer.trust_coefficient == 0.02 and c.optimizer.clip_local_lr
    assert (c.ema.tau_base, c.ema.tau_schedule) == (0.99, "cosine")
    assert (c.schedule.epochs, c.schedule.warmup_epochs) == (1000, 10)
    assert (c.augment.view1.blur_p, c.augment.view2.blur_p) == (0.0, 0.0)
    assert (c.augment.view1.solarize_p, c.augment.view2.solarize_p) == (0.0, 0.2)
    assert c.augment.view1.crop_area == (0.08, 1.0)
    assert (c.model.projector.hidden_dim, c.model.projector.output_dim) == (4096, 256)
    assert c.model.predictor.hidden_dim == 4096


# --- wired into a run -------------------------------------------------------------------------------


def test_a_run_uses_and_records_every_lever(tmp_path):
    from byol_tf.training import trainer as train

    c = load_config(os.path.join(REPO, "configs", "default.py:local"))
    c.data.synthetic.num_train = 64
    c.data.global_batch_size = 16
    c.data.image_size = 16
    c.schedule.total_steps = 8
    c.eval.knn_train = c.eval.knn_test = ""
    c.optimizer.clip_local_lr = True
    c.optimizer.trust_coefficient = 0.02
    c.optimizer.predictor_lr_multiplier = 10.0
    c.optimizer.predictor_lr_decay = False
    c.ema.tau_base = 0.9
    c.ema.tau_schedule = "constant"
    c.schedule.warmup_steps = 3
    c.optimizer.base_lr = 0.5
    trainer = train.Trainer(c, str(tmp_path))
    saved = json.loads((tmp_path / workdir.CONFIG_FILE).read_text())
    assert saved["optimizer"]["clip_local_lr"] is True
    assert saved["optimizer"]["trust_coefficient"] == 0.02
    assert saved["optimizer"]["predictor_lr_multiplier"] == 10.0
    assert saved["optimizer"]["predictor_lr_decay"] is False
    assert saved["ema"]["tau_schedule"] == "constant" and saved["schedule"]["warmup_steps"] == 3

    assert trainer.steps["warmup_steps"] == 3
    optimizer = trainer.optimizer
    assert optimizer.clip_local_lr and optimizer.trust_coefficient == 0.02
    flagged = [
        v.path for v, own in zip(trainer.online.trainable_variables, optimizer._predictor) if own
    ]
    assert flagged and all("/predictor/" in path for path in flagged)
    assert len(flagged) == len(trainer.online.predictor.trainable_variables)
    peak = 0.5 * 16 / 256  # base lr 0.5 at batch 16
    trainer.position.step.assign(6)  # past the warm-up: the main rate decays, the predictor's not
    np.testing.assert_allclose(float(optimizer._predictor_rate()), 10 * peak, rtol=1e-6)
    assert float(trainer.lr_schedule(6)) < peak

    # The EMA blends with the constant tau at any step (cosine would give 0.975 at step 6 of 8).
    online, target = trainer.online, trainer.target
    pairs = list(zip(online.encoder.trainable_variables, target.encoder.trainable_variables))
    for o, t in pairs:
        o.assign(t + 1.0)
    before = [(o.numpy(), t.numpy()) for o, t in pairs]
    trainer.ema.update(tf.constant(6, tf.int64))
    for (o, t), (_, target_var) in zip(before, pairs):
        np.testing.assert_allclose(target_var.numpy(), 0.9 * t + 0.1 * o, rtol=1e-6, atol=1e-6)
