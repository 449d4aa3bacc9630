"""Gradient rematerialisation (`model.remat`): same values, same gradients, one BN update."""

import numpy as np
import pytest
import tensorflow as tf

from byol_tf.models.bn_stats import batchnorm_layers
from byol_tf.models.remat import recompute, recomputing
from byol_tf.models.resnet import ResNet
from byol_tf.training import trainer as train
from tests.helpers import isolated
from tests.helpers.cpu_class import needs_bfloat16_kernels
from tests.training.test_train import assert_same_training, fit_both_ways, tiny_config


def _twins(norm: str):
    """A ResNet-18 and its remat twin with the same weights, both built."""
    images = tf.random.stateless_normal([4, 8, 8, 3], seed=[1, 2])
    models = [
        ResNet(depth=18, base_width=8, stem="cifar", norm=norm, gn_groups=2, remat=remat)
        for remat in (False, True)
    ]
    for model in models:
        model(images, training=False)
    models[1].set_weights(models[0].get_weights())
    return models, images


def _assert_close(actual, desired):
    # Gradients reach magnitudes of hundreds here; float32 summation order sets the error.
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=1e-4, atol=1e-5 * np.abs(desired).max())


def _train_pass(model, images, upstream):
    with tf.GradientTape() as tape:
        tape.watch(images)
        features = model(images, training=True)
    grads = tape.gradient(features, [images] + model.trainable_variables, upstream)
    return features, grads


@pytest.mark.parametrize("norm", ["batch", "sync_batch", "group_ws"])
@pytest.mark.parametrize("graph", [False, True])
def test_same_features_gradients_and_moving_statistics(norm, graph):
    (plain, remat), images = _twins(norm)
    upstream = tf.random.stateless_normal([4, plain.feature_dim], seed=[3, 4])
    run = tf.function(_train_pass) if graph else _train_pass
    results = [run(model, images, upstream) for model in (plain, remat)]
    _assert_close(results[1][0], results[0][0])
    assert len(results[1][1]) == len(remat.trainable_variables) + 1
    for a, b in zip(results[0][1], results[1][1]):
        _assert_close(b, a)
    # The recomputation does not update BatchNorm's moving statistics a second time.
    moving = [(p, r) for p, r in zip(plain.weights, remat.weights) if "moving" in p.path]
    assert len(moving) == (40 if "batch" in norm else 0)
    for p, r in moving:
        np.testing.assert_allclose(p.numpy(), r.numpy(), rtol=1e-6, atol=1e-7)
        initial = 0.0 if "mean" in p.path else 1.0  # ... and the one update did happen
        assert np.abs(r.numpy() - initial).max() > 1e-4
    assert not recomputing()


def _kept_activations(graph: tf.Graph, upstream: str) -> list[tf.Tensor]:
    """The 4-D forward-pass activations the backward pass reads: what the step keeps alive.

    An op belongs to the backward pass when the upstream gradient is among its ancestors.
    """
    backward = set()
    for op in graph.get_operations():  # in creation order: inputs before their consumers
        if op.name == upstream or any(t.op.name in backward for t in op.inputs):
            backward.add(op.name)
    kept = {
        t.name: t
        for op in graph.get_operations()
        if op.name in backward
        for t in op.inputs
        if t.op.name not in backward and t.shape.rank == 4 and t.op.type != "ReadVariableOp"
    }
    return list(kept.values())


@pytest.mark.parametrize("remat", [False, True])
def test_only_block_inputs_are_kept_for_the_backward_pass(remat):
    (plain, twin), images = _twins("batch")
    model = twin if remat else plain
    graph = (
        tf.function(_train_pass)
        .get_concrete_function(
            model,
            tf.TensorSpec(images.shape),
            tf.TensorSpec([4, model.feature_dim], name="upstream"),
        )
        .graph
    )
    upstream = next(
        op.name
        for op in graph.get_operations()
        if op.type == "Placeholder" and op.name.startswith("upstream")
    )
    kept = _kept_activations(graph, upstream)
    in_blocks = [t for t in kept if "_block" in t.name and t.op.type != "IdentityN"]
    if remat:
        # The images, the stem's conv output (its BatchNorm's input) and the eight block
        # inputs (the stem's output and seven block outputs); nothing from inside a block.
        assert in_blocks == []
        assert len(kept) <= 2 + len(model.blocks)
    else:
        # Each block keeps its convolutions' inputs and outputs and its ReLU outputs.
        assert len(in_blocks) >= 4 * len(model.blocks)


def test_recompute_gives_the_plain_gradients_and_runs_side_effects_once():
    v = tf.Variable(3.0)
    counter = tf.Variable(0.0, trainable=False)

    def segment(x):
        if not recomputing():
            counter.assign_add(1.0)
        return x * v

    x = tf.constant([1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(recompute(segment)(x) ** 2)
    dx, dv = tape.gradient(loss, [x, v])
    np.testing.assert_allclose(dx, 2 * 9.0 * np.array([1.0, 2.0]))
    np.testing.assert_allclose(dv, 2 * 3.0 * (1.0 + 4.0))
    assert counter.numpy() == 1.0


@pytest.mark.parametrize(
    "setting",
    ["default", "mirrored", pytest.param("bfloat16", marks=needs_bfloat16_kernels), "xla"],
)
def test_trainer_with_remat_matches_plain_training(tmp_path, setting, request, caplog):
    overrides = {
        "bfloat16": {"train.precision": "bfloat16"},
        "xla": {"train.jit_compile": True},
        # Remat on several replicas keeps per-replica BatchNorm statistics (next test): the
        # plain run without it does the same here, for a like-for-like comparison.
        "mirrored": {"model.sync_batchnorm": False},
    }
    strategy = request.getfixturevalue("mirrored_strategy") if setting == "mirrored" else None
    results = fit_both_ways(tmp_path, "model.remat", 2, strategy, **overrides.get(setting, {}))
    # Under XLA the recomputation saves nothing on CPU (measured), and the user is told.
    assert ("compiled the recomputation away" in caplog.text) == (setting == "xla")
    # bfloat16 rounds differently when XLA or the recomputation orders the ops differently.
    assert_same_training(results, rtol=2e-2 if setting == "bfloat16" else 1e-4)


def test_remat_on_several_replicas_keeps_per_replica_batchnorm(tmp_path, mirrored_strategy, caplog):
    """The recomputation runs in a nested function, where no cross-replica all-reduce can run:
    the default falls back to per-replica statistics and says so; asking for synchronised
    BatchNorm explicitly is an error that names the ways out."""
    c = tiny_config(**{"model.remat": True, "schedule.total_steps": 1})
    trainer = train.Trainer(c, str(tmp_path / "auto"), strategy=mirrored_strategy)
    assert not any(layer.synchronized for layer in batchnorm_layers(trainer.online))
    assert "BatchNorm keeps per-replica statistics" in caplog.text
    assert trainer.fit()["steps"] == 1
    c.model.norm = "sync_batch"
    with pytest.raises(ValueError, match="recomputation cannot synchronise.*sync_batchnorm=false"):
        train.Trainer(c, str(tmp_path / "sync"), strategy=mirrored_strategy)


def training_pass_peak(remat: bool, batch: int) -> int:
    """Bytes TF's allocator holds at most during one training pass of a ResNet-18."""
    model = ResNet(depth=18, base_width=8, stem="cifar", remat=remat)
    images = tf.random.stateless_normal([batch, 32, 32, 3], seed=[5, 6])
    model(images[:2], training=False)
    upstream = tf.ones([batch, model.feature_dim])
    run = tf.function(_train_pass)
    return isolated.tensor_peak(lambda: run(model, images, upstream))


def test_remat_lowers_the_tensor_memory_peak_of_a_training_pass():
    """What the allocator actually holds, not only what the graph says: Grappler merged the
    recomputation back into the forward ops when both sat in one graph.

    Each measurement runs in a process of its own with one inter-op thread. The op order TF's
    executor settles on in a process follows timing (tests/training/test_step.py), so each
    pass is compared by its highest peak: remat over two processes, plain over up to three.
    """

    def peak(remat: bool) -> int:
        return isolated.run("tests.models.test_remat", "training_pass_peak", remat=remat, batch=128)

    with_remat = isolated.highest(lambda _: peak(True), 2)
    plain = isolated.highest(
        lambda _: peak(False), 3, enough=lambda plain: with_remat < 0.75 * plain
    )
    # Without remat a block keeps ~4 feature maps, with it one. Measured at batch 128 on a
    # 2-core AMD EPYC: 0.54 of the peak with oneDNN's kernels, 0.55 with TF's Eigen kernels
    # (TF_ENABLE_ONEDNN_OPTS=0, whose convolution gradients add an im2col workspace to both;
    # 0.79 at batch 64). A recomputation Grappler merged back into the forward pass (the
    # function inlined) gives 1.06 with oneDNN's kernels.
    assert with_remat < 0.75 * plain, (with_remat, plain)
