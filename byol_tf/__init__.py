"""byol-tf: BYOL self-supervised pretraining for TensorFlow 2 and Keras 3.

The public API in one place; see the README for a worked example. Its names are imported
on first use, so `import byol_tf.cli` (the commands) can set TensorFlow's environment before
TensorFlow loads.
"""

import importlib

# Before anything imports TensorFlow: oneDNN on unless the user chose (byol_tf/platform/cpu.py).
from byol_tf.platform import cpu as _cpu

_ONEDNN = _cpu.default_onednn_on()

from byol_tf.version import __version__ as __version__  # noqa: E402

_API = {
    "Trainer": "byol_tf.training.trainer",
    "train_and_evaluate": "byol_tf.training.trainer",
    "base_config": "byol_tf.config",
    "load_config": "byol_tf.config",
    "export_encoder": "byol_tf.models.export",
    "load_encoder": "byol_tf.models.export",
    "build_encoder": "byol_tf.models",
    "build_towers": "byol_tf.models",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'byol_tf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


_cpu.warn_if_onednn_off(_ONEDNN)
