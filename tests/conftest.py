"""Shared test setup: quiet TensorFlow, two logical CPU devices, small thread pools.

The logical devices must be configured before TensorFlow initialises its runtime, so this
happens at import time, before any test module touches TF.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As byol-tf's commands do (byol_tf/platform/cpu.py): oneDNN on unless the environment says otherwise.
# TensorFlow is imported below, before byol_tf could set it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# With oneDNN off (TF's Eigen kernels, the default on CPUs without AVX-512 VNNI/BF16 or AMX),
# TF's default CPU allocator keeps no statistics. The BFC allocator, which oneDNN's path uses
# anyway, keeps them whatever the kernels, so the memory tests run on every CPU class.
if os.environ["TF_ENABLE_ONEDNN_OPTS"].strip().lower() in ("0", "false", "off", "no"):
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one MirroredStrategy of the test process, over the two logical CPUs.

    A second MirroredStrategy in the same process can abort on collective ops, so every test
    that needs one shares this fixture.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, "conftest.py should configure two logical CPUs"
    return tf.distribute.MirroredStrategy(devices[:2])
