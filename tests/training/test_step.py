"""The BYOL step: the per-view backward (`train.backprop_per_view`) gives the same update with
less memory, and `compile_train_function` builds the step without training."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks.bench import step as benchmark
from byol_tf import config as config_lib
from byol_tf.training import step as step_lib
from byol_tf.training import trainer as train
from tests.helpers import isolated
from tests.training.test_train import (
    REPO,
    assert_same_training,
    fit_both_ways,
    numpy_weights,
    tiny_config,
)

SETTINGS = {
    "default": {},
    "mirrored": {},
    "float16": {"train.precision": "float16"},
    "xla": {"train.jit_compile": True},
    "remat": {"model.remat": True},
    "probe": {"eval.online_probe": True},
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_per_view_backward_gives_the_joint_update(tmp_path, setting, request):
    strategy = request.getfixturevalue("mirrored_strategy") if setting == "mirrored" else None
    # Every weight: the online update, BN moving statistics, the EMA target.
    results = fit_both_ways(
        tmp_path, "train.backprop_per_view", 3, strategy, with_target=True, **SETTINGS[setting]
    )
    # At most the summation order of the two views' gradients may differ (on this machine the
    # default and mirrored results were bitwise equal). That the per-view path really ran: the
    # memory test below.
    assert_same_training(results, rtol=1e-2 if setting == "float16" else 1e-4)


class _PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per token through a gather: its gradient is sparse."""

    def build(self, shape):
        self.table = self.add_weight(
            shape=(shape[1], shape[2]), initializer="random_normal", name="table"
        )

    def call(self, x):
        return x + tf.gather(self.table, tf.range(tf.shape(x)[1]))


def test_per_view_backward_sums_sparse_gradients_of_a_user_encoder(tmp_path):
    results = []
    for per_view in (False, True):
        keras.utils.set_random_seed(5)
        encoder = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(8, 3, strides=4, padding="same"),
                keras.layers.Reshape((16, 8)),
                _PositionEmbedding(),
                keras.layers.Flatten(),
            ]
        )
        c = tiny_config(**{"train.backprop_per_view": per_view, "schedule.total_steps": 2})
        trainer = train.Trainer(c, str(tmp_path / str(per_view)), encoder=encoder)
        table = next(v for v in trainer.online.weights if v.path.endswith("table"))
        initial = table.numpy()
        summary = trainer.fit(stop_at_step=2)
        # The sparse gradient reached the table.
        assert np.abs(table.numpy() - initial).max() > 1e-6
        results.append((summary["final_loss"], numpy_weights(trainer.online.weights)))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    for joint, per_view in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(per_view, joint, rtol=1e-5, atol=1e-6)


def step_tensor_peak(per_view: bool, workdir: str) -> int:
    """Bytes TF's allocator holds at most during one step, per-view or joint backward."""
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    c.model.base_width = 8
    c.data.image_size = c.data.synthetic.image_size = 32
    c.data.global_batch_size = 64
    c.train.backprop_per_view = per_view
    source = benchmark.in_memory_source(c, c.data.global_batch_size)
    _, _, call, _ = benchmark._fixed_batch_step(c, source, workdir)
    return isolated.tensor_peak(call)


def test_per_view_backward_lowers_the_tensor_peak_of_a_step(tmp_path):
    """What the allocator holds: the executor must not run view 2's forward beside view 1's
    backward, or both views' activations are alive at once and nothing is saved.

    Each measurement runs in a process of its own with one inter-op thread. The joint step's
    peak still depends on the order TF's executor settles on in that process, which follows
    timing: 80 MB in some processes and 45 MB in others, the same in every call of one
    process. The per-view step without its wait behaves alike (77.5 MB or less). So each is
    measured in several processes and compared by its highest peak: the per-view step in
    three, the joint one in up to three.
    """

    def peak(per_view: bool, attempt: int) -> int:
        workdir = str(tmp_path / f"{'per_view' if per_view else 'joint'}{attempt}")
        return isolated.run(
            "tests.training.test_step", "step_tensor_peak", per_view=per_view, workdir=workdir
        )

    per_view = isolated.highest(lambda attempt: peak(True, attempt), 3)
    joint = isolated.highest(
        lambda attempt: peak(False, attempt), 3, enough=lambda joint: per_view < 0.85 * joint
    )
    # Each view's activations are held alone. Measured at batch 64 on a 2-core AMD EPYC:
    # 38-48 MB against 78-84 (0.49-0.57) with oneDNN's kernels, 0.74-0.76 of the joint peak
    # with TF's Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0), whose convolution gradients add an
    # im2col workspace to both. Without the wait for the previous view's gradients, 77.5 MB.
    assert per_view < 0.85 * joint, (per_view, joint)


def test_compiling_the_train_function_reads_no_batch_and_changes_no_variable(tmp_path):
    """`compile_train_function` builds the graph every later call runs, and trains nothing."""
    c = config_lib.load_config(os.path.join(REPO, "configs", "benchmark.py") + ":local")
    trainer = benchmark._trainer(c, benchmark.in_memory_source(c, 16), str(tmp_path))
    runner = benchmark.StepRunner(trainer, c)
    views = benchmark._fixed_views(c)
    # Batch i's views hold the value i / 10, so the batch a call reads can be told apart.
    dataset = tf.data.Dataset.range(100).map(
        lambda i: {k: tf.fill(tf.shape(v), tf.cast(i, tf.float32) / 10) for k, v in views.items()}
    )
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    state = trainer.online.weights + trainer.target.weights + trainer.optimizer.variables
    before = numpy_weights(state) + [trainer.position.step.numpy()]

    step_lib.compile_train_function(runner.fn, iterator)
    for a, b in zip(before, numpy_weights(state) + [trainer.position.step.numpy()], strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(next(iterator)["view1"].numpy().flat[0]) == 0.0  # the first batch is still next

    runner.fn(iterator, tf.constant(1))  # a real step: trains, on the graph already built
    assert runner.fn.experimental_get_tracing_count() == 1
    assert int(trainer.position.step.numpy()) == 1
