"""byol-tf: BYOL self-supervised pretraining for TensorFlow 2 and Keras 3.

The public API in one place; see the README for a worked example.
"""

from byol_tf.config import base_config, load_config
from byol_tf.export import export_encoder, load_encoder
from byol_tf.models import build_encoder, build_towers
from byol_tf.train import Trainer, train_and_evaluate

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
