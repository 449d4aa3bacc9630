"""TPU readiness, checked on CPU: the whole per-replica train step compiles with XLA.

On a TPU, `strategy.run` compiles the replica function (device augmentation, both towers, the
loss, the gradients, LARS, the online linear probe when it is on, plus the EMA update with
several steps per call). XLA on CPU is the
closest check we can run here: `jit_compile=True` makes any op XLA cannot compile an error, and
the graph must hold no Python callbacks and only static shapes.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from byol_tf import data
from byol_tf.core.update import StepSpec
from byol_tf.training import trainer as train
from byol_tf.training.step import replica_function
from tests.helpers.cpu_class import needs_bfloat16_kernels
from tests.helpers.multiworker_job import job_config

HOST_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "Print", "PrintV2", "OutfeedEnqueue"}


def all_op_types(concrete) -> set[str]:
    graph_def = concrete.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


@pytest.mark.parametrize(
    "precision", ["float32", pytest.param("bfloat16", marks=needs_bfloat16_kernels)]
)
def test_the_per_replica_step_compiles_with_xla(tmp_path, precision):
    c = job_config(
        **{
            "augment.on_device": True,  # the colour/blur/solarize ops run in the step too
            "train.precision": precision,
            "train.steps_per_call": 2,  # the EMA update then runs inside the step
            "eval.online_probe": True,  # its update is part of the replica step too
        }
    )
    try:
        trainer = train.Trainer(c, str(tmp_path))
        source = data.load_source(c.data.train, c)
        ds = data.pretrain_dataset(source, c)
        # Static shapes everywhere (drop_remainder): what TPUs need.
        for spec in tf.nest.flatten(ds.element_spec):
            assert spec.shape.is_fully_defined(), spec
        batch = next(iter(ds))
        per_replica = replica_function(
            trainer.online,
            trainer.target,
            trainer.optimizer,
            StepSpec.from_config(c),
            trainer.probe,
        )
        step_fn = tf.function(per_replica, jit_compile=True)
        ema_fn = tf.function(trainer.ema.update, jit_compile=True)
        step = tf.constant(0, tf.int64)
        concrete = step_fn.get_concrete_function(batch, step)
        assert not all_op_types(concrete) & HOST_OPS
        if precision == "float32":
            # Compile and run: raises if XLA cannot compile an op, and must train.
            before = [v.numpy() for v in trainer.online.trainable_variables]
            metrics = step_fn(batch, step)
            loss = float(metrics["loss"])
            assert float(metrics["probe_count"]) == c.data.global_batch_size
            ema_fn(step)
            after = [v.numpy() for v in trainer.online.trainable_variables]
            assert np.isfinite(loss)
            assert max(np.abs(a - b).max() for a, b in zip(before, after)) > 0
        else:
            # Lowering to XLA's HLO is where an op without an XLA kernel fails; the CPU code
            # generation after it (slow) checks nothing more about TPU compatibility.
            assert "ENTRY" in step_fn.experimental_get_compiler_ir(batch, step)(stage="hlo")
            assert "ENTRY" in ema_fn.experimental_get_compiler_ir(step)(stage="hlo")
    finally:
        keras.mixed_precision.set_global_policy("float32")
