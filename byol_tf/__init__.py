"""byol-tf: BYOL self-supervised pretraining for TensorFlow 2 and Keras 3.

The public API in one place; see the README for a worked example.
"""

# Before anything imports TensorFlow: oneDNN on unless the user chose (byol_tf/cpu.py).
from byol_tf import cpu as _cpu

_ONEDNN = _cpu.default_onednn_on()

from byol_tf.config import base_config, load_config  # noqa: E402
from byol_tf.export import export_encoder, load_encoder  # noqa: E402
from byol_tf.models import build_encoder, build_towers  # noqa: E402
from byol_tf.train import Trainer, train_and_evaluate  # noqa: E402

__all__ = [
    "Trainer",
    "base_config",
    "build_encoder",
    "build_towers",
    "export_encoder",
    "load_config",
    "load_encoder",
    "train_and_evaluate",
]
__version__ = "0.1.0"

_cpu.warn_if_onednn_off(_ONEDNN)
